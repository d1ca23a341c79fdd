"""The reference till's SQLite journal under a writer process killed with SIGKILL: nothing it reported as written
is lost."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

from harness.reference_till.journal import Journal


def test_every_reported_write_survives_sigkill(tmp_path):
    path = tmp_path / "j.sqlite"
    writer = textwrap.dedent(f"""
        import sys
        from harness.reference_till.journal import Journal
        j = Journal({str(path)!r})
        sid = j.open_sale([{{"sku": "x", "price": "1.00"}}], "card", 100)
        i = 0
        while True:
            i += 1
            j.transition(sid, f"step-{{i}}")
            print(i, flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True)
    reported = 0
    for line in proc.stdout:
        reported = int(line)
        if reported >= 40:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(5)
    proc.stdout.close()
    events = Journal(path).sale("T1-000001")["events"]
    steps = [e["state"] for e in events[1:]]
    assert len(steps) >= reported
    assert steps[:reported] == [f"step-{i}" for i in range(1, reported + 1)]

"""`posrig host serve` as a child process: SIGKILL amid a stream of authorizations loses nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from harness.core.process import die_with_parent
from harness.host.emulated import posrig_command, read_ready_line
from harness.host.ledger import Ledger
from tests.support.iso_client import Client, sale

POSRIG = posrig_command()


def serve(ledger: Path, log: Path, port: int = 0) -> tuple[subprocess.Popen, tuple[str, int]]:
    with open(log, "ab") as err:
        proc = subprocess.Popen(
            [*POSRIG, "host", "serve", "--listen", f"127.0.0.1:{port}", "--ledger", str(ledger)],
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
    ready = read_ready_line(proc, 20)
    assert ready is not None, f"host did not start: {log.read_text()}"
    assert ready["event"] == "ready" and ready["ledger"] == str(ledger)
    host, port_text = ready["listen"].rsplit(":", 1)
    return proc, (host, int(port_text))


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(5)
    proc.stdout.close()


def test_sigkill_mid_stream_loses_no_approved_payment(tmp_path):
    ledger_path, log = tmp_path / "ledger.sqlite", tmp_path / "serve.log"
    proc, address = serve(ledger_path, log)
    approved: list[tuple[str, str, str]] = []  # (terminal, stan, rrn) of every 0210 approval received
    lock = threading.Lock()
    go = threading.Event()

    def terminal(n: int) -> None:
        try:
            c = Client(address, timeout=5)
        except OSError:
            return
        go.wait()
        stan = 0
        try:
            while True:
                stan += 1
                answer = c.exchange(sale(stan, amount=100 + stan, terminal=f"TERM{n:04d}"))
                if answer["39"] == "00":
                    with lock:
                        approved.append((answer["41"], answer["11"], answer["37"]))
        except (EOFError, OSError, AssertionError):
            pass  # the host died: this terminal's stream ends here
        finally:
            c.close()

    threads = [threading.Thread(target=terminal, args=(n,)) for n in range(4)]
    try:
        for t in threads:
            t.start()
        go.set()
        deadline = time.monotonic() + 30
        while len(approved) < 80 and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)  # mid-stream: requests are in flight right now
        for t in threads:
            t.join(10)
    finally:
        stop(proc)
    assert proc.returncode == -signal.SIGKILL
    assert len(approved) >= 80
    with Ledger(ledger_path) as ledger:
        for terminal_id, stan, rrn in approved:
            p = ledger.payment(stan=stan, terminal=terminal_id)
            assert p is not None, f"approved payment {terminal_id}/{stan} lost"
            assert (p.state, p.rrn) == ("approved", rrn)
        booked = len(ledger.payments())
    assert booked >= len(approved)

    # Restarted on the same ledger: it remembers answers (a repeat is not charged again) and carries on.
    proc, address = serve(ledger_path, log)
    try:
        terminal_id, stan, rrn = approved[0]
        c = Client(address)
        n = int(terminal_id[4:])
        again = c.exchange(sale(int(stan), amount=100 + int(stan), terminal=terminal_id, mti="0201"))
        assert again["37"] == rrn
        assert c.exchange(sale(999999, terminal="TERM0099"))["39"] == "00"
        c.close()
        assert n in range(4)
    finally:
        stop(proc)
    with Ledger(ledger_path) as ledger:
        assert len(ledger.payments()) == booked + 1


def test_cli_ledger_report(tmp_path):
    ledger_path, log = tmp_path / "ledger.sqlite", tmp_path / "serve.log"
    proc, address = serve(ledger_path, log)
    try:
        c = Client(address)
        c.exchange(sale(1, amount=1234))
        c.exchange(sale(2, amount=905))
        c.close()
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()
    assert proc.returncode == 0  # SIGTERM: a clean stop
    out = subprocess.run(
        [*POSRIG, "host", "ledger", str(ledger_path), "--json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    doc = json.loads(out)
    assert [(p["stan"], p["state"]) for p in doc["payments"]] == [
        ("000001", "approved"),
        ("000002", "declined"),
    ]
    assert doc["totals"]["held"] == {"count": 1, "amount": 1234}
    text = subprocess.run(
        [*POSRIG, "host", "ledger", str(ledger_path), "--messages"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert (
        "12.34" in text
        and "declined" in text
        and "411111******1111" in text
        and "4111111111111111" not in text
    )


def test_cli_errors_are_clear(tmp_path):
    missing = subprocess.run(
        [*POSRIG, "host", "ledger", str(tmp_path / "nope.sqlite")], capture_output=True, text=True, timeout=30
    )
    assert missing.returncode == 2 and "no ledger file" in missing.stderr
    bad = tmp_path / "rules.yaml"
    bad.write_text("- behaviour: {delivery: sometimes}\n")
    p = subprocess.run(
        [
            *POSRIG,
            "host",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--ledger",
            str(tmp_path / "l.db"),
            "--rules",
            str(bad),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert p.returncode == 2 and "delivery" in p.stderr

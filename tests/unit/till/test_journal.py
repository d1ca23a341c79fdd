"""The reference till's SQLite journal: what it keeps, that card numbers are masked, and that a killed writer
loses nothing it reported as written."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

from harness.reference_till.journal import Journal

BASKET = [{"sku": "milk", "price": "1.19", "note": "card 4111111111111111"}]


def test_sale_history_is_kept_in_order(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    sid = j.open_sale(BASKET, "card", 119)
    assert sid == "T1-000001"
    j.transition(sid, "authorizing", detail={"attempt": 1})
    j.record_zvt(sid, "rx", {"apdu": "status-information", "pan": "4111111111111111"})
    j.transition(sid, "paid", status="paid", masked_pan="4111111111111111", auth_code="A1", trace=7,
                 receipt_no=3)
    j.record_print(sid, "sale", True, "Card 4111111111111111")
    j.transition(sid, "printed", receipt="printed")
    s = j.sale(sid)
    assert [e["state"] for e in s["events"]] == ["open", "authorizing", "paid", "printed"]
    assert s["status"] == "paid" and s["receipt"] == "printed" and s["trace"] == 7
    assert s["masked_pan"] == "411111******1111"
    assert "4111111111111111" not in repr(s)                 # basket, zvt, prints: all masked
    assert j.known_transactions() == {(7, 3)}
    assert j.unresolved() == []
    assert j.open_sale(BASKET, "cash", 119) == "T1-000002"
    assert [u["id"] for u in j.unresolved()] == ["T1-000002"]


def test_bad_updates_are_named(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    sid = j.open_sale(BASKET, "card", 119)
    with pytest.raises(ValueError, match="unknown sale fields"):
        j.transition(sid, "paid", colour="red")
    with pytest.raises(KeyError, match="no sale 'T1-999999'"):
        j.transition("T1-999999", "paid")
    assert j.sale(sid)["state"] == "open"                   # the failed writes left nothing behind


def test_reopened_journal_continues_numbering(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    j.open_sale(BASKET, "card", 119)
    j.close()
    j2 = Journal(tmp_path / "j.sqlite")
    assert j2.open_sale(BASKET, "card", 119) == "T1-000002"
    assert len(j2.sales()) == 2


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


def test_unusable_journal_path_is_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    from harness.reference_till.journal import JournalError

    with pytest.raises((JournalError, OSError), match="file"):
        Journal(blocker / "j.sqlite")

"""The reference till's SQLite journal: what it keeps, that card numbers are masked, that bad writes are named
(a killed writer: tests/component/till/test_journal.py)."""

from __future__ import annotations

import pytest

from harness.reference_till.journal import Journal

BASKET = [{"sku": "milk", "price": "1.19", "note": "card 4111111111111111"}]


def test_sale_history_is_kept_in_order(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    sid = j.open_sale(BASKET, "card", 119)
    assert sid == "T1-000001"
    j.transition(sid, "authorizing", detail={"attempt": 1})
    j.record_zvt(sid, "rx", {"apdu": "status_information", "pan": "4111111111111111"})
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


def test_unusable_journal_path_is_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    from harness.reference_till.journal import JournalError

    with pytest.raises((JournalError, OSError), match="file"):
        Journal(blocker / "j.sqlite")

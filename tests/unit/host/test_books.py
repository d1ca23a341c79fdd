"""The ledger's write side on its own: Books inside the Bookkeeper's transactions (group commit, SAVEPOINTs)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.host.ledger import Bookkeeper, Books, Ledger, LedgerError

PAN = "4111111111111111"


def pay(books: Books, stan: str, amount: int = 1000, state: str = "approved", terminal: str = "T1") -> int:
    pid = books.next_payment_id()
    books.book_payment(
        id=pid, kind="financial", mti="0200", terminal=terminal, merchant=None, stan=stan, rrn=f"RRN{pid:09d}",
        auth_code=None, code="00" if state == "approved" else "05", amount=amount, currency="978",
        pcode="000000", pan=PAN, state=state, reason="test", at=time.time(),
    )
    return pid


@pytest.fixture
def keeper(tmp_path: Path) -> Iterator[Bookkeeper]:
    k = Bookkeeper(tmp_path / "ledger.sqlite")
    yield k
    k.close()


def test_a_failing_job_undoes_only_itself_in_a_shared_transaction(keeper, tmp_path):
    gate = threading.Event()
    blocker = keeper.submit(lambda books: gate.wait(5))  # holds the writer so the next three share one batch

    def bad(books: Books) -> None:
        pay(books, "000002")
        raise ValueError("this job fails")

    first = keeper.submit(lambda books: pay(books, "000001"))
    failing = keeper.submit(bad)
    last = keeper.submit(lambda books: pay(books, "000003"))
    gate.set()
    assert blocker.result(5) is True
    assert first.result(5) == 1 and last.result(5) == 2
    with pytest.raises(ValueError, match="this job fails"):
        failing.result(5)
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        assert [p.stan for p in ledger.payments()] == ["000001", "000003"]


def test_booked_is_visible_to_other_processes_when_call_returns(keeper, tmp_path):
    pid = keeper.call(lambda books: pay(books, "000001", amount=1234))
    with Ledger(tmp_path / "ledger.sqlite") as ledger:  # another connection: sees only what is committed
        p = ledger.payment(stan="000001", terminal="T1")
        assert (p.id, p.amount, p.state) == (pid, 1234, "approved")
        assert p.pan == "411111******1111"
        assert [e["to_state"] for e in ledger.history(pid)] == ["approved"]


def test_unknown_state_is_refused_and_nothing_booked(keeper, tmp_path):
    with pytest.raises(ValueError, match="unknown payment state 'pending'"):
        keeper.call(lambda books: pay(books, "000001", state="pending"))
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        assert ledger.payments() == []


def test_find_set_state_and_cut_over(keeper, tmp_path):
    def job(books: Books) -> tuple:
        a, b, c = pay(books, "000001"), pay(books, "000002", amount=250), pay(books, "000003", state="declined")
        pay(books, "000001", terminal="T2")
        found = books.find_payment("T1", "000001", "0200")
        assert found is not None and found.id == a
        assert books.find_payment("T1", "000001", "0100") is None
        assert books.find_payment("T1", "000001", since=time.time() + 60) is None
        assert books.set_state(b, "approved", "reversed", "0400 STAN 000004")
        assert not books.set_state(c, "approved", "reversed", "declined: not approved, nothing changes")
        opened = sorted(books.open_payments("T1"))
        batch = books.cut_over("T1", {"88": 1000}, None, "00", "cut-over by 0500 STAN 000005")
        return opened, batch, books.open_payments("T1")

    opened, batch, after = keeper.call(job)
    assert opened == [("approved", 1000, "000000"), ("declined", 1000, "000000"), ("reversed", 250, "000000")]
    assert after == []
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        states = {p.stan: p.state for p in ledger.payments(terminal="T1")}
        assert states == {"000001": "settled", "000002": "reversed", "000003": "declined"}
        assert ledger.payment(stan="000001", terminal="T2").state == "approved"  # other terminal untouched
        assert [e["to_state"] for e in ledger.history(ledger.payment(stan="000003").id)] == ["declined"]
        [b] = ledger.batches()
        assert (b["id"], b["host_totals"], b["terminal_totals"]) == (batch, {"88": 1000}, None)
        history = ledger.history(ledger.payment(stan="000001", terminal="T1").id)
        assert history[-1]["reason"] == f"cut-over by 0500 STAN 000005 (batch {batch})"


def test_orphan_reversal_is_kept_once_and_claimed_once(keeper):
    def job(books: Books) -> tuple[bool, bool, bool]:
        books.remember_orphan_reversal("T1", "0200", "000007")
        books.remember_orphan_reversal("T1", "0200", "000007")  # its repeat: still one
        count = books.db.execute("SELECT COUNT(*) FROM orphan_reversals").fetchone()[0]
        assert count == 1
        pid = pay(books, "000007")
        other_class = books.claim_orphan_reversal("T1", "000007", "0100", 0.0, pid)
        claimed = books.claim_orphan_reversal("T1", "000007", "0200", 0.0, pid)
        again = books.claim_orphan_reversal("T1", "000007", "0200", 0.0, pid)
        return other_class, claimed, again

    assert keeper.call(job) == (False, True, False)


def test_answers_for_repeats_are_kept_per_terminal_stan_and_class(keeper):
    def job(books: Books) -> tuple:
        books.remember_answer("T1", "000001", "0200", "d1", {"t": "0210", "39": "00"}, 1)
        books.remember_answer("T1", "000001", "0200", "d2", {"t": "0210", "39": "05"}, 2)  # replaces
        return (books.stored_answer("T1", "000001", "0200"), books.stored_answer("T1", "000001", "0400"),
                books.stored_answer("T2", "000001", "0200"))

    kept, other_class, other_terminal = keeper.call(job)
    assert (kept.digest, kept.response, kept.payment_id) == ("d2", {"t": "0210", "39": "05"}, 2)
    assert other_class is None and other_terminal is None


def test_closed_bookkeeper_refuses_jobs_clearly(tmp_path):
    keeper = Bookkeeper(tmp_path / "ledger.sqlite")
    keeper.close()
    with pytest.raises(LedgerError, match="the ledger is closed"):
        keeper.call(lambda books: books.next_payment_id())

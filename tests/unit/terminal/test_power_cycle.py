"""The emulated terminal loses power with a payment in flight and boots on its durable memory (journal, store and
forward, counters, the ECR's registration): what it could not finish it settles before it serves the ECR again
(payments.md stages 4/5/8: an approval it could not deliver is reversed, one the ECR booked stands)."""

from __future__ import annotations

import threading

import pytest

from harness.terminal.journal import Journal, PoweredOff
from tests.support.ecr_client import Ecr, apdu, bcd

REPEAT_RECEIPT = apdu(0x06, 0x20, bcd(0, 3))


def _in_background(call):
    """Run `call` in a thread; its result or exception lands in the returned list."""
    out: list = []

    def run():
        try:
            out.append(call())
        except Exception as exc:  # noqa: BLE001 - the terminal dies under it: kept for the assertion
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def _last_payment(terminal):
    with Ecr(terminal.ecr_address) as till:
        return till.converse(REPEAT_RECEIPT).status


def test_power_cut_while_the_host_holds_the_approval_is_reversed_on_boot(terminal, acquirer):
    acquirer.delay["0210"] = 0.4                      # within the terminal's 0.5 s host timer: the 0210 is on its way
    ecr = Ecr(terminal.ecr_address)
    thread, out = _in_background(lambda: ecr.converse(ecr.authorization(4880)))
    assert acquirer.wait_for(lambda: acquirer.ledger() and terminal.journal.last("sale")["state"] == "online")
    before = terminal.journal.last("sale")
    done = terminal.power_cycle()
    assert done == [{"txn": before["id"], "was": "online", "decision": "reverse-unanswered"}]
    thread.join(5)
    assert isinstance(out[0], ConnectionResetError)   # the till's connection is gone with the power: a reset
    assert acquirer.wait_for(lambda: terminal.journal.last("sale")["state"] == "reversed")
    assert [r["state"] for r in acquirer.ledger()] == ["reversed"]
    assert terminal.journal.last("sale")["reversal_reason"] == "68"
    status = _last_payment(terminal)                  # a till asking after the cut: not paid
    assert status.amount == 4880 and status.result_code != 0
    acquirer.delay.clear()
    with Ecr(terminal.ecr_address) as till:           # the counters went on from the journal
        assert till.converse(till.authorization(669)).status.trace == before["trace"] + 1
    ecr.close()


def test_power_cut_with_the_result_unconfirmed_is_reversed_on_boot(terminal, acquirer):
    done: list = []

    def cut_at_the_result(msg):
        if msg.control == (0x04, 0x0F):               # the till has the result, the terminal its answer not yet
            done.extend(terminal.power_cycle())

    with Ecr(terminal.ecr_address) as ecr, pytest.raises(OSError):
        ecr.converse(ecr.authorization(4880), status_answer=b"", on_message=cut_at_the_result)
    assert [d["decision"] for d in done] == ["reverse-undelivered"]
    assert acquirer.wait_for(lambda: [r["state"] for r in acquirer.ledger()] == ["reversed"])
    assert _last_payment(terminal).result_code != 0


def test_a_payment_the_till_booked_stands_after_a_power_cut(terminal, acquirer):
    done: list = []
    ecr = Ecr(terminal.ecr_address)

    def cut_once_booked(msg):
        if msg.control == (0x04, 0x0F):
            ecr.ack()                                 # the goods are handed over
            assert acquirer.wait_for(lambda: terminal.journal.last("sale")["goods"] == "booked")
            done.extend(terminal.power_cycle())

    try:
        ecr.converse(ecr.authorization(4880), status_answer=b"", on_message=cut_once_booked)
    except OSError:
        pass                                          # the completion may or may not have left before the cut
    finally:
        ecr.close()
    assert done == []
    assert [r["state"] for r in acquirer.ledger()] == ["approved"]
    assert terminal.journal.last("sale")["state"] == "approved"
    assert _last_payment(terminal).result_code == 0


def test_a_sale_waiting_for_the_card_is_aborted_on_boot_and_the_registration_kept(make_terminal, acquirer):
    terminal = make_terminal(auto_present=False)
    with Ecr(terminal.ecr_address) as ecr:
        assert ecr.converse(Ecr.registration(config_byte=0x8A)).completed
    ecr = Ecr(terminal.ecr_address)
    thread, _ = _in_background(lambda: ecr.converse(ecr.authorization(4880)))
    assert terminal.core.card_wanted.wait(5)
    assert [d["decision"] for d in terminal.power_cycle()] == ["abort"]
    thread.join(5)
    ecr.close()
    assert terminal.journal.last("sale")["state"] == "aborted" and acquirer.ledger() == []
    assert terminal.server.commands.config_byte == 0x8A


def test_a_frozen_journal_takes_no_more_writes_but_still_reads(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    txn = journal.open("sale", amount=100)
    journal.freeze()
    for write in (lambda: journal.update(txn, state="approved"), lambda: journal.next_number("trace"),
                  lambda: journal.saf_add(txn, "reversal", "0420", {})):
        with pytest.raises(PoweredOff):
            write()
    assert journal.get(txn)["state"] == "started"
    journal.close()

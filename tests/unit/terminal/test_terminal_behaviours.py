"""The terminal behaviours the matrix's behaviour rows use: the intermediate statuses each display shows (04 FF,
with and without the timeout byte), and the merchant copy that keeps the terminal busy after a payment, during
which a command is refused with 84 A0 and nothing of it happens.
"""

from __future__ import annotations

import pytest

from harness.terminal.display import DISPLAYS, MOMENTS, display
from tests.support.ecr_client import Ecr

BUSY = (0x84, 0xA0)


def shown(dialogue) -> list[bytes]:
    """Each 04 FF's data as sent: the status code, and the timeout byte when there is one."""
    return [m.data for m in dialogue.of(0x04, 0xFF)]


def test_classic_display_sends_what_the_terminal_always_sent(terminal, ecr):
    assert ecr.converse(ecr.authorization(1999)).intermediate == [0x0A, 0x04]
    terminal.present_card("decline")
    assert ecr.converse(ecr.authorization(500)).intermediate == [0x0A, 0x04, 0x1D]


def test_chip_pin_display_announces_card_pin_and_approval(make_terminal, acquirer):
    term = make_terminal(display="chip-pin")
    with Ecr(term.ecr_address) as ecr:
        d = ecr.converse(ecr.authorization(1999))
    assert d.completed and d.status.result_code == 0
    # insert card (60 s), card detected, application selection, PIN pad (30 s), please wait, waiting for FEP,
    # approved - please take goods, please remove card; then the Status-Information
    assert shown(d) == [b"\x0a\x3c", b"\x68", b"\x2c", b"\x01\x1e", b"\x0e", b"\x04", b"\x1c", b"\x0b"]
    assert d.messages.index(d.of(0x04, 0x0F)[0]) > d.messages.index(d.of(0x04, 0xFF)[-1])
    assert [r["state"] for r in acquirer.ledger()] == ["approved"]


def test_wrong_pin_never_goes_online(make_terminal, acquirer):
    term = make_terminal(display="chip-pin")
    term.present_card("wrong_pin")
    with Ecr(term.ecr_address) as ecr:
        d = ecr.converse(ecr.authorization(700))
    assert d.intermediate == [0x0A, 0x68, 0x2C, 0x01, 0x15, 0x55]        # incorrect PIN, then remove card
    assert d.status.result_code == 0x37 and d.abort_code == 0x37
    assert acquirer.ledger() == []


def test_dial_up_display_sends_a_code_without_a_known_meaning(make_terminal, acquirer):
    term = make_terminal(display="dial-up")
    term.present_card("decline")
    with Ecr(term.ecr_address) as ecr:
        d = ecr.converse(ecr.authorization(500))
    assert d.intermediate == [0x0A, 0x68, 0xFF, 0x01, 0xD2, 0xD3, 0x04, 0x1D, 0x0B]
    assert d.abort_code == 0x05


def test_display_is_changed_while_running_and_limited_by_the_ecr(terminal, ecr):
    terminal.configure(display="contactless")
    d = ecr.converse(ecr.authorization(1999, extra=b"\x02\x02"))          # BMP 02: at most 2 status messages
    assert d.intermediate == [0x0A, 0x0E] and d.completed
    assert ecr.converse(ecr.authorization(1999)).intermediate == [0x0A, 0x0E, 0xF2, 0x04, 0x1C]


def test_every_display_names_known_moments_and_unknown_names_are_refused(terminal):
    for d in DISPLAYS.values():
        assert set(d.moments) <= set(MOMENTS), d.name
        assert all(0 <= c <= 0xFF for m in MOMENTS for c in d.codes(m))
    with pytest.raises(ValueError, match="unknown terminal display 'pinpad'; known: classic, chip-pin"):
        display("pinpad")
    with pytest.raises(KeyError, match="unknown payment moment"):
        DISPLAYS["classic"].shown("goodbye")
    with pytest.raises(ValueError, match="unknown terminal display"):
        terminal.configure(display="pinpad")


def test_a_request_while_the_merchant_copy_prints_is_refused_busy(terminal, ecr, acquirer):
    terminal.finish_slowly(60)                       # 3 s at the fixtures' scale: the next payment ends slowly
    first = ecr.converse(ecr.authorization(478))
    assert first.completed
    with Ecr(terminal.ecr_address) as next_sale:
        next_sale.send(next_sale.authorization(488))
        got = next_sale.receive()
        assert got.control == BUSY                       # receiver not ready: the request is not taken
        next_sale.send(bytes([0x05, 0x01, 0x03, 0, 0, 0]))   # a status enquiry: refused as well
        assert next_sale.receive().control == BUSY
    assert terminal.busy_refusals == 2
    assert [r["amount"] for r in acquirer.ledger()] == [478]
    assert [r["amount"] for r in terminal.journal.transactions("sale")] == [478]


def test_the_slow_finish_ends_and_applies_to_the_next_payment_only(terminal, ecr, acquirer):
    terminal.finish_slowly(1)      # 0.05 s: over before a command waiting for it is refused (half of T3, 0.125 s)
    assert ecr.converse(ecr.authorization(478)).completed
    with Ecr(terminal.ecr_address) as later:
        assert later.converse(later.authorization(488)).completed    # waited for the copy, then taken
    with Ecr(terminal.ecr_address) as next_one:
        assert next_one.converse(next_one.authorization(669)).completed
    assert terminal.busy_refusals == 0
    assert [r["amount"] for r in acquirer.ledger()] == [478, 488, 669]


def test_merchant_copy_option_applies_to_every_payment(make_terminal, acquirer):
    term = make_terminal(merchant_copy=10)           # 0.5 s after every payment
    for amount in (100, 200):
        with Ecr(term.ecr_address) as ecr:
            assert ecr.converse(ecr.authorization(amount)).completed
        with Ecr(term.ecr_address) as other:
            other.send(other.authorization(amount + 1))
            assert other.receive().control == BUSY
        assert _idle(term)
    assert term.busy_refusals == 2 and [r["amount"] for r in acquirer.ledger()] == [100, 200]


def _idle(term) -> bool:
    if term.core.busy.acquire(timeout=2.0):
        term.core.busy.release()
        return True
    return False

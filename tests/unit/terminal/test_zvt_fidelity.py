"""ZVT as a real terminal answers it (issue 15): unsupported commands 84 83 before any decoding, the terminal
password, the registration config byte's receipt bits (02/04 whether the ECR prints, 80 how), and the
intermediate status of an end of day the ECR asked for."""

from __future__ import annotations

import pytest

from harness.protocols import zvt
from tests.support.ecr_client import Ecr, apdu, bcd

PASSWORD = b"\x00\x00\x00"


def registration(config_byte: int, password: int = 0) -> bytes:
    return apdu(0x06, 0x00, bcd(password, 3) + bytes([config_byte]) + bcd(978, 2))


def refusal(ecr: Ecr, command: bytes) -> tuple[int, int]:
    """Send one command and return the control field of the terminal's first answer."""
    ecr.send(command)
    return ecr.receive().control


# -- unsupported commands: 84 83, decided from the control field alone ---------------------------------------------
@pytest.mark.parametrize(
    "command",
    [
        apdu(0x06, 0xE0, b"\xf1\xf1\x05HELLO"),          # Display Text, well formed
        apdu(0x06, 0xE0, b"\xff\x00"),                   # Display Text whose data would not decode
        apdu(0x06, 0xC0, b"\x01\x00"),                   # Read Card with a BMP 01 cut short
        apdu(0x06, 0xC0),                                # Read Card, no data
        apdu(0x06, 0x99, b"\xde\xad"),                   # an instruction ZVT does not define
        apdu(0x08, 0x50, b"\x99"),                       # Activate Card-Reader (class 08)
        apdu(0x04, 0x0F, b"\x27"),                       # a Status-Information sent by the ECR, truncated
    ],
    ids=["display-text", "display-text-garbage", "read-card-cut", "read-card-empty", "06-99", "08-50", "04-0f"],
)
def test_unsupported_commands_are_function_not_possible(terminal, ecr, command):
    assert refusal(ecr, command) == (0x84, zvt.RESULT_NOT_POSSIBLE)
    assert ecr.converse(apdu(0x05, 0x01, PASSWORD)).completed  # the connection keeps serving


def test_supported_command_with_malformed_data_is_a_protocol_error(terminal, ecr):
    assert refusal(ecr, apdu(0x06, 0x00, b"\x00\x00")) == (0x84, 0x9A)        # registration: no config byte
    assert refusal(ecr, apdu(0x06, 0x01, b"\x04\x00\x00")) == (0x84, 0x9A)    # BMP 04 amount cut short
    assert refusal(ecr, apdu(0x06, 0x30, b"\x00")) == (0x84, 0x9A)            # reversal: password cut short


def test_unsupported_command_data_stays_out_of_the_transcript(terminal, ecr):
    # 06 C0 with a track 2 in clear: refused unread, so the card number is never written anywhere
    assert refusal(ecr, apdu(0x06, 0xC0, b"\x23\xf1\xf1" + bytes.fromhex("4111111111111111d2812f"))) == (0x84, 0x83)
    ecr.converse(apdu(0x05, 0x01, PASSWORD))
    transcript = (terminal.ctx.evidence.path / "terminal.jsonl").read_text()
    assert '"unsupported"' in transcript and "unknown_06_C0" in transcript
    assert "4111111111111111" not in transcript and "41:11:11" not in transcript


# -- the terminal password -------------------------------------------------------------------------------------------
def test_password_is_checked_when_the_rig_sets_one(make_terminal):
    term = make_terminal(password="123456")
    with Ecr(term.ecr_address) as ecr:
        assert refusal(ecr, registration(0x08, password=0)) == (0x84, 0x83)
        assert refusal(ecr, registration(0x08, password=123457)) == (0x84, 0x83)
        assert refusal(ecr, apdu(0x06, 0x50, bcd(111111, 3))) == (0x84, 0x83)     # end of day
        assert refusal(ecr, apdu(0x06, 0x20, bcd(0, 3))) == (0x84, 0x83)          # repeat receipt
        assert refusal(ecr, apdu(0x06, 0x30, bcd(1, 3) + b"\x87\x00\x01")) == (0x84, 0x83)  # reversal
        assert refusal(ecr, apdu(0x05, 0x01, bcd(654321, 3))) == (0x84, 0x83)     # status enquiry
        assert ecr.converse(registration(0x08, password=123456)).completed
        assert ecr.converse(apdu(0x05, 0x01, bcd(123456, 3))).completed
        assert ecr.converse(apdu(0x05, 0x01)).completed      # 05 01's password is optional in ZVT
        assert ecr.converse(ecr.authorization(100)).completed  # 06 01 carries no password
    assert term.journal.last("sale")["state"] == "approved"
    transcript = (term.ctx.evidence.path / "terminal.jsonl").read_text()
    assert transcript.count('"wrong_password"') == 6


def test_any_password_is_accepted_without_the_option(terminal, ecr):
    for password in (0, 123456, 999999):
        assert ecr.converse(registration(0x08, password=password)).completed


@pytest.mark.parametrize("bad", ["12345", "12345a", "1234567", -1])
def test_a_bad_password_option_is_named(make_terminal, bad):
    with pytest.raises(ValueError, match="6 decimal digits"):
        make_terminal(password=bad)


# -- config byte: who prints the receipt, and how ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("config", "payment_lines", "admin_lines"),
    [
        (0x3A, False, False),   # ECR prints payment receipts, compiles them itself (print-type 0): no lines
        (0xBA, True, False),    # ... as print lines (80): lines; admin receipts on the PT's printer
        (0x86, True, True),     # ECR prints both, as print lines
        (0x06, False, False),   # ECR prints both, compiles both itself
        (0x88, False, False),   # print-type set but the PT prints (02/04 clear): 80 is not used
        (0x0C, False, False),   # ECR prints admin receipts only, compiled itself
        (0x8C, False, True),    # ECR prints admin receipts only, as print lines
    ],
)
def test_config_byte_decides_print_lines(terminal, ecr, config, payment_lines, admin_lines):
    assert ecr.converse(registration(config)).completed
    paid = ecr.converse(ecr.authorization(1999))
    assert paid.completed and paid.status.amount == 1999  # the status information always carries the receipt data
    assert bool(paid.print_lines) is payment_lines
    again = ecr.converse(apdu(0x06, 0x20, PASSWORD))      # repeat receipt: a payment function too
    assert again.completed and bool(again.print_lines) is payment_lines
    eod = ecr.converse(apdu(0x06, 0x50, PASSWORD))
    assert eod.completed and bool(eod.print_lines) is admin_lines
    if payment_lines:
        assert "APPROVED" in "\n".join(t for _, t in paid.print_lines)


def test_config_0x3a_sends_no_print_lines_where_it_sent_eleven(terminal, ecr):
    """The case the independent ZVT library found: 0x3A = 02|08|10|20, print-type bit clear."""
    assert ecr.converse(registration(0x3A)).completed
    d = ecr.converse(ecr.authorization(500))
    assert d.completed and d.of(0x06, 0xD1) == [] and d.of(0x06, 0xD3) == []
    assert d.intermediate  # bit 08 still honoured


def test_rig_option_still_overrides_the_config_byte(make_terminal):
    forced = make_terminal(name="forced", ecr_receipts=True)
    with Ecr(forced.ecr_address) as ecr:
        assert ecr.converse(registration(0x3A)).completed
        assert ecr.converse(ecr.authorization(500)).print_lines
    never = make_terminal(name="never", ecr_receipts=False)
    with Ecr(never.ecr_address) as ecr:
        assert ecr.converse(registration(0xBA)).completed
        assert ecr.converse(ecr.authorization(500)).print_lines == []


def test_receipt_printout_table():
    assert [zvt.receipt_printout(c) for c in (0x3A, 0xBA, 0x86, 0x06, 0x08, 0x88)] == [
        "ecr_compiles", "print_lines", "print_lines", "ecr_compiles", "terminal", "terminal"]
    assert [zvt.receipt_printout(c, admin=True) for c in (0x3A, 0xBA, 0x86, 0x06, 0x04, 0x84)] == [
        "terminal", "terminal", "print_lines", "ecr_compiles", "ecr_compiles", "print_lines"]


# -- end of day asked for by the ECR ---------------------------------------------------------------------------------
def test_end_of_day_requested_by_the_ecr_is_not_announced_as_automatic(terminal, ecr):
    assert ecr.converse(ecr.authorization(100)).completed
    d = ecr.converse(apdu(0x06, 0x50, PASSWORD))
    assert d.completed
    assert d.intermediate == [zvt.STATUS_PLEASE_WAIT] == [0x0E]
    assert zvt.STATUS_AUTOMATIC_END_OF_DAY not in d.intermediate
    assert "automatic end-of-day" in zvt.INTERMEDIATE_STATUS[0x0F]


def test_passwords_stay_out_of_the_transcript(make_terminal):
    term = make_terminal(password="123456")
    with Ecr(term.ecr_address) as ecr:
        assert refusal(ecr, registration(0x08, password=654321)) == (0x84, 0x83)
        assert ecr.converse(registration(0x08, password=123456)).completed
    transcript = (term.ctx.evidence.path / "terminal.jsonl").read_text()
    assert "06:00:06:**:**:**:08:09:78" in transcript and "password=******" in transcript
    assert "65:43:21" not in transcript and "12:34:56" not in transcript and "654321" not in transcript


def test_bytes_of_no_zvt_class_are_a_protocol_error(terminal, ecr):
    """Class 07 is no ZVT class at all: garbage, not an unsupported command (the reader drops it and resyncs)."""
    assert refusal(ecr, apdu(0x07, 0x01, b"\x00")) == (0x84, 0x9A)
    assert ecr.converse(apdu(0x05, 0x01, PASSWORD)).completed

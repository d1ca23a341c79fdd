"""The till's ZVT client (on the shared codec) against byte sequences written out from the ZVT ECR-interface
specification, and against a scripted terminal on a real socket."""

from __future__ import annotations

import socket
import threading

import pytest

from harness.protocols import zvt
from harness.reference_till import ecr_client as z

# -- encoding: the till's requests, byte for byte ------------------------------------------------------------


def test_authorization_carries_amount_bcd_and_currency():
    # 06 01, LEN 0A, BMP 04 = 000000001999 (19.99), BMP 49 = 0978 (EUR)
    s = Script([("06 01 0a 04 000000001999 49 0978", "84 83 00")])
    with pytest.raises(z.NotStarted):
        client(s.address).authorization(1999, lambda info: zvt.ANSWER_BOOK)
    s.join()


def test_fixed_requests_match_the_spec():
    password = "000000"
    assert zvt.encode("status_enquiry", password=password) == bytes.fromhex("05 01 03 000000")
    assert zvt.encode("registration", password=password, config_byte=z.ECR_CONFIG,
                      currency=z.CURRENCY_EUR) == bytes.fromhex("06 00 06 000000 1a 0978")
    assert zvt.encode("repeat_receipt", password="123456") == bytes.fromhex("06 20 03 123456")
    assert zvt.encode("ecr_abort") == bytes.fromhex("06 b0 00")
    assert zvt.encode("reversal", password=password, receipt_no=12) == bytes.fromhex("06 30 06 000000 87 0012")
    assert zvt.ANSWER_BOOK == bytes.fromhex("80 00 00")
    assert zvt.ANSWER_WAIT == bytes.fromhex("84 9c 00")
    assert zvt.ANSWER_NO_GOODS == bytes.fromhex("84 66 00")


def test_the_client_sends_the_spec_requests():
    """Registration, status enquiry, repeat receipt and reversal go out byte for byte as written above."""
    for call, request in [(lambda c: c.register(), "06 00 06 000000 1a 0978"),
                          (lambda c: c.status_enquiry(), "05 01 03 000000"),
                          (lambda c: c.repeat_receipt(), "06 20 03 000000"),
                          (lambda c: c.reversal(12), "06 30 06 000000 87 0012")]:
        s = Script([(request, "80 00 00"), (None, "06 0f 00"), ("80 00 00", None)])
        assert call(client(s.address)).completed
        s.join()


def test_extended_length_form_for_long_apdus():
    data = bytes(300)
    raw = zvt.frame(*zvt.CONTROL["print_text_block"], data)
    assert raw[:5] == bytes.fromhex("06 d3 ff 2c 01")       # 300 = 0x012C, little-endian after FF
    apdu = zvt.Apdu.from_bytes(raw)
    assert (apdu.cls, apdu.ins, len(apdu.data)) == (0x06, 0xD3, 300)
    assert zvt.apdu_length(raw[:4]) is None                  # header incomplete: wait for more bytes


def test_amount_that_does_not_fit_is_refused():
    with pytest.raises(ValueError, match="does not fit"):
        zvt.encode("authorization", amount=10**12, currency=z.CURRENCY_EUR)


def test_ll_prefix():
    assert zvt.llvar_prefix(16, 2) == bytes.fromhex("f1 f6")
    assert zvt.llvar_prefix(123, 3) == bytes.fromhex("f1 f2 f3")


# -- decoding: what a terminal sends -------------------------------------------------------------------------
STATUS_INFO = bytes.fromhex(
    "04 0f 47"
    "27 00"                          # result: success
    "04 000000001999"                # amount 19.99
    "0b 000123"                      # trace
    "0c 142530 0d 1122 0e 2812"      # time, date, expiry
    "17 0001 19 40"                  # card sequence, payment type
    "22 f0 f8 4111111111111111"      # PAN, LL = 8 bytes (16 BCD digits)
    "29 52500038"                    # terminal id
    "3b 414243313233 0000"           # auth code "ABC123"
    "87 0042"                        # receipt number
    "8a 0a 8b f0 f4 56495341"        # card type, card name "VISA"
    "06 04 1f11 01 00"               # TLV: online flag = 0 (offline)
)


def status_info(bmps: str) -> zvt.Apdu:
    return zvt.Apdu(0x04, 0x0F, bytes.fromhex(bmps))


def test_status_information_bitmaps_are_decoded_and_the_pan_masked():
    apdu = zvt.Apdu.from_bytes(STATUS_INFO)
    f = z.fields(apdu)
    assert apdu.name == "status_information"
    assert f["result_code"] == 0 and f["amount"] == 1999 and f["trace"] == 123 and f["receipt_no"] == 42
    assert f["aid"] == "ABC123" and f["terminal_id"] == "52500038" and f["card_name"] == "VISA"
    assert f["pan"] == "411111******1111"
    assert f["tlv"]["online_flag"] == 0 and z.is_offline(f)
    assert "4111111111111111" not in str(z.summary(apdu))


def test_pan_already_masked_by_the_terminal_with_E_nibbles():
    f = z.fields(status_info("22 f0 f8 4111 11ee eeee 1111"))
    assert f["pan"] == "411111******1111"


def test_unknown_bitmap_stops_parsing_without_losing_bytes():
    f = z.fields(status_info("27 00 fe 01 02"))
    assert f == {"result_code": 0, "unparsed": "fe0102"}


@pytest.mark.parametrize("raw, message", [
    ("04 0f 05 27", "declares 5 data bytes but carries 1"),
    ("04", "truncated APDU header"),
])
def test_malformed_apdus_are_named(raw, message):
    with pytest.raises(zvt.ZvtError, match=message):
        zvt.Apdu.from_bytes(bytes.fromhex(raw))


def test_truncated_bitmap_is_malformed():
    with pytest.raises(z.MalformedApdu, match="amount"):
        z.fields(status_info("04 0000"))
    with pytest.raises(z.MalformedApdu, match="LLVAR length"):
        z.fields(status_info("22 31 36 41"))
    assert "LLVAR length" in z.summary(status_info("22 31 36 41"))["error"]      # the journal keeps a note


def test_abort_carries_the_result_code():
    apdu = zvt.Apdu.from_bytes(bytes.fromhex("06 1e 01 6c"))
    assert apdu.name == "abort" and z.fields(apdu) == {"result_code": 0x6C}


# -- the client against a scripted terminal on a real socket -------------------------------------------------
class Script:
    """Accept one connection; for each step expect bytes from the till, then send bytes."""

    def __init__(self, steps: list[tuple[str | None, str | None]], close_after: bool = True):
        self.steps = steps
        self.close_after = close_after
        self.server = socket.create_server(("127.0.0.1", 0))
        self.address = self.server.getsockname()[:2]
        self.got: list[bytes] = []
        self.error: str | None = None
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        conn, _ = self.server.accept()
        conn.settimeout(3)
        try:
            for expect, send in self.steps:
                if expect is not None:
                    want = bytes.fromhex(expect)
                    buf = b""
                    while len(buf) < len(want):
                        chunk = conn.recv(len(want) - len(buf))
                        if not chunk:
                            break
                        buf += chunk
                    self.got.append(buf)
                    if buf != want:
                        self.error = f"expected {want.hex(' ')}, got {buf.hex(' ')}"
                        return
                if send is not None:
                    conn.sendall(bytes.fromhex(send))
            if not self.close_after:
                conn.recv(100)
        finally:
            conn.close()
            self.server.close()

    def join(self) -> None:
        self.thread.join(3)
        assert self.error is None, self.error


def client(addr, result: float = 1.0) -> z.EcrClient:
    return z.EcrClient(addr, z.Timers(ack=0.5, result=result, overall=5.0))


def test_approved_authorization_full_exchange():
    s = Script([
        ("06 01 0a 04 000000001999 49 0978", "80 00 00"),
        (None, "04 ff 01 01"), ("80 00 00", None),                # intermediate status, acked
        (None, "06 d1 05 00 48 45 4c 4c"), ("80 00 00", None),    # a print line, acked
        (None, STATUS_INFO.hex()), ("80 00 00", None),             # booked
        (None, "06 0f 00"), ("80 00 00", None),
    ])
    seen = []
    result = client(s.address).authorization(1999, lambda info: seen.append(info) or zvt.ANSWER_BOOK)
    s.join()
    assert result.approved and result.completed and result.answered == "book"
    assert result.offline is True and result.intermediate == [1]
    assert seen[0]["aid"] == "ABC123"


def test_goods_refused_with_84_66_then_terminal_aborts():
    s = Script([
        ("06 01 0a 04 000000001999 49 0978", "80 00 00"),
        (None, STATUS_INFO.hex()), ("84 66 00", None),
        (None, "06 1e 01 66"), ("80 00 00", None),
    ])
    result = client(s.address).authorization(1999, lambda info: zvt.ANSWER_NO_GOODS)
    s.join()
    assert not result.approved and result.answered == "no-goods" and result.abort_code == 0x66


def test_declined_is_not_approved():
    s = Script([
        ("06 01 0a 04 000000000100 49 0978", "80 00 00"),
        (None, "04 0f 02 27 05"), ("80 00 00", None),
        (None, "06 1e 01 05"), ("80 00 00", None),
    ])
    result = client(s.address).authorization(100, lambda info: zvt.ANSWER_BOOK)
    s.join()
    assert not result.approved and result.result_code == 0x05


def test_no_ack_is_not_started():
    s = Script([("06 01 0a 04 000000000100 49 0978", None)], close_after=False)
    with pytest.raises(z.NotStarted, match="T3"):
        client(s.address).authorization(100, lambda info: zvt.ANSWER_BOOK)


def test_nak_is_not_started():
    s = Script([("06 01 0a 04 000000000100 49 0978", "84 83 00")])
    with pytest.raises(z.NotStarted, match="NAK 84 83"):
        client(s.address).authorization(100, lambda info: zvt.ANSWER_BOOK)
    s.join()


def test_silence_after_ack_is_a_lost_result():
    s = Script([("06 01 0a 04 000000000100 49 0978", "80 00 00")], close_after=False)
    with pytest.raises(z.ResultLost, match="no result"):
        client(s.address, result=0.3).authorization(100, lambda info: zvt.ANSWER_BOOK)


def test_connection_dropped_after_status_info_keeps_what_arrived():
    s = Script([
        ("06 01 0a 04 000000001999 49 0978", "80 00 00"),
        (None, STATUS_INFO.hex()), ("80 00 00", None),
    ])
    with pytest.raises(z.ResultLost) as err:
        client(s.address).authorization(1999, lambda info: zvt.ANSWER_BOOK)
    assert err.value.status_info["amount"] == 1999 and err.value.answered == "book"


def test_refused_connection_is_not_started():
    port = socket.create_server(("127.0.0.1", 0))
    addr = port.getsockname()[:2]
    port.close()
    with pytest.raises(z.NotStarted, match="cannot connect"):
        client(addr).authorization(100, lambda info: zvt.ANSWER_BOOK)


def test_repeat_receipt_reports_the_last_transaction():
    s = Script([("06 20 03 000000", "80 00 00"), (None, STATUS_INFO.hex()), ("80 00 00", None),
                (None, "06 0f 00"), ("80 00 00", None)])
    last = client(s.address).repeat_receipt()
    s.join()
    assert last.status_info["trace"] == 123 and last.completed


def test_apdu_split_across_segments_is_reassembled():
    half = len(STATUS_INFO) // 2
    s = Script([("06 20 03 000000", "80 00 00"), (None, STATUS_INFO[:half].hex()),
                (None, STATUS_INFO[half:].hex()), ("80 00 00", "06 0f 00"), ("80 00 00", None)])
    last = client(s.address).repeat_receipt()
    s.join()
    assert last.status_info["receipt_no"] == 42


def test_late_request_is_withdrawn_on_the_same_connection():
    """No ack within T3: the 06 01 may only be delayed on the link, so 06 B0 follows it on the same connection;
    a terminal that gets both aborts instead of taking a payment the till has given up on."""
    s = Script([
        ("06 01 0a 04 000000000100 49 0978", None),       # the request arrives, the ack is not sent in time
        ("06 b0 00", "80 00 00"),                          # the till's abort follows in the same stream
        (None, "06 1e 01 6c"), ("80 00 00", None),         # the terminal stops: aborted
    ])
    result = client(s.address).authorization(100, lambda info: zvt.ANSWER_BOOK)
    s.join()
    assert not result.approved and result.abort_code == 0x6C

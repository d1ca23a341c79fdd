"""The shared ZVT codec against byte layouts written out by hand from the specification."""

from __future__ import annotations

import pytest

from harness.protocols import zvt


def test_short_and_extended_lengths():
    assert zvt.frame(0x06, 0x0F) == bytes.fromhex("060f00")
    assert zvt.frame(0x06, 0xD1, b"x" * 254)[:3] == bytes.fromhex("06d1fe")
    long = zvt.frame(0x06, 0xD1, b"x" * 300)
    assert long[:5] == bytes.fromhex("06d1ff2c01")  # FF, then 300 = 0x012C low byte first
    assert len(long) == 305
    assert zvt.frame(0x06, 0xD1, b"x" * 255)[:5] == bytes.fromhex("06d1ffff00")
    [apdu] = zvt.ApduReader().feed(long)
    assert apdu.data == b"x" * 300


def test_reader_waits_for_half_apdus_and_splits_several():
    reader = zvt.ApduReader()
    raw = bytes.fromhex("800000") + bytes.fromhex("061e016c") + zvt.frame(0x06, 0xD1, b"y" * 400)
    out = []
    for i in range(0, len(raw), 7):
        out += reader.feed(raw[i : i + 7])
    assert [a.name for a in out] == ["ack", "abort", "print_line"]
    assert reader.pending == b""


def test_reader_drops_garbage_with_a_clear_error():
    reader = zvt.ApduReader()
    with pytest.raises(zvt.ZvtError, match="unknown APDU class 17"):
        reader.feed(b"\x17\x00\x00")
    assert reader.pending == b""
    with pytest.raises(zvt.ZvtError, match="announces 65535"):
        reader.feed(b"\x06\x01\xff\xff\xff")
    assert reader.feed(bytes.fromhex("800000"))[0].name == "ack"


def test_authorization_layout():
    # 06 01 | len 0e | 04 amount 000000001999 | 49 0978 | 01 timeout 3c | 02 max status 05
    raw = bytes.fromhex("06010e04000000001999490978013c0205")
    msg = zvt.decode_apdu(zvt.ApduReader().feed(raw)[0])
    assert msg.name == "authorization"
    assert msg.fields == {"amount": 1999, "currency": 978, "timeout": 60, "max_status_infos": 5}
    assert zvt.encode("authorization", amount=1999, currency=978, timeout=60, max_status_infos=5) == raw


def test_registration_with_and_without_currency():
    with_cc = zvt.decode_apdu(zvt.ApduReader().feed(bytes.fromhex("060006123456ba0978"))[0])
    assert with_cc.fields == {"password": 123456, "config_byte": 0xBA, "currency": 978}
    with_sb = zvt.decode_apdu(zvt.ApduReader().feed(bytes.fromhex("06000600000008" + "0301"))[0])
    assert with_sb.fields == {"password": 0, "config_byte": 0x08, "service_byte": 1}


def test_status_information_masked_pan_llvar_and_ascii():
    # 27 00 | 22 F0 F8 41 11 11 EE EE EE 11 11 | 8B F0 F4 'VISA' | 3B '123456' 00 00 | 87 0042 | 0C 101112 | 0D
    # 1122
    raw = bytes.fromhex(
        "040f2e"
        "2700"
        "22f0f8411111eeeeee1111"
        "8bf0f4" + b"VISA".hex() + "3b" + b"123456\0\0".hex() + "870042"
        "0c101112"
        "0d1122"
        "0b000017"
    )
    raw = raw[:2] + bytes([len(raw) - 3]) + raw[3:]
    msg = zvt.decode_apdu(zvt.ApduReader().feed(raw)[0])
    assert msg.fields["pan"] == "411111******1111"
    assert msg.fields["card_name"] == "VISA"
    assert msg.fields["receipt_no"] == 42 and msg.fields["trace"] == 17
    assert msg.fields["time"] == "101112" and msg.fields["date"] == "1122"
    assert msg.fields["aid"] == "123456"
    again = zvt.encode("status_information", **msg.fields)
    assert again == raw
    # a terminal padding the AID with blanks instead of 00 means the same code
    blanks = raw.replace(b"123456\0\0", b"123456  ")
    assert zvt.decode_apdu(zvt.ApduReader().feed(blanks)[0]).fields["aid"] == "123456"


def test_bcd_and_llvar_primitives():
    assert zvt.bcd_encode(1999, 6).hex() == "000000001999"
    assert zvt.bcd_decode(bytes.fromhex("0978")) == 978
    assert zvt.llvar_prefix(12, 2) == b"\xf1\xf2" and zvt.llvar_prefix(300, 3) == b"\xf3\xf0\xf0"
    assert zvt.digits_encode("12345") == bytes.fromhex("12345f")
    with pytest.raises(zvt.ZvtError, match="BCD"):
        zvt.bcd_decode(b"\x1a")
    with pytest.raises(zvt.ZvtError):
        zvt.bcd_encode(10**12, 6)


def test_malformed_bmps_name_the_problem():
    with pytest.raises(zvt.ZvtError, match="unknown BMP 77"):
        zvt.decode_apdu(zvt.Apdu(0x06, 0x01, b"\x77\x00"))
    with pytest.raises(zvt.ZvtError, match="amount"):
        zvt.decode_apdu(zvt.Apdu(0x06, 0x01, b"\x04\x00\x00"))
    with pytest.raises(zvt.ZvtError, match="LLVAR"):
        zvt.decode_apdu(zvt.Apdu(0x04, 0x0F, b"\x22\x01\x02"))


def test_status_enquiry_completion_and_nack():
    raw = zvt.encode("completion", sw_version="v1", terminal_status=0)
    assert raw == bytes.fromhex("060f06f0f0f2") + b"v1" + b"\x00"
    assert zvt.decode_apdu(zvt.ApduReader().feed(raw)[0]).fields == {"sw_version": "v1", "terminal_status": 0}
    nack = zvt.ApduReader().feed(bytes.fromhex("846600"))[0]
    assert nack.name == "nack" and zvt.decode_apdu(nack).fields["result_code"] == 0x66


def test_iso_response_codes_map_to_result_codes():
    assert (
        zvt.result_from_iso("00") == 0 and zvt.result_from_iso("05") == 5 and zvt.result_from_iso("51") == 51
    )
    assert zvt.result_from_iso("Z3") == 0xFF and zvt.result_from_iso("91") == 0xFF

"""The ESC/POS decoder, command by command, from bytes built with the command table."""

from __future__ import annotations

from decimal import Decimal

import pytest

from harness.protocols.escpos import commands as C
from harness.protocols.escpos.decoder import Decoder, decode
from harness.protocols.escpos.receipt import ReceiptBuilder


def kinds(events):
    return [e.kind for e in events]


def one(data: bytes, **kw):
    events = decode(data, **kw)
    assert len(events) == 1, events
    return events[0]


def test_every_event_keeps_its_bytes_and_offset():
    data = C.INITIALIZE + b"abc\n" + C.ESC + b"E\x01" + b"x" + C.CUT_FULL
    events = decode(data)
    assert b"".join(e.raw for e in events) == data
    assert [e.offset for e in events] == [0, 2, 5, 6, 9, 10]


@pytest.mark.parametrize(("data", "attr", "value"), [
    (C.ESC + b"E\x01", "bold", 1), (C.ESC + b"E\x00", "bold", 0), (C.ESC + b"-\x02", "underline", 2),
    (C.ESC + b"a\x01", "align", 1), (C.ESC + b"M\x01", "font", 1), (C.GS + b"B\x01", "invert", 1),
    (C.GS + b"!\x11", "size", (2, 2)), (C.GS + b"!\x70", "size", (8, 1)),
    (C.ESC + b"!\x38", "print_mode", 0x38),
    (C.ESC + b"G\x01", "double_strike", 1), (C.ESC + b"{\x01", "upside_down", 1),
    (C.FS + b"!\x0c", "chinese_print_mode", 0x0C),
])
def test_styles(data, attr, value):
    e = one(data)
    assert (e.kind, e.attr, e.value) == ("Style", attr, value)


def test_code_page_changes_how_text_decodes():
    events = decode(C.ESC + b"t\x00\x82\n" + C.ESC + b"t\x10\x80\xe9\n" + C.ESC + b"t\x11\xa0\n")
    texts = [e.text for e in events if e.kind == "Text"]
    assert texts == ["é", "€é", "а"]                 # cp437 0x82, cp1252 0x80 0xe9, cp866 0xa0
    assert [e.codec for e in events if e.kind == "CodePage"] == ["cp437", "cp1252", "cp866"]


def test_unknown_code_page_is_recorded_with_no_codec():
    e = one(C.ESC + b"t\x63")
    assert e.kind == "CodePage" and e.number == 0x63 and e.codec is None


@pytest.mark.parametrize("text", ["A", "中文", "¥", "€", "𠀀"])   # GB18030 1, 2 and 4-byte characters
def test_chinese_mode_gb18030(text):
    data = C.CHINESE_ON + text.encode("gb18030") + b"\n" + C.CHINESE_OFF
    events = decode(data)
    assert kinds(events) == ["ChineseMode", "Text", "Feed", "ChineseMode"]
    assert events[1].text == text and events[1].codec == "gb18030"


def test_profile_booting_in_chinese_mode_and_fs_dot():
    data = "超".encode("gb18030") + b"\n" + C.CHINESE_OFF + "超".encode("gb18030") + b"\n"
    texts = [e.text for e in decode(data, chinese=True) if e.kind == "Text"]
    assert texts[0] == "超" and texts[1] != "超"


def test_initialize_restores_profile_defaults():
    data = C.ESC + b"t\x10" + C.CHINESE_OFF + C.INITIALIZE + "中".encode("gb18030")
    events = decode(data, chinese=True)
    assert events[-1].text == "中"


def test_barcode_form_a_and_b():
    a = one(C.GS + b"k\x02" + b"4006381333931" + b"\x00")
    b = one(C.GS + b"k\x49\x08{BA-1234")
    assert (a.symbology, a.form, a.data) == ("EAN13", "A", b"4006381333931")
    assert (b.symbology, b.form, b.data) == ("CODE128", "B", b"{BA-1234")


def test_barcode_picks_up_height_width_and_hri():
    events = decode(C.GS + b"h\x50" + C.GS + b"w\x02" + C.GS + b"H\x02" + C.GS + b"k\x04ABC\x00")
    bc = events[-1]
    assert (bc.symbology, bc.height, bc.width, bc.hri) == ("CODE39", 0x50, 2, 2)


def qr_bytes(payload: bytes, size: int = 6, ec: int = 49) -> bytes:
    def fn(body: bytes) -> bytes:
        return C.GS + b"(k" + len(body).to_bytes(2, "little") + body
    return (fn(b"1A2\x00") + fn(b"1C" + bytes([size])) + fn(b"1E" + bytes([ec])) + fn(b"1P0" + payload)
            + fn(b"1Q0"))


def test_native_qr_store_and_print():
    events = decode(qr_bytes(b"https://x.example/1"))
    prints = [e for e in events if e.kind == "Symbol" and e.is_qr_print]
    assert len(prints) == 1
    assert (prints[0].payload, prints[0].size, prints[0].error_level) == (b"https://x.example/1", 6, "M")


def test_raster_image_is_taken_whole():
    bits = bytes(range(256)) * 4                      # 8 bytes wide x 128 rows, including 10 04 01 sequences
    e = one(C.GS + b"v0\x00\x08\x00\x80\x00" + bits)
    assert (e.kind, e.mode, e.width, e.height, e.bits) == ("Image", "raster", 64, 128, bits)


def test_column_image_24_dot():
    cols = 5
    data = bytes([0x80, 0x00, 0x01] * cols)           # top dot and bottom dot of every column
    e = one(C.ESC + b"*\x21" + cols.to_bytes(2, "little") + data)
    assert (e.mode, e.width, e.height) == ("column", 5, 24)
    row = (5 + 7) // 8
    assert e.bits[0] == 0xF8 and e.bits[23 * row] == 0xF8 and not any(e.bits[row:23 * row])


def test_column_image_8_dot():
    e = one(C.ESC + b"*\x00\x02\x00" + b"\xff\x01")
    assert (e.width, e.height) == (2, 8) and e.bits[0] == 0x80 and e.bits[7] == 0xC0


def graphics_store(w: int, h: int, bits: bytes, four_byte: bool = False) -> bytes:
    body = b"0p0\x01\x011" + w.to_bytes(2, "little") + h.to_bytes(2, "little") + bits
    if four_byte:
        return C.GS + b"8L" + len(body).to_bytes(4, "little") + body
    return C.GS + b"(L" + len(body).to_bytes(2, "little") + body


@pytest.mark.parametrize("four_byte", [False, True])
def test_graphics_store_then_print(four_byte):
    bits = b"\xaa\x55" * 8
    events = decode(graphics_store(16, 8, bits, four_byte) + C.GS + b"(L\x02\x0002")
    assert kinds(events) == ["Graphics", "Image"]
    assert (events[1].mode, events[1].width, events[1].height, events[1].bits) == ("graphics", 16, 8, bits)


def test_graphics_print_without_store_is_unknown():
    assert one(C.GS + b"(L\x02\x0002").kind == "Unknown"


@pytest.mark.parametrize(("data", "mode", "feed"), [
    (b"\x1dV\x00", "full", None), (b"\x1dV0", "full", None), (b"\x1dV\x01", "partial", None),
    (b"\x1dV1", "partial", None), (b"\x1dVA\x05", "full", 5), (b"\x1dVB\x00", "partial", 0),
    (b"\x1dVa\x03", "full", 3), (b"\x1dVb\x03", "partial", 3), (b"\x1dVg\x01", "full", 1),
    (b"\x1dVh\x01", "partial", 1), (b"\x1bi", "partial", None), (b"\x1bm", "partial", None),
])
def test_every_cut_variant(data, mode, feed):
    e = one(data)
    assert (e.kind, e.mode, e.feed) == ("Cut", mode, feed)


@pytest.mark.parametrize(("data", "pin", "on_ms"), [
    (b"\x1bp\x00\x19\xfa", 2, 50), (b"\x1bp\x01\x32\x32", 5, 100), (b"\x1bp0\x19\x19", 2, 50),
    (b"\x10\x14\x01\x00\x01", 2, 100),
])
def test_drawer_pulses(data, pin, on_ms):
    e = one(data)
    assert (e.kind, e.pin, e.on_ms) == ("DrawerPulse", pin, on_ms)


def test_feeds():
    events = decode(b"\n" + C.ESC + b"d\x03" + C.ESC + b"J\x10" + C.ESC + b"e\x02")
    assert [(e.unit, e.amount) for e in events] == [("line", 1), ("lines", 3), ("dots", 16), ("lines", -2)]


@pytest.mark.parametrize(("data", "request_", "n"), [
    (b"\x10\x04\x01", "dle_eot", 1), (b"\x10\x04\x04", "dle_eot", 4), (b"\x1dr\x01", "gs_r", 1),
    (b"\x1dI\x43", "gs_i", 0x43), (b"\x1da\xff", "asb", 0xFF), (b"\x1bv", "esc_v", 0),
])
def test_status_requests(data, request_, n):
    e = one(data)
    assert (e.kind, e.request, e.n) == ("StatusRequest", request_, n)


def test_unknown_commands_are_skipped_by_length_and_recorded():
    events = decode(C.GS + b"(z\x05\x00ABCDE" + b"ok\n" + C.ESC + b"\xf0" + b"x" + b"\x07" + b"\n")
    assert kinds(events) == ["Unknown", "Text", "Feed", "Unknown", "Text", "Unknown", "Feed"]
    assert events[0].raw == C.GS + b"(z\x05\x00ABCDE" and "length field" in events[0].reason
    assert events[1].text == "ok" and events[4].text == "x"


def test_prefix_followed_by_control_byte_does_not_swallow_it():
    events = decode(C.ESC + b"\n")
    assert kinds(events) == ["Unknown", "Feed"]


def test_finish_reports_a_command_cut_short_and_trailing_text():
    d = Decoder()
    assert d.feed(b"abc") == []                      # a text run ends only at a control byte or at finish
    ended = d.feed(C.GS + b"v0\x00\x01\x00\x10\x00" + b"\x00" * 3)   # image of 16 bytes, 3 sent
    assert kinds(ended) == ["Text"] and ended[0].text == "abc"
    tail = d.finish()
    assert kinds(tail) == ["Incomplete"] and tail[0].raw.startswith(C.GS + b"v0")
    d2 = Decoder()
    assert d2.feed(b"xyz") == [] and [e.text for e in d2.finish()] == ["xyz"]


def test_large_payload_waits_for_its_declared_length_without_reparsing():
    d = Decoder()
    header = C.GS + b"v0\x00" + (100).to_bytes(2, "little") + (1000).to_bytes(2, "little")
    assert d.feed(header) == []
    for _ in range(99):
        assert d.feed(b"\x00" * 1000) == []
    events = d.feed(b"\x00" * 1000)
    assert kinds(events) == ["Image"] and len(events[0].bits) == 100_000


def test_receipts_split_at_cuts_and_keep_amounts():
    builder = ReceiptBuilder()
    receipts = builder.add(decode(b"Milk 1.19\nBread 2,49\nTOTAL 1.234,00\n" + C.CUT_PARTIAL + b"next\n"))
    assert len(receipts) == 1
    r = receipts[0]
    assert r.lines == ["Milk 1.19", "Bread 2,49", "TOTAL 1.234,00"]
    assert [str(a) for a in r.amounts] == ["1.19", "2.49", "1234.00"]
    assert r.cut == "partial"
    rest = builder.flush()
    assert rest.lines == ["next"] and rest.cut is None


def test_line_amounts_give_each_line_its_label_and_last_amount():
    (r,) = ReceiptBuilder().add(decode(
        b"CORNER SHOP\nMilk 1l 2 x 1.19       2.38\n  offer           -0.50\nBread 2,49\n"
        b"TOTAL EUR     1.234,00\n12.50\nCard ****1111\n" + C.CUT_FULL))
    assert r.line_amounts() == [("Milk 1l 2 x 1.19", Decimal("2.38")), ("offer", Decimal("-0.50")),
                                ("Bread", Decimal("2.49")), ("TOTAL EUR", Decimal("1234.00")),
                                ("", Decimal("12.50"))]
    assert [a for _, a in r.line_amounts()] == [r.amounts[i] for i in (1, 2, 3, 4, 5)]   # one AMOUNT pattern
    assert ReceiptBuilder().flush() is None


def test_variable_image_gs_q0_is_taken_whole():
    bits = bytes(range(16))
    e = one(C.VARIABLE_IMAGE + b"\x00\x02\x00\x08\x00" + bits)
    assert (e.kind, e.mode, e.width, e.height, e.bits) == ("Image", "variable", 16, 8, bits)


def test_implausible_declared_length_does_not_swallow_the_stream():
    events = decode(C.GS + b"v0\x00\xff\xff\xff\xff" + b"after\n")
    assert events[0].kind == "Unknown" and "garbage" in events[0].reason
    assert [e.text for e in events if e.kind == "Text"][-1].endswith("after")


def test_gbk_only_printer_garbles_four_byte_gb18030():
    data = "牛奶¥5".encode("gb18030") + b"\n"
    gbk = [e.text for e in decode(data, chinese=True, chinese_codec="gbk") if e.kind == "Text"][0]
    assert gbk.startswith("牛奶") and "¥" not in gbk and gbk.endswith("5")
    assert [e.text for e in decode(data, chinese=True) if e.kind == "Text"] == ["牛奶¥5"]

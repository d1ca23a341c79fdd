"""python-escpos 3.1, unchanged, as the client over TCP, the pty and USB/IP."""

from __future__ import annotations

from decimal import Decimal

import pytest
from PIL import Image, ImageDraw

TRANSPORTS = ("tcp", "serial", "usb")


def pattern(width: int = 96, height: int = 48) -> Image.Image:
    """An asymmetric 1-bit test image (white background, black shapes)."""
    im = Image.new("1", (width, height), 1)
    d = ImageDraw.Draw(im)
    d.rectangle((4, 4, 30, 20), fill=0)
    d.line((0, height - 1, width - 1, 0), fill=0, width=3)
    d.ellipse((60, 24, 90, 44), fill=0)
    return im


def assert_same_pixels(decoded, original: Image.Image) -> None:
    """Every pixel of `original` is black exactly where the decoded image is black."""
    assert decoded.width >= original.width and decoded.height >= original.height
    px = original.load()
    wrong = [(x, y) for y in range(original.height) for x in range(original.width)
             if decoded.pixel(x, y) != (px[x, y] == 0)]
    assert not wrong, f"{len(wrong)} pixels differ, first {wrong[:5]}"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_styled_text_barcode_qr_images_cut_and_drawer(serve, transport):
    s = serve(transport, "tm-t88")
    p = s.client()
    p.set(align="center", bold=True, double_height=True, double_width=True)
    p.text("CORNER SHOP\n")
    p.set(align="left", bold=False, normal_textsize=True, underline=1)
    p.text("Café au lait   3.20\n")
    p.set(underline=0, invert=True)
    p.text("TOTAL EUR     12.50\n")
    p.set(invert=False)
    p.barcode("4006381333931", "EAN13")
    p.barcode("{BPOS-4711", "CODE128", function_type="B")
    p.qr("https://pay.example/r/4711", native=True, size=5)
    im = pattern()
    for impl in ("bitImageRaster", "bitImageColumn", "graphics"):
        p.image(im, impl=impl)
    p.cut()
    r = s.core.wait_for_receipt(10)
    assert r.lines == ["CORNER SHOP", "Café au lait   3.20", "TOTAL EUR     12.50"]
    assert r.amounts == [Decimal("3.20"), Decimal("12.50")]
    assert r.cut == "full"
    first, second = r.blocks[0].segments[0][1], r.blocks[1].segments[0][1]
    assert (first.bold, first.width, first.height, r.blocks[0].align) == (True, 2, 2, 1)
    assert (second.bold, second.underline, r.blocks[1].align) == (False, 1, 0)
    assert r.blocks[2].segments[0][1].invert
    assert [(b.symbology, b.data) for b in r.barcodes] == [("EAN13", "4006381333931"), ("CODE128", "{BPOS-4711")]
    assert r.qr_codes == ["https://pay.example/r/4711"]
    assert [i.mode for i in r.images] == ["raster", "column", "graphics"]
    for decoded in r.images:
        assert_same_pixels(decoded, im)

    p.text("second slip\n")
    p.cashdraw(2)
    p.cashdraw(5)
    p.cut(mode="PART")
    r2 = s.core.wait_for_receipt(10)
    assert r2.lines == ["second slip"] and r2.cut == "partial" and r2.drawer_pulses == [2, 5]
    assert not [e for e in r.events + r2.events if e.kind in ("Unknown", "Incomplete")]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_chinese_text_on_the_gb18030_clone(serve, transport):
    s = serve(transport, "gb18030-clone")
    p = s.client()
    p.text("超市收据\n")
    p.text("牛奶 x2  ¥12.50\n")
    p.cut()
    r = s.core.wait_for_receipt(10)
    assert r.lines == ["超市收据", "牛奶 x2  ¥12.50"]
    assert r.amounts == [Decimal("12.50")]
    assert b"\x81\x30\x84\x36" in r.raw          # the yen sign as a 4-byte GB18030 sequence


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_chinese_bytes_on_the_tm_t88_are_not_chinese(serve, transport):
    """python-escpos sends GB18030 without FS &: a printer not in Chinese mode prints code-page garbage."""
    s = serve(transport, "tm-t88")
    p = s.client()
    p.text("超市\n")
    p.cut()
    r = s.core.wait_for_receipt(10)
    assert r.lines and "超市" not in r.lines[0]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("fault", "online", "paper"), [
    (None, True, 2), ("paper_out", False, 0), ("offline", False, 2), ("cover_open", False, 2),
    ("paper_near_end", True, 1),
])
def test_is_online_and_paper_status(serve, transport, fault, online, paper):
    s = serve(transport)
    p = s.client()
    s.core.set_fault(fault)
    assert p.is_online() is online
    assert p.paper_status() == paper

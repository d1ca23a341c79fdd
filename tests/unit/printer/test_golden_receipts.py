"""Golden receipt images (issue 15): a small set of receipts rendered and compared with committed PNGs within a
tolerance (`harness.printer.golden`): one printed by python-escpos through its real TCP client, a GB18030
Chinese receipt, a raster image (GS v 0), barcodes with HRI text, a QR code.

Regenerate on purpose only, then look at the PNGs in tests/unit/printer/golden/ before committing them:

    POSRIG_REGENERATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/printer/test_golden_receipts.py
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from harness.printer import golden, render
from harness.protocols.escpos import commands as C
from harness.protocols.escpos.decoder import decode
from harness.protocols.escpos.receipt import ReceiptBuilder

GOLDEN = Path(__file__).parent / "golden"
ESC, GS, FS = b"\x1b", b"\x1d", b"\x1c"


def built(data: bytes, chinese: bool = False):
    (r,) = ReceiptBuilder().add(decode(ESC + b"@" + data + C.CUT_FULL, chinese=chinese))
    return r


def raster(width: int, height: int) -> bytes:
    """GS v 0 of an asymmetric 1-bit pattern: a frame, a filled box, a diagonal."""
    im = Image.new("1", (width, height), 0)
    px = im.load()
    for y in range(height):
        for x in range(width):
            px[x, y] = int(x in (0, width - 1) or y in (0, height - 1) or (8 <= x < 40 and 8 <= y < 24)
                           or abs(x - 2 * y) < 2)
    row = (width + 7) // 8
    bits = im.tobytes()       # '1' mode: 1 = white here, so invert for printer dots (1 = black)
    dots = bytes(b ^ 0xFF for b in bits)
    return GS + b"v0\x00" + bytes([row, 0, height & 0xFF, height >> 8]) + dots


RECEIPTS = {
    "chinese-gb18030": lambda: built(
        ESC + b"a\x01" + FS + b"&" + "超市收据\n".encode("gb18030") + ESC + b"a\x00"
        + "牛奶 1升          ¥ 12.50\n面包两个         ¥  8.00\n合计             ¥ 20.50\n".encode("gb18030")
        + FS + b".", chinese=True),
    "raster-image": lambda: built(ESC + b"a\x01" + raster(96, 48) + b"\nLOGO ABOVE\n"),
    "barcodes": lambda: built(
        GS + b"h\x50" + GS + b"w\x02" + b"EAN-13, GS H 2 (below):\n" + GS + b"H\x02" + GS + b"k\x024006381333931\x00"
        + b"\nCODE39, GS H 0 (none):\n" + GS + b"H\x00" + GS + b"k\x04AB-12\x00"
        + b"\nCODE128, GS H 3 (both):\n" + GS + b"H\x03" + GS + b"kI\x0c{BPOS-4711xx"),
    "qr": lambda: built(
        ESC + b"a\x01" + GS + b"(k\x03\x001C\x04" + GS + b"(k\x03\x001E1"
        + GS + b"(k\x1d\x001P0https://pay.example/r/4711" + GS + b"(k\x03\x001Q0" + b"SCAN TO PAY\n"),
}


@pytest.mark.parametrize("name", sorted(RECEIPTS))
def test_golden_receipt(name, tmp_path):
    image = render.render_image(RECEIPTS[name]())
    golden.check(image, GOLDEN / f"{name}.png", tmp_path)


def test_golden_python_escpos_receipt(serve, tmp_path):
    """Printed by python-escpos 3.1 (unchanged) over TCP into the emulated printer, then rendered."""
    s = serve("tcp", "tm-t88")
    p = s.client()
    p.set(align="center", bold=True, double_height=True, double_width=True)
    p.text("CORNER SHOP\n")
    p.set(align="left", bold=False, normal_textsize=True)
    p.text("Cafe au lait          3.20\nCroissant x2          4.40\n")
    p.set(underline=1)
    p.text("Orange juice          4.90\n")
    p.set(underline=0, invert=True)
    p.text("TOTAL EUR            12.50\n")
    p.set(invert=False, align="center", font="b")
    p.text("Thank you - receipt 0042\n")
    p.cut()
    receipt = s.core.wait_for_receipt(10)
    golden.check(render.render_image(receipt), GOLDEN / "python-escpos.png", tmp_path)


def test_a_changed_receipt_is_caught(tmp_path):
    """The comparison is not vacuous: one price changed, or one more line, fails against the golden."""
    changed = built(ESC + b"a\x01" + raster(96, 48) + b"\nLOGO ABOVF\n")
    with pytest.raises(AssertionError, match="in one character cell"):
        golden.check(render.render_image(changed), GOLDEN / "raster-image.png", tmp_path)
    assert (tmp_path / "raster-image.png").exists()
    longer = built(ESC + b"a\x01" + raster(96, 48) + b"\nLOGO ABOVE\nONE MORE\n")
    with pytest.raises(AssertionError, match="size"):
        golden.check(render.render_image(longer), GOLDEN / "raster-image.png", tmp_path)

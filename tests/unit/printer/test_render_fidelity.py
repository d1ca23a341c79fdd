"""Receipt images as a printer draws them (issue 15): the monospaced CJK face and character cells (padded
columns line up), barcode HRI text as GS H sets it, QR modules at their true size, the euro in PC857."""

from __future__ import annotations

import pytest
from PIL import Image, ImageFont

from harness.printer import render
from harness.protocols.escpos import commands as C
from harness.protocols.escpos.decoder import decode
from harness.protocols.escpos.receipt import BarcodeBlock, QrBlock, ReceiptBuilder

GS = b"\x1d"


def receipt(data: bytes, chinese: bool = False):
    (r,) = ReceiptBuilder().add(decode(data + C.CUT_FULL, chinese=chinese))
    return r


def inked_rows(im: Image.Image) -> list[int]:
    im = im.convert("L")
    return [y for y in range(im.height) if any(im.getpixel((x, y)) < 128 for x in range(im.width))]


def rightmost_ink(im: Image.Image, top: int, bottom: int) -> int:
    im = im.convert("L")
    return max(x for x in range(im.width) for y in range(top, bottom) if im.getpixel((x, y)) < 128)


# -- the monospaced face, character cells ----------------------------------------------------------------------------
def test_the_renderer_uses_the_mono_face_of_wqy_zenhei():
    font = render._font(render.FONT_A_PX)
    assert font.getname()[0] == render.MONO_FACE == "WenQuanYi Zen Hei Mono"
    proportional = ImageFont.truetype(render.CJK_FONT, render.FONT_A_PX, index=0)
    assert proportional.getname()[0] == "WenQuanYi Zen Hei"         # face 0: what it used before
    assert {font.getlength(c) for c in "iW1 "} == {render.CELL_A}   # every half-width glyph one cell


@pytest.mark.parametrize("chinese", [False, True])
def test_space_padded_price_columns_line_up(chinese):
    items = ["iiiiiiii", "WWWWWWWW", "Milk 1L", "EUR € x2"] if not chinese else ["牛奶", "面包两个", "Tea", "咖啡x2"]
    lines = []
    for name in items:
        pad = 20 - sum(2 if "\u4e00" <= ch <= "\u9fff" else 1 for ch in name)
        lines.append(name + " " * pad + "12.50")
    data = "\n".join(lines).encode("gb18030" if chinese else "cp1252") + b"\n"
    if not chinese:
        data = b"\x1bt\x10" + data                                   # ESC t 16: WPC1252, 0x80 = euro
    im = render.render_image(receipt(data, chinese=chinese))
    line_h = render.FONT_A_PX + 4 + render.LINE_GAP
    rights = [rightmost_ink(im, render.MARGIN + i * line_h, render.MARGIN + (i + 1) * line_h) for i in range(4)]
    assert len(set(rights)) == 1, rights                             # the price column ends at one x
    lefts = []
    for i in range(4):                                               # and starts at one x: column 20
        top = render.MARGIN + i * line_h
        col20 = render.MARGIN + 20 * render.CELL_A
        lefts.append(min(x for x in range(col20 - 2, im.width) for y in range(top, top + line_h)
                         if im.getpixel((x, y)) < 128))
    assert len(set(lefts)) == 1 and abs(lefts[0] - (render.MARGIN + 20 * render.CELL_A)) <= 3, lefts


# -- barcode human-readable text (GS H) ------------------------------------------------------------------------------
@pytest.mark.parametrize("hri", [0, 48])
def test_gs_h_0_draws_no_text_above_or_below_the_bars(hri):
    im = render.barcode_image(BarcodeBlock("EAN13", "4006381333931", 80, 3, hri)).convert("L")
    rows = inked_rows(im)
    patterns = {tuple(im.getpixel((x, y)) < 128 for x in range(im.width)) for y in rows}
    assert len(patterns) == 1                 # every inked row is the same row of bars: no digits anywhere
    assert rows == list(range(rows[0], rows[-1] + 1))


@pytest.mark.parametrize(("hri", "above", "below"), [(1, True, False), (2, False, True), (3, True, True),
                                                     (50, False, True)])
def test_gs_h_places_the_digits(hri, above, below):
    plain = render.barcode_image(BarcodeBlock("CODE39", "AB12", 80, 2, 0)).convert("L")
    im = render.barcode_image(BarcodeBlock("CODE39", "AB12", 80, 2, hri)).convert("L")
    bar_row = tuple(plain.getpixel((x, inked_rows(plain)[0])) < 128 for x in range(plain.width))
    rows = inked_rows(im)
    bars = [y for y in rows if tuple(im.getpixel((x, y)) < 128 for x in range(im.width)) == bar_row]
    text_above = [y for y in rows if y < bars[0]]
    text_below = [y for y in rows if y > bars[-1]]
    assert bool(text_above) is above and bool(text_below) is below
    assert im.width == plain.width                                    # the text fits under the bars


def test_gs_h_from_the_byte_stream_reaches_the_image():
    bars = GS + b"h\x50" + GS + b"w\x02" + GS + b"k\x04AB12\x00"
    none = render.render_image(receipt(GS + b"H\x00" + bars))
    both = render.render_image(receipt(GS + b"H\x03" + bars))
    assert both.height > none.height


# -- QR module size (GS ( k 1 C n) -------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [3, 4, 8])
def test_qr_modules_are_drawn_at_their_true_size(size):
    im = render.qr_image(QrBlock("https://pay.example/r/4711", size, "M")).convert("L")
    quiet = render.QR_QUIET_MODULES * size
    row = [im.getpixel((x, quiet)) < 128 for x in range(im.width)]
    run = row.index(False, quiet) - quiet      # the finder pattern's top edge: 7 modules
    assert run == 7 * size
    assert row[:quiet] == [False] * quiet      # the quiet zone: 2 modules


def test_qr_module_size_from_the_byte_stream():
    qr = (GS + b"(k\x03\x001C\x05" + GS + b"(k\x1c\x001P0https://pay.example/r/4711" + GS + b"(k\x03\x001Q0")
    (block,) = [b for b in receipt(qr).blocks if isinstance(b, QrBlock)]
    assert block.size == 5
    im = render.qr_image(block).convert("L")
    quiet = render.QR_QUIET_MODULES * 5
    row = [im.getpixel((x, quiet)) < 128 for x in range(im.width)]
    assert row.index(False, quiet) - quiet == 7 * 5                   # finder pattern: 7 modules of 5 dots


# -- code page 13 (PC857): 0xD5 is the euro --------------------------------------------------------------------------
def test_pc857_d5_is_the_euro_sign():
    r = receipt(b"\x1bt\x0dTOTAL \xd5 12,50\n")                       # ESC t 13
    assert "TOTAL € 12,50" in r.lines
    assert not r.codec_notes

"""Renderers: text, HTML and PNG views of decoded receipts (barcodes and QR drawn, Chinese legible)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from harness.printer import render
from harness.protocols.escpos import commands as C
from harness.protocols.escpos.decoder import decode
from harness.protocols.escpos.receipt import BarcodeBlock, QrBlock, ReceiptBuilder


def receipt(data: bytes, chinese: bool = False):
    b = ReceiptBuilder()
    (r,) = b.add(decode(data + C.CUT_FULL, chinese=chinese))
    return r


def ink(im: Image.Image) -> int:
    return sum(im.convert("L").histogram()[:128])


def test_text_view_aligns_and_marks_graphics():
    r = receipt(b"\x1ba\x01SHOP\n\x1ba\x02" + b"9.99\n\x1ba\x00" + b"\x1dk\x04AB12\x00")
    lines = render.render_text(r, columns=20).splitlines()
    assert lines[0] == " " * 8 + "SHOP" and lines[1] == " " * 16 + "9.99"
    assert "[barcode CODE39 AB12]" in lines[2]


def test_html_view_escapes_text_and_embeds_graphics():
    r = receipt(b"\x1bE\x01<script>x</script>\n\x1bE\x00" + b"\x1d(k\x06\x001P0abc\x1d(k\x03\x001Q0")
    page = render.render_html(r)
    assert "&lt;script&gt;" in page and "<script>" not in page
    assert '<span class="b">' in page and 'alt="QR abc"' in page and "data:image/png;base64," in page


def test_png_chinese_is_drawn_with_the_cjk_font_not_boxes():
    a = render.render_image(receipt("超市收据\n".encode("gb18030"), chinese=True))
    b = render.render_image(receipt("牛奶面包\n".encode("gb18030"), chinese=True))
    assert a.size == b.size
    assert ink(a) > 200 and ink(b) > 200
    assert a.tobytes() != b.tobytes()                   # different characters, different glyphs (no tofu)


def test_png_says_which_package_when_the_font_is_missing(monkeypatch, tmp_path):
    monkeypatch.setattr(render, "CJK_FONT", str(tmp_path / "none.ttc"))
    with pytest.raises(render.FontMissingError, match="fonts-wqy-zenhei"):
        render.render_png(receipt("超市\n".encode("gb18030"), chinese=True))
    assert render.render_png(receipt(b"latin only\n"))[:4] == b"\x89PNG"


def test_barcode_is_drawn_as_bars():
    im = render.barcode_image(BarcodeBlock("EAN13", "4006381333931", 80, 3, 2)).convert("L")
    row = [im.getpixel((x, im.height // 4)) < 128 for x in range(im.width)]
    transitions = sum(1 for a, b in zip(row, row[1:], strict=False) if a != b)
    assert transitions >= 50                            # 30 bars + guards: EAN-13 has 59 edges


def test_qr_is_drawn_with_the_payload():
    import qrcode

    block = QrBlock("https://pay.example/r/4711", 3, "M")
    im = render.qr_image(block)
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=0)
    code.add_data(block.data)
    code.make(fit=True)
    matrix = code.get_matrix()
    box, border = block.size, render.QR_QUIET_MODULES   # GS ( k module size: dots per module
    for y, row in enumerate(matrix):
        for x, dark in enumerate(row):
            px = im.getpixel(((border + x) * box + box // 2, (border + y) * box + box // 2))
            assert (px < 128) == dark, (x, y)


def test_png_of_a_full_receipt_is_a_png():
    data = (b"\x1ba\x01\x1d!\x11BIG\n\x1d!\x00\x1ba\x00\x1bE\x01bold\x1bE\x00 \x1d\x42\x01inv\x1d\x42\x00\n"
            b"\x1dv0\x00\x02\x00\x08\x00" + b"\xff\x00" * 8 + b"\x1bp\x00\x19\xfa")
    png = render.render_png(receipt(data))
    im = Image.open(io.BytesIO(png))
    assert im.format == "PNG" and im.width == render.PAPER_DOTS + 2 * render.MARGIN and ink(im) > 100

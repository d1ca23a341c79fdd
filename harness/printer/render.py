"""Views of a receipt: plain text, HTML and PNG, drawn from its layout blocks (barcodes and QR codes drawn).

>>> render_text(receipt); render_html(receipt); render_png(receipt)  # str, str, PNG bytes  # doctest: +SKIP

Text in PNGs is drawn as a printer does, in fixed character cells: font A 12x24 dots, font B 9x17, a wide
(Chinese, full-width) character two cells, so space-padded columns line up. The glyphs are WenQuanYi Zen Hei
Mono, face 1 of `wqy-zenhei.ttc` from the Debian/Ubuntu package `fonts-wqy-zenhei` (`apt-get install
fonts-wqy-zenhei`; face 0 is the proportional one); a glyph wider than its cells (the Mono face draws '€' full
width) is squeezed into them. `FontMissingError` says so when the font is absent and the receipt needs it.
POSRIG_CJK_FONT / POSRIG_CJK_FONT_INDEX choose another font file and face.

Barcodes carry their human-readable digits as `GS H n` set them (0 none, 1 above, 2 below, 3 both; 48-51
alike); QR codes are drawn `GS ( k` module size dots per module, with a 2-module quiet zone.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import unicodedata
from functools import lru_cache

from harness.protocols.escpos.receipt import (
    BarcodeBlock,
    FeedBlock,
    QrBlock,
    Receipt,
    ReceiptImage,
    TextLine,
    TextStyle,
)

CJK_FONT = os.environ.get("POSRIG_CJK_FONT", "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")
CJK_FONT_INDEX = int(os.environ.get("POSRIG_CJK_FONT_INDEX", "1" if CJK_FONT.endswith(".ttc") else "0"))
MONO_FACE = "WenQuanYi Zen Hei Mono"      # face 1 of wqy-zenhei.ttc
FONT_PACKAGE = "fonts-wqy-zenhei"
PAPER_DOTS = 512
MARGIN = 16
FONT_A_PX, FONT_B_PX = 24, 17
CELL_A, CELL_B = 12, 9                    # character cell widths in dots (Epson font A 12x24, font B 9x17)
LINE_GAP = 6
QR_QUIET_MODULES = 2
HRI_NONE, HRI_ABOVE, HRI_BELOW, HRI_BOTH = 0, 1, 2, 3


class FontMissingError(RuntimeError):
    """The CJK font needed to draw this receipt is not installed."""


# -- text ------------------------------------------------------------------------------------------
def _width(ch: str) -> int:
    """Character cells a character takes on paper: 2 for wide (Chinese, full-width) characters, else 1."""
    return 2 if unicodedata.east_asian_width(ch) in "WF" else 1


def _cells(text: str) -> int:
    return sum(_width(ch) for ch in text)


def _barcode_hri(b: BarcodeBlock) -> str:
    return b.data[2:] if b.symbology.startswith("CODE128") and b.data[:1] == "{" else b.data


def render_text(receipt: Receipt, columns: int = 42) -> str:
    """The receipt as it would read on paper, aligned to `columns`; graphics shown as [bracketed] notes."""
    out: list[str] = []

    def put(text: str, align: int) -> None:
        pad = max(0, columns - _cells(text))
        out.append(text if align == 0 else " " * (pad // 2) + text if align == 1 else " " * pad + text)

    for b in receipt.blocks:
        if isinstance(b, TextLine):
            text = "".join(s if st.width == 1 else " ".join(s) for s, st in b.segments)
            put(text.rstrip(), b.align)
        elif isinstance(b, BarcodeBlock):
            put(f"[barcode {b.symbology} {_barcode_hri(b)}]", b.align)
        elif isinstance(b, QrBlock):
            put(f"[QR {b.data}]", b.align)
        elif isinstance(b, ReceiptImage):
            put(f"[image {b.mode} {b.width}x{b.height}]", b.align)
        elif isinstance(b, FeedBlock):
            out.extend([""] * max(0, round(b.dots / 30)))
    for pin in receipt.drawer_pulses:
        out.append(f"[drawer pulse pin {pin}]")
    out.append({"full": "=" * columns + " full cut", "partial": "- " * (columns // 2) + "partial cut",
                None: "(no cut yet)"}[receipt.cut])
    return "\n".join(out) + "\n"


# -- drawing helpers -------------------------------------------------------------------------------
def _needs_cjk(receipt: Receipt) -> bool:
    return any(ord(ch) > 0xFF for line in receipt.lines for ch in line)


@lru_cache(maxsize=16)
def _font(px: int):
    from PIL import ImageFont

    if os.path.exists(CJK_FONT):
        return ImageFont.truetype(CJK_FONT, px, index=CJK_FONT_INDEX)
    return ImageFont.load_default(px)


@lru_cache(maxsize=4096)
def _advance(px: int, ch: str) -> float:
    return _font(px).getlength(ch)


def _check_font(receipt: Receipt) -> None:
    if _needs_cjk(receipt) and not os.path.exists(CJK_FONT):
        raise FontMissingError(f"receipt {receipt.index} has Chinese/CJK text but the font {CJK_FONT} is "
                               f"missing: install it with `apt-get install {FONT_PACKAGE}` "
                               "(or set POSRIG_CJK_FONT)")


def _segment_image(text: str, style: TextStyle):
    """One run of text in one style, each character in its own cell(s), as a printer lays it out."""
    from PIL import Image, ImageDraw

    px, cell = (FONT_B_PX, CELL_B) if style.font else (FONT_A_PX, CELL_A)
    font = _font(px)
    w = max(1, _cells(text) * cell)
    h = px + 4
    bg, fg = (0, 255) if style.invert else (255, 0)
    stroke = 1 if style.bold else 0
    im = Image.new("L", (w, h), bg)
    d = ImageDraw.Draw(im)
    x, run, run_x = 0, "", 0
    for ch in text:
        span = _width(ch) * cell
        advance = _advance(px, ch)
        if advance == span:                     # fits its cells exactly: drawn with its neighbours in one call
            if not run:
                run_x = x
            run += ch
            x += span
            continue
        if run:
            d.text((run_x, 0), run, font=font, fill=fg, stroke_width=stroke, stroke_fill=fg)
            run = ""
        if advance <= span + 0.5:
            d.text((x + (span - advance) / 2, 0), ch, font=font, fill=fg, stroke_width=stroke, stroke_fill=fg)
        else:                                   # wider than its cells (e.g. '€' in the Mono face): squeezed
            glyph = Image.new("L", (math.ceil(advance), h), bg)
            ImageDraw.Draw(glyph).text((0, 0), ch, font=font, fill=fg, stroke_width=stroke, stroke_fill=fg)
            im.paste(glyph.resize((span, h)), (x, 0))
        x += span
    if run:
        d.text((run_x, 0), run, font=font, fill=fg, stroke_width=stroke, stroke_fill=fg)
    if style.underline:
        d.line((0, h - 2, w, h - 2), fill=fg, width=style.underline)
    if style.width != 1 or style.height != 1:
        im = im.resize((w * style.width, h * style.height))
    if style.upside_down:
        im = im.rotate(180)
    return im


def _line_image(line: TextLine, width: int):
    from PIL import Image

    parts = [_segment_image(s, st) for s, st in line.segments if s]
    h = max([p.height for p in parts], default=FONT_A_PX + 4) + LINE_GAP
    im = Image.new("L", (width, h), 255)
    total = sum(p.width for p in parts)
    x = 0 if line.align == 0 else max(0, (width - total) // (2 if line.align == 1 else 1))
    for p in parts:
        im.paste(p, (x, h - LINE_GAP - p.height))
        x += p.width
    return im


_BARCODE_NAMES = {"EAN13": "ean13", "EAN8": "ean8", "UPC-A": "upca", "CODE39": "code39", "ITF": "itf",
                  "CODABAR": "codabar", "CODE128": "code128", "CODE128 auto": "code128", "GS1-128": "gs1_128"}


def _hri_position(b: BarcodeBlock) -> int:
    """GS H n: 0/48 none, 1/49 above, 2/50 below, 3/51 both (anything else: none)."""
    n = b.hri - 48 if 48 <= b.hri <= 51 else b.hri
    return n if n in (HRI_ABOVE, HRI_BELOW, HRI_BOTH) else HRI_NONE


def _with_hri(bars, text: str, position: int):
    """The bars with the human-readable text above, below or both (as GS H set it), centred."""
    from PIL import Image

    if position == HRI_NONE:
        return bars
    label = _segment_image(text, TextStyle())
    gap = 4
    above = position in (HRI_ABOVE, HRI_BOTH)
    below = position in (HRI_BELOW, HRI_BOTH)
    w = max(bars.width, label.width)
    h = bars.height + (label.height + gap) * (above + below)
    im = Image.new("L", (w, h), 255)
    y = 0
    if above:
        im.paste(label, ((w - label.width) // 2, 0))
        y = label.height + gap
    im.paste(bars.convert("L"), ((w - bars.width) // 2, y))
    if below:
        im.paste(label, ((w - label.width) // 2, y + bars.height + gap))
    return im


def barcode_image(b: BarcodeBlock):
    """The barcode drawn with python-barcode (bars only; the HRI text as GS H asks), or a labelled box when it
    cannot draw this symbology/data."""
    from PIL import Image, ImageDraw

    name = _BARCODE_NAMES.get(b.symbology)
    data = _barcode_hri(b)
    if name:
        try:
            import barcode
            from barcode.writer import ImageWriter

            code = barcode.get(name, data if name != "ean13" else data[:12], writer=ImageWriter())
            options = {"module_width": 0.2 * max(1, b.width) / 2, "module_height": max(4, b.height / 12),
                       "write_text": False, "quiet_zone": 2, "dpi": 180}
            bars = code.render(options)
            return _with_hri(bars, code.get_fullcode() if name in ("ean13", "ean8", "upca") else _shown(data),
                             _hri_position(b))
        except Exception:  # noqa: BLE001 - drawn as a labelled box instead
            pass
    im = Image.new("L", (PAPER_DOTS - 2 * MARGIN, max(40, b.height // 2)), 255)
    d = ImageDraw.Draw(im)
    d.rectangle((0, 0, im.width - 1, im.height - 1), outline=0)
    d.text((6, 6), f"{b.symbology} {_shown(data)}", font=_font(FONT_B_PX), fill=0)
    return im


def _shown(text: str) -> str:
    """Text as a label can draw it: a control character (which the font's layout engine refuses) as its ^ form.

    >>> _shown("12" + chr(13) + "34")
    '12^M34'
    """
    return "".join(ch if ch.isprintable() else f"^{chr(ord(ch) ^ 0x40)}" if ord(ch) < 32 or ord(ch) == 127
                   else "?" for ch in text)


def qr_image(q: QrBlock):
    """The QR code drawn with qrcode, `q.size` dots per module (GS ( k module size), or a labelled box when its
    data does not fit a QR code (version 40)."""
    import qrcode
    from PIL import Image, ImageDraw

    levels = {"L": qrcode.constants.ERROR_CORRECT_L, "M": qrcode.constants.ERROR_CORRECT_M,
              "Q": qrcode.constants.ERROR_CORRECT_Q, "H": qrcode.constants.ERROR_CORRECT_H}
    code = qrcode.QRCode(error_correction=levels.get(q.error_level, levels["L"]), box_size=max(1, q.size),
                         border=QR_QUIET_MODULES)
    try:
        code.add_data(q.data)
        code.make(fit=True)
        return code.make_image(fill_color="black", back_color="white").get_image().convert("L")
    except ValueError:                       # more data than any QR version holds
        im = Image.new("L", (PAPER_DOTS - 2 * MARGIN, 40), 255)
        d = ImageDraw.Draw(im)
        d.rectangle((0, 0, im.width - 1, im.height - 1), outline=0)
        d.text((6, 6), f"QR too long to draw ({len(q.data)} characters)", font=_font(FONT_B_PX), fill=0)
        return im


def _aligned(im, align: int, width: int):
    from PIL import Image

    if im.width > width:
        im = im.resize((width, max(1, im.height * width // im.width)))
    canvas = Image.new("L", (width, im.height), 255)
    x = 0 if align == 0 else (width - im.width) // (2 if align == 1 else 1)
    canvas.paste(im.convert("L"), (x, 0))
    return canvas


def render_image(receipt: Receipt, dots: int = PAPER_DOTS):
    """The receipt drawn as a Pillow 'L' image, `dots` wide plus margins."""
    from PIL import Image, ImageDraw

    _check_font(receipt)
    width = dots
    pieces = []
    for b in receipt.blocks:
        if isinstance(b, TextLine):
            pieces.append(_line_image(b, width))
        elif isinstance(b, BarcodeBlock):
            pieces.append(_aligned(barcode_image(b), b.align, width))
        elif isinstance(b, QrBlock):
            pieces.append(_aligned(qr_image(b), b.align, width))
        elif isinstance(b, ReceiptImage):
            pieces.append(_aligned(b.to_pil(), b.align, width))
        elif isinstance(b, FeedBlock):
            pieces.append(Image.new("L", (width, max(1, b.dots)), 255))
    cut_h = 20
    total = sum(p.height for p in pieces) + 2 * MARGIN + cut_h
    out = Image.new("L", (width + 2 * MARGIN, total), 255)
    y = MARGIN
    for p in pieces:
        out.paste(p, (MARGIN, y))
        y += p.height
    d = ImageDraw.Draw(out)
    y += MARGIN // 2
    if receipt.cut == "full":
        d.line((0, y, out.width, y), fill=0, width=2)
    elif receipt.cut == "partial":
        for x in range(0, out.width, 16):
            d.line((x, y, x + 8, y), fill=0, width=2)
    return out


def render_png(receipt: Receipt, dots: int = PAPER_DOTS) -> bytes:
    buf = io.BytesIO()
    render_image(receipt, dots).save(buf, format="PNG")
    return buf.getvalue()


def _data_uri(im) -> str:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


_CSS = """body{background:#ddd;font-family:'WenQuanYi Zen Hei','Noto Sans CJK SC',monospace}
.receipt{background:#fff;width:42ch;margin:1em auto;padding:1em;font-family:monospace;white-space:pre}
.l{min-height:1.2em}.c{text-align:center}.r{text-align:right}.b{font-weight:bold}.u{text-decoration:underline}
.i{background:#000;color:#fff}.g img{image-rendering:pixelated;max-width:100%}
.cut-full{border-top:2px solid #000;margin-top:1em}.cut-partial{border-top:2px dashed #000;margin-top:1em}
.note{color:#666;font-size:80%}"""


def render_html(receipt: Receipt) -> str:
    """A standalone HTML page: styled text, and barcodes, QR codes and images embedded as PNG."""
    return render_html_page([receipt])


def render_html_page(receipts: list[Receipt]) -> str:
    """One HTML page showing several receipts one under the other."""
    title = f"receipt {receipts[0].index}" if len(receipts) == 1 else f"{len(receipts)} receipts"
    body = "\n".join(_html_receipt(r) for r in receipts)
    return (f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{title}</title><style>{_CSS}'
            f"</style></head>\n<body>\n{body}\n</body></html>\n")


def _html_receipt(receipt: Receipt) -> str:
    align = {0: "", 1: " c", 2: " r"}
    rows = []
    for b in receipt.blocks:
        if isinstance(b, TextLine):
            spans = []
            for text, st in b.segments:
                cls = " ".join(c for c, on in (("b", st.bold), ("u", st.underline), ("i", st.invert)) if on)
                size = f' style="font-size:{st.height * 100}%;letter-spacing:{(st.width - 1) * 0.5}em"' \
                    if st.width != 1 or st.height != 1 else ""
                spans.append(f'<span class="{cls}"{size}>{html.escape(text)}</span>')
            rows.append(f'<div class="l{align[b.align]}">{"".join(spans)}</div>')
        elif isinstance(b, BarcodeBlock):
            rows.append(f'<div class="g{align[b.align]}"><img alt="{html.escape(b.symbology)} '
                        f'{html.escape(_barcode_hri(b))}" src="{_data_uri(barcode_image(b))}"></div>')
        elif isinstance(b, QrBlock):
            rows.append(f'<div class="g{align[b.align]}"><img alt="QR {html.escape(b.data)}" '
                        f'src="{_data_uri(qr_image(b))}"></div>')
        elif isinstance(b, ReceiptImage):
            rows.append(f'<div class="g{align[b.align]}"><img alt="image {b.mode} {b.width}x{b.height}" '
                        f'src="{_data_uri(b.to_pil())}"></div>')
        elif isinstance(b, FeedBlock):
            rows.append(f'<div style="height:{b.dots}px"></div>')
    for pin in receipt.drawer_pulses:
        rows.append(f'<div class="note">drawer pulse, pin {pin}</div>')
    rows.append(f'<div class="cut-{receipt.cut or "none"} note">{receipt.cut or "no"} cut</div>')
    return '<div class="receipt">\n' + "\n".join(rows) + "\n</div>"


RENDERERS = {"text": render_text, "html": render_html, "png": render_png}

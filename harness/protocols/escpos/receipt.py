"""Receipts: what lies between cuts, laid out from the decoder's events.

>>> from harness.protocols.escpos.decoder import decode
>>> (receipt,) = ReceiptBuilder().add(decode(b"Milk 1l 2 x 1.19   2.38\\nTOTAL EUR 2.38\\n\\x1dV\\x00"))
>>> receipt.lines, receipt.cut
(['Milk 1l 2 x 1.19   2.38', 'TOTAL EUR 2.38'], 'full')
>>> receipt.amounts
[Decimal('1.19'), Decimal('2.38'), Decimal('2.38')]
>>> receipt.line_amounts()
[('Milk 1l 2 x 1.19', Decimal('2.38')), ('TOTAL EUR', Decimal('2.38'))]

A journal (`harness.printer.journal.ReceiptJournal`) that wrote the receipt's evidence files records them in
`receipt.files` ({"bin": Path, "txt": ..., "png": ..., "json": ...}).

No input stops the builder: an exception while laying out an event is recorded in that receipt's
`decode_faults` (the event and its bytes are kept) and the next events go on as usual; text decoded by a code
page's fallback (see `codepages`) is noted in `codec_notes`.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from harness.protocols.escpos import commands as C
from harness.protocols.escpos.codepages import fallback_note
from harness.protocols.escpos.events import (
    Barcode,
    Cut,
    DrawerPulse,
    Event,
    Feed,
    Image,
    Initialize,
    Style,
    Symbol,
    Text,
)

log = logging.getLogger(__name__)

STYLE_CACHE_MAX = 1024       # style transitions remembered by a ReceiptBuilder (a real till uses a few dozen)

AMOUNT = re.compile(r"(?<![\d.,])-?\d{1,3}(?:([.,' ])\d{3})*[.,]\d{2}(?![\d])"
                    r"|(?<![\d.,])-?\d+[.,]\d{2}(?![\d])")


@dataclass(frozen=True)
class TextStyle:
    bold: bool = False
    underline: int = 0
    double_strike: bool = False
    font: int = 0               # 0 = A (12x24), 1 = B (9x17)
    invert: bool = False
    width: int = 1
    height: int = 1
    upside_down: bool = False


@dataclass
class TextLine:
    """One printed line: styled segments and the alignment in force when it was printed."""

    segments: list[tuple[str, TextStyle]]
    align: int = 0              # 0 left, 1 centre, 2 right

    @property
    def text(self) -> str:
        return "".join(s for s, _ in self.segments)


@dataclass
class ReceiptImage:
    """A bit image as printed: packed 1-bit rows, MSB first, 1 = black."""

    mode: str
    width: int
    height: int
    bits: bytes
    align: int = 0

    @property
    def row_bytes(self) -> int:
        return (self.width + 7) // 8

    def to_pil(self):
        """The image as a Pillow '1' image (black = 0); at least 1 x 1 (an empty image cannot be drawn)."""
        from PIL import Image as PILImage
        from PIL import ImageOps

        width, height = max(1, self.width), max(1, self.height)
        need = (width + 7) // 8 * height
        data = self.bits[:need].ljust(need, b"\x00") if self.width and self.height else bytes(need)
        im = PILImage.frombytes("1", (width, height), data)
        return ImageOps.invert(im.convert("L")).convert("1")

    def pixel(self, x: int, y: int) -> bool:
        """True when the dot at (x, y) is black."""
        return bool(self.bits[y * self.row_bytes + (x >> 3)] & (0x80 >> (x & 7)))


@dataclass
class BarcodeBlock:
    symbology: str
    data: str
    height: int
    width: int
    hri: int
    align: int = 0


@dataclass
class QrBlock:
    data: str
    size: int
    error_level: str
    align: int = 0


@dataclass
class FeedBlock:
    dots: int


@dataclass
class DrawerEvent:
    """One drawer pulse as the printer executed it: when (`t`, epoch seconds, the shared clock of
    `harness.core.events`), on which pin, where in the stream (`offset`), and whether it was inside a receipt:
    `receipt` is the index of the receipt whose bytes held it (None while it sits in the uncut buffer) and `cut`
    that receipt's cut (None: the receipt was never cut, i.e. the pulse was outside any cut receipt)."""

    t: float
    pin: int
    on_ms: int = 0
    off_ms: int = 0
    offset: int = 0
    command: str = "ESC p"            # ESC p | DLE DC4
    receipt: int | None = None
    cut: str | None = None

    @property
    def inside_receipt(self) -> bool:
        return self.receipt is not None and self.cut is not None

    def to_dict(self) -> dict[str, Any]:
        return {"t": self.t, "pin": self.pin, "on_ms": self.on_ms, "off_ms": self.off_ms, "offset": self.offset,
                "command": self.command, "receipt": self.receipt, "cut": self.cut,
                "inside_receipt": self.inside_receipt}


@dataclass
class Receipt:
    """One receipt (the events up to and including a cut). `cut` is None for a receipt cut short (no cut
    yet). `files` are the evidence files a journal wrote for it, by kind ("bin", "txt", "png", "json"); empty
    until a journal wrote it (and "png" absent when the receipt could not be drawn). `codec_notes` say which
    text was decoded by a code page's fallback; `decode_faults` which bytes could not be laid out (or decoded)
    and why: a receipt with decode faults may show less than was printed."""

    index: int
    events: list[Event]
    blocks: list[Any]
    cut: str | None
    drawer_pulses: list[int]
    started: float
    finished: float
    profile: str = ""
    codec_notes: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)
    decode_faults: list[str] = field(default_factory=list)
    drawer_events: list[DrawerEvent] = field(default_factory=list)

    @property
    def raw(self) -> bytes:
        return b"".join(e.raw for e in self.events)

    @property
    def lines(self) -> list[str]:
        out = [b.text for b in self.blocks if isinstance(b, TextLine)]
        while out and not out[-1].strip():
            out.pop()
        while out and not out[0].strip():
            out.pop(0)
        return out

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def amounts(self) -> list[Decimal]:
        """Money amounts printed (e.g. '12.50', '1,234.00', '12,50'), in order."""
        return [amount for line in self.lines for _, amount in _amounts_in(line)]

    def line_amounts(self) -> list[tuple[str, Decimal]]:
        """(label, amount) for each printed line that carries an amount: the line's last amount, and the text
        before it, stripped ("TOTAL EUR     12.50" -> ("TOTAL EUR", Decimal("12.50")); "Milk 1l 2 x 1.19
        2.38" -> ("Milk 1l 2 x 1.19", Decimal("2.38"))). Lines without an amount are left out."""
        out = []
        for line in self.lines:
            found = list(_amounts_in(line))
            if found:
                start, amount = found[-1]
                out.append((line[:start].strip(), amount))
        return out

    @property
    def barcodes(self) -> list[BarcodeBlock]:
        return [b for b in self.blocks if isinstance(b, BarcodeBlock)]

    @property
    def qr_codes(self) -> list[str]:
        return [b.data for b in self.blocks if isinstance(b, QrBlock)]

    @property
    def images(self) -> list[ReceiptImage]:
        return [b for b in self.blocks if isinstance(b, ReceiptImage)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index, "profile": self.profile, "cut": self.cut, "lines": self.lines,
            "amounts": [str(a) for a in self.amounts],
            "barcodes": [{"symbology": b.symbology, "data": b.data} for b in self.barcodes],
            "qr_codes": self.qr_codes,
            "images": [{"mode": i.mode, "width": i.width, "height": i.height} for i in self.images],
            "drawer_pulses": self.drawer_pulses, "drawer_events": [d.to_dict() for d in self.drawer_events],
            "bytes": len(self.raw),
            "started": self.started, "finished": self.finished,
            "unknown": [e.to_dict() for e in self.events if e.kind in ("Unknown", "Incomplete")],
            "codec_notes": self.codec_notes, "decode_faults": self.decode_faults,
        }


def _amounts_in(line: str) -> Iterator[tuple[int, Decimal]]:
    """(start offset, amount) of every money amount in one printed line, in order."""
    for m in AMOUNT.finditer(line):
        amount = _to_decimal(m.group(0))
        if amount is not None:
            yield m.start(), amount


def _to_decimal(text: str) -> Decimal | None:
    sep = text[-3]
    digits = re.sub(r"[^\d-]", "", text[:-3])
    try:
        return Decimal(f"{digits}.{text[-2:]}") if sep in ".," else None
    except InvalidOperation:
        return None


class ReceiptBuilder:
    """Turns events into receipts; one `Receipt` per cut. Keeps the style state across receipts (as a
    printer)."""

    def __init__(self, profile: str = ""):
        self.profile = profile
        self.count = 0
        self._style_cache: dict[tuple, TextStyle] = {}
        self._reset_style()
        self._start_receipt()

    def _reset_style(self) -> None:
        self.style = TextStyle()
        self.align = 0

    def _start_receipt(self) -> None:
        self.events: list[Event] = []
        self.blocks: list[Any] = []
        self.pulses: list[int] = []
        self.drawer: list[DrawerEvent] = []
        self.segments: list[tuple[str, TextStyle]] = []
        self.graphic_in_line = False
        self.column_open = False
        self.started: float | None = None
        self.notes: list[str] = []
        self.faults: list[str] = []

    @property
    def pending_events(self) -> list[Event]:
        return list(self.events)

    @property
    def pending_drawer(self) -> list[DrawerEvent]:
        """Drawer pulses since the last cut (in the uncut buffer: `receipt` None)."""
        return list(self.drawer)

    def add(self, events: list[Event]) -> list[Receipt]:
        """Take events in stream order; return the receipts they completed. Never raises: an event that cannot be
        laid out is kept, and recorded in its receipt's `decode_faults`."""
        done = []
        for e in events:
            if self.started is None:
                self.started = time.time()
            self.events.append(e)
            try:
                receipt = self._take(e)
            except Exception as exc:  # noqa: BLE001 - one bad event must not stop the receipts after it
                self.fault(f"{e.kind} at byte {e.offset} could not be laid out: {type(exc).__name__}: {exc}")
                receipt = self._finish(e.mode) if isinstance(e, Cut) else None
            if receipt is not None:
                done.append(receipt)
        return done

    def fault(self, text: str) -> None:
        """Record a decode fault in the receipt in progress."""
        log.warning("receipt %d: %s", self.count, text)
        self.faults.append(text)

    def _take(self, e: Event) -> Receipt | None:
        """Lay out one event; the receipt it completed (a cut), if any."""
        if isinstance(e, Text):
            self.segments.append((e.text, self.style))
            self.column_open = False
            if not e.raw.isascii():
                note = fallback_note(e.codec)
                if note is not None and note not in self.notes:
                    self.notes.append(note)
        elif isinstance(e, Feed):
            self._feed(e)
        elif isinstance(e, Style):
            self._apply_style(e)
        elif isinstance(e, Image):
            self._image(e)
        elif isinstance(e, Barcode):
            self._flush_line(False)
            self.blocks.append(BarcodeBlock(e.symbology, e.data.decode("latin-1"), e.height, e.width,
                                            e.hri, self.align))
        elif isinstance(e, Symbol) and e.is_qr_print:
            self._flush_line(False)
            if e.payload is not None:
                data = e.payload.decode("utf-8", errors="replace")
                self.blocks.append(QrBlock(data, e.size, e.error_level, self.align))
        elif isinstance(e, DrawerPulse):
            self.pulses.append(e.pin)
            self.drawer.append(DrawerEvent(time.time(), e.pin, e.on_ms, e.off_ms, e.offset,
                                           "DLE DC4" if e.raw[:1] == C.DLE else "ESC p"))
        elif isinstance(e, Initialize):
            self._flush_line(False)
            self._reset_style()
        elif isinstance(e, Cut):
            self._flush_line(False)
            return self._finish(e.mode)
        return None

    def flush(self) -> Receipt | None:
        """The receipt in progress (no cut yet), or None when nothing was received since the last cut."""
        if not self.events:
            return None
        self._flush_line(False)
        return self._finish(None)

    def _finish(self, cut: str | None) -> Receipt:
        r = Receipt(self.count, self.events, self.blocks, cut, self.pulses, self.started or time.time(),
                    time.time(), self.profile, codec_notes=self.notes, decode_faults=self.faults,
                    drawer_events=[replace(d, receipt=self.count, cut=cut) for d in self.drawer])
        self.count += 1
        self._start_receipt()
        return r

    def _flush_line(self, blank_allowed: bool) -> None:
        if self.segments:
            self.blocks.append(TextLine(self.segments, self.align))
            self.segments = []
        elif blank_allowed and not self.graphic_in_line:
            self.blocks.append(TextLine([], self.align))
        self.graphic_in_line = False

    def _feed(self, e: Feed) -> None:
        if e.unit == "line":
            self._flush_line(True)
            return
        had_text = bool(self.segments)
        self._flush_line(False)
        self.column_open = False
        if e.unit == "lines" and e.amount > 0:
            extra = e.amount - 1 if had_text else e.amount
            if extra:
                self.blocks.append(FeedBlock(extra * 30))
        elif e.unit == "dots" and e.amount > 0:
            self.blocks.append(FeedBlock(e.amount))

    def _apply_style(self, e: Style) -> None:
        key = (self.style, e.attr, e.value)
        cached = self._style_cache.get(key)
        if cached is not None:
            self.style = cached
            return
        self._style_change(e)
        if e.attr != "align":
            if len(self._style_cache) >= STYLE_CACHE_MAX:    # garbage reaches ~10^6 combinations: stay bounded
                self._style_cache.clear()
            self._style_cache[key] = self.style

    def _style_change(self, e: Style) -> None:
        s, v = self.style, e.value
        if e.attr == "bold":
            s = replace(s, bold=bool(v))
        elif e.attr == "underline":
            s = replace(s, underline=v - 48 if v >= 48 else v)
        elif e.attr == "double_strike":
            s = replace(s, double_strike=bool(v))
        elif e.attr == "font":
            s = replace(s, font=1 if v in (1, 49) else 0)
        elif e.attr == "invert":
            s = replace(s, invert=bool(v))
        elif e.attr == "upside_down":
            s = replace(s, upside_down=bool(v))
        elif e.attr == "size":
            s = replace(s, width=v[0], height=v[1])
        elif e.attr == "print_mode":
            s = replace(s, font=v & C.PRINT_MODE_FONT_B, bold=bool(v & C.PRINT_MODE_BOLD),
                        height=2 if v & C.PRINT_MODE_DOUBLE_HEIGHT else 1,
                        width=2 if v & C.PRINT_MODE_DOUBLE_WIDTH else 1,
                        underline=1 if v & C.PRINT_MODE_UNDERLINE else 0)
        elif e.attr == "align":
            self.align = v - 48 if v >= 48 else v
            if self.align not in (0, 1, 2):
                self.align = 0
        self.style = s

    def _image(self, e: Image) -> None:
        if e.mode == "column":
            last = self.blocks[-1] if self.blocks else None
            if self.column_open and isinstance(last, ReceiptImage) and last.width == e.width:
                last.bits += e.bits
                last.height += e.height
            else:
                self._flush_line(False)
                self.blocks.append(ReceiptImage("column", e.width, e.height, bytes(e.bits), self.align))
            self.column_open = True
            self.graphic_in_line = True
            return
        self._flush_line(False)
        self.column_open = False
        self.blocks.append(ReceiptImage(e.mode, e.width, e.height, bytes(e.bits), self.align))

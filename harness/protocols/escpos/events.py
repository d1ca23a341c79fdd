"""The typed events the decoder emits. Every event carries the exact bytes it came from (`raw`) and where they
started in the stream (`offset`), so joining the `raw` of all events gives back the input byte for byte."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from harness.protocols.escpos import commands as C
from harness.protocols.escpos.codepages import decode_text


@dataclass(slots=True)
class Event:
    raw: bytes
    offset: int

    @property
    def kind(self) -> str:
        return type(self).__name__

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form: raw bytes as hex, large payloads summarised by their length."""
        out: dict[str, Any] = {"event": self.kind, "offset": self.offset}
        for f in fields(self):
            if f.name in ("raw", "offset"):
                continue
            name, value = f.name, getattr(self, f.name)
            if isinstance(value, bytes | bytearray):
                out[name] = value.hex() if len(value) <= 256 else f"<{len(value)} bytes>"
            else:
                out[name] = value
        if isinstance(self, Text):
            out["text"] = self.text
        out["raw"] = self.raw.hex() if len(self.raw) <= 256 else f"<{len(self.raw)} bytes>"
        return out


@dataclass(slots=True)
class Text(Event):
    """A run of printable bytes, decoded with the code page (or GB18030 in Chinese mode) in force; pages without
    a code table decode by the fallback of `codepages.decode_text` (never an error)."""

    codec: str = "cp437"

    @property
    def text(self) -> str:
        return decode_text(self.raw, self.codec)


@dataclass(slots=True)
class Control(Event):
    """A single control byte or a parameterless command (LF, CR, HT, CAN, ESC 2, page mode...)."""

    name: str = ""


@dataclass(slots=True)
class Feed(Event):
    """Paper feed: 'line' (LF), 'lines' (ESC d n), 'dots' (ESC J n); negative amounts are reverse feeds."""

    unit: str = "line"
    amount: int = 1


@dataclass(slots=True)
class Style(Event):
    """A text attribute change: bold, underline, double_strike, font, align, invert, size (w, h), print_mode,
    upside_down, rotate_90, chinese_print_mode, chinese_underline, chinese_quadruple."""

    attr: str = ""
    value: Any = None


@dataclass(slots=True)
class Setting(Event):
    """A printer setting that changes no glyph: line spacing, margins, HRI, barcode size, code system..."""

    name: str = ""
    params: bytes = b""


@dataclass(slots=True)
class CodePage(Event):
    """ESC t n: the single-byte code table for text outside Chinese mode."""

    number: int = 0
    codec: str | None = "cp437"


@dataclass(slots=True)
class ChineseMode(Event):
    """FS & (on) / FS . (off): GB18030 1, 2 and 4-byte characters when on."""

    on: bool = True


@dataclass(slots=True)
class Barcode(Event):
    """GS k: form 'A' (NUL-terminated) or 'B' (length byte)."""

    symbology: str = ""
    m: int = 0
    data: bytes = b""
    form: str = "A"
    height: int = 162
    width: int = 3
    hri: int = 0


@dataclass(slots=True)
class Symbol(Event):
    """GS ( k: a 2D-symbol function. For QR print (cn 49, fn 81) `payload` is the data stored before."""

    cn: int = 0
    fn: int = 0
    params: bytes = b""
    payload: bytes | None = None
    size: int = 3
    error_level: str = "L"

    @property
    def is_qr_print(self) -> bool:
        return self.cn == C.QR_CN and self.fn == C.QR_FN_PRINT


@dataclass(slots=True)
class Image(Event):
    """A printed bit image as packed 1-bit rows (MSB first, 1 = black): 'raster' (GS v 0), 'column' (ESC *,
    one stripe), 'graphics' (GS ( L / GS 8 L print of the stored graphic), 'variable' (GS Q 0)."""

    mode: str = "raster"
    width: int = 0
    height: int = 0
    bits: bytes = b""
    density: int = 0

    @property
    def row_bytes(self) -> int:
        return (self.width + 7) // 8


@dataclass(slots=True)
class Graphics(Event):
    """GS ( L / GS 8 L functions other than print (store, settings); `stored` is set for a stored raster."""

    fn: int = 0
    params: bytes = b""
    stored: tuple[int, int] | None = None


@dataclass(slots=True)
class Cut(Event):
    """GS V (every variant) or legacy ESC i / ESC m. `feed` is the n of the feed-and-cut forms."""

    mode: str = "full"
    m: int = 0
    feed: int | None = None


@dataclass(slots=True)
class DrawerPulse(Event):
    """ESC p m t1 t2 (pin 2 for m=0/48, pin 5 for m=1/49) or DLE DC4 1 m t."""

    pin: int = 2
    on_ms: int = 0
    off_ms: int = 0


@dataclass(slots=True)
class Initialize(Event):
    """ESC @: modes and print buffer reset (the receive buffer is kept)."""


@dataclass(slots=True)
class StatusRequest(Event):
    """A command the printer answers: 'dle_eot' (real-time, n=1..4), 'dle_enq', 'gs_r', 'gs_i', 'asb' (GS a),
    'esc_u', 'esc_v'. Real-time ones are answered on arrival, the rest in stream order."""

    request: str = ""
    n: int = 0


@dataclass(slots=True)
class Unknown(Event):
    """Bytes the decoder does not know, skipped by their length field when one exists; `reason` says why."""

    reason: str = ""


@dataclass(slots=True)
class Incomplete(Event):
    """At end of stream: a command whose declared length never arrived, or a text run cut short."""

    reason: str = ""

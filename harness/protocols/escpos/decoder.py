"""Incremental ESC/POS decoder: bytes in, a lossless typed event stream out.

>>> d = Decoder()
>>> events = d.feed(b"\\x1b@Hello\\n\\x1dV\\x00") + d.finish()
>>> [e.kind for e in events]
['Initialize', 'Text', 'Feed', 'Cut']

Rules that make chunking irrelevant: an event is emitted only once all its bytes are in; a text run ends
only at a control byte (or at `finish()`); payloads with a length field (images, QR data, graphics) are
taken in one slice once that many bytes are buffered, never byte by byte. Joining `e.raw` of all events
returns the input exactly. Unknown commands are skipped by their length field where ESC/POS defines one (`GS
( x`, `FS ( x`, `ESC ( x`, `GS 8 L`) and otherwise by their two prefix bytes, each recorded as an `Unknown`
event.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from harness.protocols.escpos import commands as C
from harness.protocols.escpos.events import (
    Barcode,
    ChineseMode,
    CodePage,
    Control,
    Cut,
    DrawerPulse,
    Event,
    Feed,
    Graphics,
    Image,
    Incomplete,
    Initialize,
    Setting,
    StatusRequest,
    Style,
    Symbol,
    Text,
    Unknown,
)

TEXT_RUN = re.compile(rb"[\x20-\xff]+")
PREFIX_BYTES = frozenset(C.COMMAND_PREFIXES)
_LF = C.LF[0]
_LONG_PREFIXES = {p[:2] for p in C.BY_PREFIX if len(p) == 3}
_NUL_TERMINATED_MAX = 255   # GS k form A data and ESC D lists never run longer than this
MAX_COMMAND = 4 << 20       # a declared length beyond this is garbage: the prefix is skipped, not the length


def _u16(buf: bytearray, i: int) -> int:
    return buf[i] | buf[i + 1] << 8


# -- length rules: (buffer, command start, prefix length, bytes available) -> total length or None (need more)
def _len_dle_eot(buf, pos, plen, avail):
    if avail < 3:
        return None
    return 4 if buf[pos + 2] in C.DLE_EOT_LONG else 3


def _len_dle_dc4(buf, pos, plen, avail):
    if avail < 3:
        return None
    return C.DLE_DC4_LENGTHS.get(buf[pos + 2], 3)


def _len_paren(buf, pos, plen, avail):
    if avail < plen + 3:
        return None
    return plen + 3 + _u16(buf, pos + plen + 1)


def _len_paren4(buf, pos, plen, avail):
    if avail < plen + 4:
        return None
    i = pos + plen
    return plen + 4 + (buf[i] | buf[i + 1] << 8 | buf[i + 2] << 16 | buf[i + 3] << 24)


def _len_esc_star(buf, pos, plen, avail):
    if avail < 5:
        return None
    dots = _u16(buf, pos + 3)
    return 5 + dots * (3 if buf[pos + 2] in C.COLUMN_24_DOT else 1)


def _len_raster(buf, pos, plen, avail):
    """GS v 0 / GS Q 0: m xL xH yL yH, then x * y bytes."""
    if avail < 8:
        return None
    return 8 + _u16(buf, pos + 4) * _u16(buf, pos + 6)


def _len_gs_star(buf, pos, plen, avail):
    if avail < 4:
        return None
    return 4 + buf[pos + 2] * buf[pos + 3] * 8


def _len_gs_v(buf, pos, plen, avail):
    if avail < 3:
        return None
    mode = C.CUT_MODES.get(buf[pos + 2])
    return 4 if mode and mode[1] else 3


def _len_gs_k(buf, pos, plen, avail):
    if avail < 4:
        return None
    m = buf[pos + 2]
    if m <= 6:
        end = buf.find(0, pos + 3, pos + 3 + _NUL_TERMINATED_MAX + 1)
        if end >= 0:
            return end - pos + 1
        return 3 + _NUL_TERMINATED_MAX + 1 if avail > 3 + _NUL_TERMINATED_MAX else None
    if 65 <= m <= 79:
        return 4 + buf[pos + 3]
    return 3


def _len_nul_list(buf, pos, plen, avail):
    end = buf.find(0, pos + plen, pos + plen + 33)
    if end >= 0:
        return end - pos + 1
    return plen + 32 if avail >= plen + 33 else None


def _len_esc_amp(buf, pos, plen, avail):
    """ESC & y c1 c2 [x d1..d(y*x)] for each character c1..c2."""
    if avail < 5:
        return None
    y, c1, c2 = buf[pos + 2], buf[pos + 3], buf[pos + 4]
    i = pos + 5
    for _ in range(max(0, c2 - c1 + 1)):
        if i >= pos + avail:
            return None
        i += 1 + y * buf[i]
    return i - pos


def _len_fs_q(buf, pos, plen, avail):
    """FS q n [xL xH yL yH d1..dk] x n, k = x * y * 8."""
    if avail < 3:
        return None
    i = pos + 3
    for _ in range(buf[pos + 2]):
        if i + 4 > pos + avail:
            return None
        i += 4 + _u16(buf, i) * _u16(buf, i + 2) * 8
    return i - pos


LENGTH_RULES: dict[str, Callable] = {
    "dle_eot": _len_dle_eot, "dle_dc4": _len_dle_dc4, "paren": _len_paren, "paren4": _len_paren4,
    "esc_star": _len_esc_star, "raster": _len_raster, "gs_star": _len_gs_star, "gs_v": _len_gs_v,
    "gs_k": _len_gs_k, "nul_list": _len_nul_list, "esc_amp": _len_esc_amp, "fs_q": _len_fs_q,
}
_unknown_rules = {c.length for c in C.COMMANDS if isinstance(c.length, str)} - set(LENGTH_RULES)
assert not _unknown_rules, f"commands.py names length rules the decoder lacks: {_unknown_rules}"

_STYLE_1 = {"bold": "bold", "underline": "underline", "double_strike": "double_strike", "font": "font",
            "align": "align", "invert": "invert", "upside_down": "upside_down", "rotate_90": "rotate_90",
            "print_mode": "print_mode", "chinese_print_mode": "chinese_print_mode",
            "chinese_underline": "chinese_underline", "chinese_quadruple": "chinese_quadruple"}
_BIT0_STYLES = {"bold", "double_strike", "invert", "upside_down"}       # only bit 0 of n counts
_CONTROL_NAMES = {"horizontal_tab", "form_feed", "carriage_return", "cancel", "page_print",
                  "line_spacing_default", "page_mode", "standard_mode", "macro_define", "print_counter"}


class Decoder:
    """Feed bytes in any chunks; get events. `finish()` flushes a trailing text run and reports a cut-short
    command.

    `codepage`/`chinese` are the power-on defaults of the profile; ESC @ returns to them.
    """

    def __init__(self, codepage: int = 0, chinese: bool = False, chinese_codec: str = C.CHINESE_CODEC):
        self.default_codepage = codepage
        self.default_chinese = chinese
        self.chinese_codec = chinese_codec
        self._buf = bytearray()
        self._base = 0          # stream offset of _buf[0]
        self._need = 0          # bytes the buffer must hold before parsing can progress
        self._reset_modes()

    # -- state ---------------------------------------------------------------------------------
    def _reset_modes(self) -> None:
        self.codepage = self.default_codepage
        self.chinese = self.default_chinese
        self.barcode_height, self.barcode_width, self.hri = 162, 3, 0
        self.qr_model, self.qr_size, self.qr_error = 2, 3, "L"
        self.qr_data: bytes | None = None
        self.graphics: tuple[int, int, bytes] | None = None   # (width, height, bits) stored by GS ( L fn 112
        self._codec = self.codec

    def _set_mode(self, codepage: int | None = None, chinese: bool | None = None) -> None:
        if codepage is not None:
            self.codepage = codepage
        if chinese is not None:
            self.chinese = chinese
        self._codec = self.codec              # cached: read once per text run

    @property
    def codec(self) -> str:
        """The codec text is decoded with now: GB18030 in Chinese mode, else the ESC t code page."""
        if self.chinese:
            return self.chinese_codec
        return C.CODE_PAGES.get(self.codepage, "cp437")

    @property
    def offset(self) -> int:
        """Bytes consumed into events so far."""
        return self._base

    @property
    def pending(self) -> int:
        """Bytes buffered but not yet part of an event."""
        return len(self._buf)

    # -- feeding -------------------------------------------------------------------------------
    def feed(self, data: bytes) -> list[Event]:
        """Decode as far as the bytes so far allow; return the events completed by `data`."""
        self._buf += data
        if len(self._buf) < self._need:
            return []
        return self._run(final=False)

    def finish(self) -> list[Event]:
        """End of stream: emit the trailing text run and an `Incomplete` for any command cut short."""
        return self._run(final=True)

    def salvage(self, reason: str) -> Event:
        """After a failure inside the decoder: every byte buffered but not yet decoded as one `Unknown` event
        (nothing is lost, offsets stay right), and a clean buffer to go on from."""
        event = Unknown(bytes(self._buf), self._base, reason)
        self._base += len(self._buf)
        self._buf.clear()
        self._need = 0
        return event

    def _run(self, final: bool) -> list[Event]:
        events: list[Event] = []
        pos = self._parse(events, final)
        if pos:
            del self._buf[:pos]
            self._base += pos
            self._need = max(0, self._need - pos)
        if final and self._buf:
            events.append(Incomplete(bytes(self._buf), self._base, "stream ended inside a command"))
            self._base += len(self._buf)
            self._buf.clear()
        return events

    def _parse(self, events: list[Event], final: bool) -> int:
        buf = self._buf
        n = len(buf)
        pos = 0
        self._need = 0
        base = self._base
        text_match = TEXT_RUN.match
        by_prefix = C.BY_PREFIX
        lf = _LF
        while pos < n:
            b = buf[pos]
            if b >= 0x20:
                end = text_match(buf, pos).end()
                if end == n and not final:
                    self._need = n + 1
                    break
                events.append(Text(bytes(buf[pos:end]), base + pos, self._codec))
                pos = end
                continue
            if b == lf:
                events.append(Feed(C.LF, base + pos, "line", 1))
                pos += 1
                continue
            avail = n - pos
            if b in PREFIX_BYTES:
                if avail < 2:
                    if final:
                        break
                    self._need = n + 1
                    break
                if buf[pos + 1] < 0x20 and bytes(buf[pos:pos + 2]) not in by_prefix:
                    events.append(Unknown(bytes(buf[pos:pos + 1]), base + pos,
                                          f"prefix 0x{b:02x} followed by control byte 0x{buf[pos + 1]:02x}"))
                    pos += 1
                    continue
                prefix = bytes(buf[pos:pos + 2])
                if prefix in _LONG_PREFIXES:
                    if avail < 3:
                        if not final:
                            self._need = n + 1
                        break
                    prefix = bytes(buf[pos:pos + 3])
                cmd = by_prefix.get(prefix)
                if cmd is None:
                    events.append(Unknown(prefix, base + pos, f"unknown command {prefix.hex(' ')}: "
                                          "skipped its prefix bytes (no length field known)"))
                    pos += len(prefix)
                    continue
            else:
                cmd = by_prefix.get(bytes((b,)))
                if cmd is None:
                    events.append(Unknown(bytes((b,)), base + pos, f"control byte 0x{b:02x}"))
                    pos += 1
                    continue
            plen = len(cmd.prefix)
            if isinstance(cmd.length, int):
                total = plen + cmd.length
            else:
                total = LENGTH_RULES[cmd.length](buf, pos, plen, avail)
            if total is not None and total > MAX_COMMAND:
                events.append(Unknown(bytes(buf[pos:pos + plen]), base + pos,
                                      f"{cmd.name} declares {total} bytes (more than {MAX_COMMAND}): "
                                      "treated as garbage, skipped its prefix"))
                pos += plen
                continue
            if total is None or total > avail:
                if not final:
                    self._need = n + 1 if total is None else pos + total
                break
            raw = bytes(buf[pos:pos + total])
            events.append(self._event(cmd, raw, base + pos))
            pos += total
        return pos

    # -- command -> event ----------------------------------------------------------------------
    def _event(self, cmd: C.Command, raw: bytes, offset: int) -> Event:
        name = cmd.name
        plen = len(cmd.prefix)
        p = raw[plen:]
        if name in _STYLE_1:
            mask = 0x01 if name in _BIT0_STYLES else 0xFF
            return Style(raw, offset, _STYLE_1[name], p[0] & mask)
        if name in _CONTROL_NAMES:
            return Control(raw, offset, name)
        handler = _HANDLERS.get(name)
        if handler is not None:
            return handler(self, raw, p, offset)
        return Setting(raw, offset, name, p)

    def _code_page(self, raw, p, offset):
        self._set_mode(codepage=p[0])
        return CodePage(raw, offset, p[0], C.CODE_PAGES.get(p[0]))

    def _initialize(self, raw, p, offset):
        self._reset_modes()
        return Initialize(raw, offset)

    def _char_size(self, raw, p, offset):
        return Style(raw, offset, "size", ((p[0] >> 4 & 7) + 1, (p[0] & 7) + 1))

    def _feed_lines(self, raw, p, offset):
        return Feed(raw, offset, "lines", p[0])

    def _reverse_lines(self, raw, p, offset):
        return Feed(raw, offset, "lines", -p[0])

    def _feed_dots(self, raw, p, offset):
        return Feed(raw, offset, "dots", p[0])

    def _reverse_dots(self, raw, p, offset):
        return Feed(raw, offset, "dots", -p[0])

    def _drawer(self, raw, p, offset):
        return DrawerPulse(raw, offset, 2 if p[0] in (0, 48) else 5, p[1] * 2, p[2] * 2)

    def _realtime_fn(self, raw, p, offset):
        if p[0] == C.DLE_DC4_PULSE and len(p) >= 3:
            return DrawerPulse(raw, offset, 2 if p[1] == 0 else 5, p[2] * 100, p[2] * 100)
        return StatusRequest(raw, offset, "dle_dc4", p[0])

    def _cut(self, raw, p, offset):
        m = p[0]
        mode = C.CUT_MODES.get(m)
        if mode is None:
            return Unknown(raw, offset, f"GS V with unknown mode {m}")
        return Cut(raw, offset, mode[0], m, p[1] if mode[1] else None)

    def _legacy_cut(self, raw, p, offset):
        return Cut(raw, offset, "partial", raw[1], None)

    def _barcode_setting(self, raw, p, offset):
        prefix = raw[:2]
        if prefix == C.BARCODE_HEIGHT:
            self.barcode_height = p[0]
        elif prefix == C.BARCODE_WIDTH:
            self.barcode_width = p[0]
        else:
            self.hri = p[0]
        return Setting(raw, offset, C.BY_PREFIX[prefix].name, p)

    def _barcode(self, raw, p, offset):
        m = p[0]
        if m <= 6:
            sym, form, data = C.BARCODE_A.get(m), "A", p[1:-1] if p[-1:] == C.NUL else p[1:]
        elif 65 <= m <= 79:
            sym, form, data = C.BARCODE_B.get(m), "B", p[2:]
        else:
            return Unknown(raw, offset, f"GS k with unknown symbology {m}")
        return Barcode(raw, offset, sym or f"m={m}", m, data, form, self.barcode_height, self.barcode_width,
                       self.hri)

    def _column(self, raw, p, offset):
        m, dots = p[0], p[1] | p[2] << 8
        rows = 24 if m in C.COLUMN_24_DOT else 8
        return Image(raw, offset, "column", dots, rows, column_to_raster(p[3:], dots, rows // 8), m)

    def _paren(self, raw, p, offset):
        head = raw[:3]
        if head == C.SYMBOL:                                # GS ( k pL pH: 2D symbols
            return self._symbol(raw, p[3:], offset)
        if head == C.GRAPHICS:                              # GS ( L pL pH: graphics
            return self._graphics(raw, p[3:], offset)
        if head == C.GRAPHICS_LONG:                         # GS 8 L p1..p4: graphics, 4-byte length
            return self._graphics(raw, p[4:], offset)
        return Unknown(raw, offset, f"{raw[:3].hex(' ')} function skipped by its length field "
                                    f"({len(raw)} bytes)")

    def _symbol(self, raw, body, offset):
        if len(body) < 2:
            return Unknown(raw, offset, "GS ( k with fewer than 2 parameter bytes")
        cn, fn, params = body[0], body[1], body[2:]
        if cn == C.QR_CN:
            if fn == C.QR_FN_MODEL and params:
                self.qr_model = params[0] - 48
            elif fn == C.QR_FN_SIZE and params:
                self.qr_size = params[0]
            elif fn == C.QR_FN_ERROR and params:
                self.qr_error = C.QR_ERROR_LEVELS.get(params[0], "?")
            elif fn == C.QR_FN_STORE and params:
                self.qr_data = bytes(params[1:])
            elif fn == C.QR_FN_PRINT:
                return Symbol(raw, offset, cn, fn, bytes(params), self.qr_data, self.qr_size, self.qr_error)
        return Symbol(raw, offset, cn, fn, bytes(params), None, self.qr_size, self.qr_error)

    def _graphics(self, raw, body, offset):
        if len(body) < 2:
            return Unknown(raw, offset, "graphics command with fewer than 2 parameter bytes")
        m, fn, params = body[0], body[1], body[2:]
        if fn == C.GRAPHICS_FN_STORE_RASTER and len(params) >= 8:
            w, h = params[4] | params[5] << 8, params[6] | params[7] << 8
            bits = params[8:]
            row = (w + 7) // 8
            h = min(h, len(bits) // row) if row else 0      # only the rows sent: a declared 65535 x 65535 from
            self.graphics = (w, h, bits[:row * h])          # a few bytes would take gigabytes to draw
            return Graphics(raw, offset, fn, params[:8], (w, h))
        if fn == C.GRAPHICS_FN_PRINT:
            if self.graphics is None:
                return Unknown(raw, offset, "GS ( L print with no graphics stored")
            w, h, bits = self.graphics
            return Image(raw, offset, "graphics", w, h, bits, m)
        return Graphics(raw, offset, fn, params[:16], None)


def column_to_raster(data: bytes, width: int, bands: int) -> bytes:
    """ESC * column data (each column `bands` bytes top to bottom) to packed raster rows."""
    height = bands * 8
    row_bytes = (width + 7) // 8
    out = bytearray(row_bytes * height)
    for x in range(min(width, len(data) // bands)):
        mask = 0x80 >> (x & 7)
        xb = x >> 3
        for band in range(bands):
            v = data[x * bands + band]
            if not v:
                continue
            y0 = band * 8
            for bit in range(8):
                if v & (0x80 >> bit):
                    out[(y0 + bit) * row_bytes + xb] |= mask
    return bytes(out)


def _chinese_mode(on: bool) -> Callable:
    def handler(self: Decoder, raw: bytes, p: bytes, offset: int) -> Event:
        self._set_mode(chinese=on)
        return ChineseMode(raw, offset, on)
    return handler


def _bit_image(mode: str) -> Callable:
    """GS v 0 ('raster') and GS Q 0 ('variable'): m xL xH yL yH, then packed rows."""
    def handler(self: Decoder, raw: bytes, p: bytes, offset: int) -> Event:
        xb, h = p[1] | p[2] << 8, p[3] | p[4] << 8
        return Image(raw, offset, mode, xb * 8, h, p[5:], p[0])
    return handler


def _status_request(request: str) -> Callable:
    def handler(self: Decoder, raw: bytes, p: bytes, offset: int) -> Event:
        return StatusRequest(raw, offset, request, p[0] if p else 0)
    return handler


_HANDLERS: dict[str, Callable] = {
    "code_page": Decoder._code_page,
    "chinese_on": _chinese_mode(True),
    "chinese_off": _chinese_mode(False),
    "initialize": Decoder._initialize,
    "char_size": Decoder._char_size,
    "feed_lines": Decoder._feed_lines,
    "reverse_feed_lines": Decoder._reverse_lines,
    "feed_dots": Decoder._feed_dots,
    "reverse_feed_dots": Decoder._reverse_dots,
    "drawer_pulse": Decoder._drawer,
    "realtime_function": Decoder._realtime_fn,
    "realtime_status": _status_request("dle_eot"),
    "realtime_request": _status_request("dle_enq"),
    "transmit_status": _status_request("gs_r"),
    "transmit_id": _status_request("gs_i"),
    "automatic_status_back": _status_request("asb"),
    "peripheral_status": _status_request("esc_u"),
    "paper_sensor_status": _status_request("esc_v"),
    "cut": Decoder._cut,
    "cut_partial_legacy": Decoder._legacy_cut,
    "barcode_height": Decoder._barcode_setting,
    "barcode_width": Decoder._barcode_setting,
    "hri_position": Decoder._barcode_setting,
    "barcode": Decoder._barcode,
    "raster_image": _bit_image("raster"),
    "variable_image": _bit_image("variable"),
    "column_image": Decoder._column,
    "gs_paren": Decoder._paren,
    "fs_paren": Decoder._paren,
    "esc_paren": Decoder._paren,
}


def decode(data: bytes, codepage: int = 0, chinese: bool = False,
           chinese_codec: str = C.CHINESE_CODEC) -> list[Event]:
    """Decode a whole byte string (a convenience over `Decoder`)."""
    d = Decoder(codepage, chinese, chinese_codec)
    return d.feed(data) + d.finish()

"""ZVT (ECR interface of German-standard payment terminals, revision 13.x) declared as data, with its codec.

An APDU is CLASS, INSTR, LENGTH, DATA. LENGTH is one byte, or FF followed by two bytes (low byte first) when
the data is 255 bytes or longer. DATA is a fixed positional prefix (per command) followed by BMPs: a one-byte
number, then a value whose length is fixed, LLVAR (F1 F2 = 12 bytes), LLLVAR (F0 F1 F2) or BER-TLV (BMP 06).

>>> raw = encode("authorization", amount=1999, currency=978)
>>> raw.hex(" ")
'06 01 0a 04 00 00 00 00 19 99 49 09 78'
>>> msg = decode_apdu(ApduReader().feed(raw)[0])
>>> msg.name, msg.fields["amount"], msg.fields["currency"]
('authorization', 1999, 978)

Everything here is shared: the emulated terminal, the real-terminal driver and any ECR may use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_PORT = 20007
MAX_APDU_DATA = 4096  # incoming APDUs announcing more are treated as garbage, not waited for

# -- control fields ------------------------------------------------------------------------------------------
# (CLASS, INSTR) -> name. The single source of truth for command bytes.
COMMANDS: dict[tuple[int, int], str] = {
    (0x80, 0x00): "ack",
    (0x84, 0x00): "ack_84",  # positive acknowledgement in the 84 class
    (0x04, 0x0F): "status_information",
    (0x04, 0xFF): "intermediate_status",
    (0x05, 0x01): "status_enquiry",
    (0x06, 0x00): "registration",
    (0x06, 0x01): "authorization",
    (0x06, 0x02): "log_off",
    (0x06, 0x0F): "completion",
    (0x06, 0x1E): "abort",
    (0x06, 0x20): "repeat_receipt",
    (0x06, 0x30): "reversal",
    (0x06, 0x50): "end_of_day",
    (0x06, 0xB0): "ecr_abort",
    (0x06, 0xD1): "print_line",
    (0x06, 0xD3): "print_text_block",
}
CONTROL: dict[str, tuple[int, int]] = {name: cf for cf, name in COMMANDS.items()}
NACK_CLASS = 0x84  # 84 xx: negative acknowledgement with error code xx (xx != 00)
KNOWN_CLASSES = frozenset({0x04, 0x05, 0x06, 0x08, 0x80, 0x84})

# Positional (untagged) fields that start a command's data, before its BMPs: (name, length, encoding,
# optional).
PREFIX: dict[str, tuple[tuple[str, int, str, bool], ...]] = {
    "registration": (
        ("password", 3, "bcd", False),
        ("config_byte", 1, "int", False),
        ("currency", 2, "bcd", True),
    ),
    "status_enquiry": (("password", 3, "bcd", True),),
    "repeat_receipt": (("password", 3, "bcd", True),),
    "reversal": (("password", 3, "bcd", False),),
    "end_of_day": (("password", 3, "bcd", True),),
    "log_off": (),
    "abort": (("result_code", 1, "int", True),),
    "intermediate_status": (("status", 1, "int", False), ("timeout", 1, "int", True)),
    "print_line": (("attribute", 1, "int", False), ("text", -1, "text", False)),  # -1 = rest of the data
    "nack": (),
}
# Commands whose data is positional only (no BMPs follow).
NO_BMPS = frozenset({"print_line", "intermediate_status", "abort"})

# -- BMPs ----------------------------------------------------------------------------------------------------
# number -> (name, length kind, fixed size, encoding). Kinds: fixed, ll (LLVAR), lll (LLLVAR), tlv.
# Encodings: int (binary), bcd (packed decimal, int), digits (BCD string, E = masked digit, F = pad),
# ascii, raw.


@dataclass(frozen=True)
class Bmp:
    number: int
    name: str
    kind: str
    size: int
    encoding: str


BMPS: dict[int, Bmp] = {
    b.number: b
    for b in (
        Bmp(0x01, "timeout", "fixed", 1, "int"),
        Bmp(0x02, "max_status_infos", "fixed", 1, "int"),
        Bmp(0x03, "service_byte", "fixed", 1, "int"),
        Bmp(0x04, "amount", "fixed", 6, "bcd"),
        Bmp(0x05, "pump_no", "fixed", 1, "int"),
        Bmp(0x06, "tlv", "tlv", 0, "raw"),
        Bmp(0x0B, "trace", "fixed", 3, "bcd"),
        Bmp(0x0C, "time", "fixed", 3, "digits"),  # HHMMSS
        Bmp(0x0D, "date", "fixed", 2, "digits"),  # MMDD
        Bmp(0x0E, "expiry", "fixed", 2, "digits"),  # YYMM
        Bmp(0x17, "card_sequence_no", "fixed", 2, "bcd"),
        Bmp(0x19, "payment_type", "fixed", 1, "int"),  # also status-byte (06 00 completion)
        Bmp(0x22, "pan", "ll", 0, "digits"),
        Bmp(0x23, "track2", "ll", 0, "digits"),
        Bmp(0x24, "track3", "lll", 0, "digits"),
        Bmp(0x27, "result_code", "fixed", 1, "int"),
        Bmp(0x29, "terminal_id", "fixed", 4, "digits"),
        Bmp(0x2A, "vu_number", "fixed", 15, "ascii"),
        Bmp(0x2D, "track1", "ll", 0, "ascii"),
        Bmp(0x2E, "sync_chip_data", "lll", 0, "raw"),
        Bmp(0x37, "original_trace", "fixed", 3, "bcd"),
        Bmp(0x3A, "cvv", "fixed", 2, "digits"),
        Bmp(0x3B, "aid", "fixed", 8, "ascii"),  # authorisation attribute (approval code)
        Bmp(0x3C, "additional_text", "lll", 0, "ascii"),
        Bmp(0x3D, "password", "fixed", 3, "bcd"),
        Bmp(0x49, "currency", "fixed", 2, "bcd"),
        Bmp(0x60, "totals", "lll", 0, "raw"),
        Bmp(0x87, "receipt_no", "fixed", 2, "bcd"),
        Bmp(0x88, "turnover_no", "fixed", 3, "bcd"),
        Bmp(0x8A, "card_type", "fixed", 1, "int"),
        Bmp(0x8B, "card_name", "ll", 0, "ascii"),
        Bmp(0x8C, "card_type_id", "fixed", 1, "int"),
        Bmp(0x9A, "geldkarte", "lll", 0, "raw"),
        Bmp(0xA0, "result_code_as", "fixed", 1, "int"),
        Bmp(0xA7, "chip_data", "ll", 0, "raw"),
        Bmp(0xAA, "date_long", "fixed", 3, "digits"),  # YYMMDD
        Bmp(0xAF, "ef_info", "lll", 0, "raw"),
        Bmp(0xBA, "aid_parameter", "fixed", 5, "raw"),
    )
}
BMP_BY_NAME: dict[str, Bmp] = {b.name: b for b in BMPS.values()}

# -- code tables ---------------------------------------------------------------------------------------------
RESULT_CODES: dict[int, str] = {
    0x00: "no error",
    0x05: "declined by the authorisation system (do not honour)",
    0x33: "declined by the authorisation system (insufficient funds)",
    0x37: "declined (incorrect PIN)",
    0x64: "card not readable",
    0x65: "card-data not present",
    0x66: "processing-error",
    0x6C: "abort via timeout or abort-key",
    0x6F: "wrong currency",
    0x72: "chip error",
    0x78: "card expired",
    0x7D: "communication error",
    0x83: "function not possible",
    0x9A: "ZVT protocol error",
    0x9B: "error from dial-up/communication fault",
    0x9C: "please wait",
    0xA0: "receiver not ready",
    0xA1: "remote station does not respond",
    0xA3: "no connection",
    0xB4: "already reversed",
    0xB5: "reversal not possible",
    0xC3: "maximum amount exceeded",
    0xFF: "system error",
}
# Result codes 01..63 carry the authorisation system's (ISO 8583 field 39) answer as a binary number.
ISO_FIELD39_MAX = 63


def result_from_iso(field39: str) -> int:
    """ZVT result code for an ISO 8583 response code: '00' -> 0x00, '05' -> 0x05, '51' -> 0x33 (= 51)."""
    try:
        value = int(field39)
    except ValueError:
        return 0xFF
    return value if 0 <= value <= ISO_FIELD39_MAX else 0xFF


INTERMEDIATE_STATUS: dict[int, str] = {
    0x01: "please watch PIN-pad",
    0x04: "waiting for response from FEP",
    0x05: "sending auto-reversal",
    0x0A: "insert card",
    0x0B: "please remove card",
    0x0E: "please wait",
    0x0F: "automatic end-of-day batch",
    0x14: "credit not sufficient",
    0x15: "incorrect PIN",
    0x17: "please wait",
    0x1C: "approved, please take goods",
    0x1D: "declined",
    0xF1: "offline",
    0xF2: "online",
    0xF3: "offline transaction",
}

# Registration config-byte bits (06 00).
CONFIG_ECR_PRINTS_PAYMENT = 0x02  # ECR prints payment receipts: PT sends them as 06 D1 lines
CONFIG_ECR_PRINTS_ADMIN = 0x04  # ECR prints administration receipts (end-of-day, ...)
CONFIG_INTERMEDIATE_STATUS = 0x08  # PT sends 04 FF intermediate status
CONFIG_ECR_CONTROLS_PAYMENT = 0x10
CONFIG_ECR_CONTROLS_ADMIN = 0x20
CONFIG_PRINT_TEXT_BLOCK = 0x80

# Print-line (06 D1) attribute: 1xxx xxxx (not 80, not FF) marks the last line of a receipt.
PRINT_NORMAL = 0x00
PRINT_LAST_LINE = 0x81

TERMINAL_STATUS_READY = 0x00  # terminal-status-code in the 05 01 completion


class ZvtError(ValueError):
    """Bytes that are not valid ZVT. `code` is the result code to NACK with (84 xx)."""

    def __init__(self, message: str, code: int = 0x9A):
        super().__init__(message)
        self.code = code


# -- primitive encodings -------------------------------------------------------------------------------------
def bcd_encode(value: int, size: int) -> bytes:
    """Packed BCD, right-aligned, `size` bytes: bcd_encode(1999, 6) -> 00 00 00 00 19 99."""
    digits = str(int(value)).rjust(size * 2, "0")
    if len(digits) > size * 2 or value < 0:
        raise ZvtError(f"{value} does not fit {size} BCD bytes")
    return bytes.fromhex(digits)


def bcd_decode(raw: bytes) -> int:
    text = raw.hex()
    if not text.isdigit():
        raise ZvtError(f"not packed BCD: {raw.hex(' ')}")
    return int(text) if text else 0


def digits_encode(digits: str, size: int = 0) -> bytes:
    """BCD digit string; 'E' marks a masked digit, odd lengths padded with F. `size` pads with F to fixed
    bytes."""
    text = digits.upper().replace("*", "E")
    if any(c not in "0123456789E" for c in text):
        raise ZvtError(f"card digits may only be 0-9 or masked: {digits!r}")
    if len(text) % 2:
        text += "F"
    if size:
        text = text.ljust(size * 2, "F")
    return bytes.fromhex(text)


def digits_decode(raw: bytes) -> str:
    """Inverse of digits_encode: F padding dropped, masked digits shown as '*'."""
    text = raw.hex().upper().rstrip("F")
    return text.replace("E", "*")


def llvar_prefix(length: int, places: int) -> bytes:
    """LLVAR/LLLVAR length: each decimal digit d as byte F0+d (12 -> F1 F2)."""
    text = str(length).rjust(places, "0")
    if len(text) > places:
        raise ZvtError(f"length {length} does not fit {places} digits")
    return bytes(0xF0 | int(c) for c in text)


def llvar_length(raw: bytes) -> int:
    if any(b & 0xF0 != 0xF0 or (b & 0x0F) > 9 for b in raw):
        raise ZvtError(f"bad LLVAR length {raw.hex(' ')}")
    return int("".join(str(b & 0x0F) for b in raw))


def tlv_length(data: bytes, at: int) -> tuple[int, int]:
    """BER length at `at`: returns (length, bytes used by the length field)."""
    if at >= len(data):
        raise ZvtError("TLV length missing")
    first = data[at]
    if first < 0x80:
        return first, 1
    n = first & 0x7F
    if n == 0 or n > 2 or at + 1 + n > len(data):
        raise ZvtError(f"bad TLV length byte {first:02X}")
    return int.from_bytes(data[at + 1 : at + 1 + n], "big"), 1 + n


def tlv_container(content: bytes) -> bytes:
    """BMP 06 value: BER length + content."""
    n = len(content)
    if n < 0x80:
        return bytes([n]) + content
    if n < 0x100:
        return bytes([0x81, n]) + content
    return bytes([0x82]) + n.to_bytes(2, "big") + content


# -- APDU framing --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Apdu:
    cls: int
    ins: int
    data: bytes = b""

    @property
    def name(self) -> str:
        if self.cls == NACK_CLASS and self.ins != 0x00:
            return "nack"
        return COMMANDS.get((self.cls, self.ins), f"unknown_{self.cls:02X}_{self.ins:02X}")

    def to_bytes(self) -> bytes:
        return frame(self.cls, self.ins, self.data)


def frame(cls: int, ins: int, data: bytes = b"") -> bytes:
    """CLASS INSTR LENGTH DATA, with the extended length FF LL HH when the data is 255 bytes or more."""
    n = len(data)
    if n > 0xFFFF:
        raise ZvtError(f"APDU data of {n} bytes exceeds 65535")
    head = bytes([cls, ins]) + (bytes([n]) if n < 0xFF else b"\xff" + n.to_bytes(2, "little"))
    return head + bytes(data)


def apdu_length(head: bytes) -> int | None:
    """Total length (header and data) of the APDU whose first bytes are `head`; None while too few are known.

    >>> apdu_length(bytes.fromhex("06 01 0a")), apdu_length(bytes.fromhex("06 d3 ff 00 01")), apdu_length(b"\\x06")
    (13, 261, None)
    """
    if len(head) < 3:
        return None
    if head[2] != 0xFF:
        return 3 + head[2]
    if len(head) < 5:
        return None
    return 5 + int.from_bytes(head[3:5], "little")


class ApduReader:
    """Incremental APDU splitter for a TCP stream. Half APDUs wait; garbage raises ZvtError and is dropped."""

    def __init__(self, max_data: int = MAX_APDU_DATA):
        self.max_data = max_data
        self._buf = bytearray()

    @property
    def pending(self) -> bytes:
        return bytes(self._buf)

    def feed(self, chunk: bytes) -> list[Apdu]:
        self._buf += chunk
        out: list[Apdu] = []
        while len(self._buf) >= 3:
            cls, ins, n = self._buf[0], self._buf[1], self._buf[2]
            head = 3
            if cls not in KNOWN_CLASSES:
                bad = bytes(self._buf)
                self._buf.clear()
                raise ZvtError(f"unknown APDU class {cls:02X}; {len(bad)} bytes dropped: {bad[:16].hex(' ')}")
            if n == 0xFF:
                if len(self._buf) < 5:
                    break
                n = int.from_bytes(self._buf[3:5], "little")
                head = 5
            if n > self.max_data:
                bad = bytes(self._buf)
                self._buf.clear()
                raise ZvtError(
                    f"APDU {cls:02X} {ins:02X} announces {n} data bytes (max {self.max_data}); "
                    f"{len(bad)} bytes dropped"
                )
            if len(self._buf) < head + n:
                break
            out.append(Apdu(cls, ins, bytes(self._buf[head : head + n])))
            del self._buf[: head + n]
        return out


# -- BMP section ---------------------------------------------------------------------------------------------
def _decode_value(bmp: Bmp, raw: bytes) -> Any:
    if bmp.encoding == "int":
        return int.from_bytes(raw, "big")
    if bmp.encoding == "bcd":
        return bcd_decode(raw)
    if bmp.encoding == "digits":
        return digits_decode(raw)
    if bmp.encoding == "ascii":
        return raw.decode("latin-1").rstrip("\x00")
    return raw


def _encode_value(bmp: Bmp, value: Any) -> bytes:
    if bmp.encoding == "int":
        return int(value).to_bytes(bmp.size or 1, "big")
    if bmp.encoding == "bcd":
        return bcd_encode(int(value), bmp.size)
    if bmp.encoding == "digits":
        return digits_encode(str(value), bmp.size)
    if bmp.encoding == "ascii":
        raw = str(value).encode("latin-1", "replace")
        return raw.ljust(bmp.size, b" ")[: bmp.size] if bmp.kind == "fixed" else raw
    return bytes(value)


def parse_bmps(data: bytes, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    """Decode a BMP section into {name: value}; raises ZvtError naming the BMP and offset that is wrong."""
    fields = {} if fields is None else fields
    i = 0
    while i < len(data):
        number = data[i]
        bmp = BMPS.get(number)
        if bmp is None:
            raise ZvtError(f"unknown BMP {number:02X} at offset {i}")
        i += 1
        if bmp.kind == "fixed":
            n = bmp.size
        elif bmp.kind in ("ll", "lll"):
            places = 2 if bmp.kind == "ll" else 3
            if i + places > len(data):
                raise ZvtError(f"BMP {number:02X} ({bmp.name}): length field cut short")
            n = llvar_length(data[i : i + places])
            i += places
        else:
            n, used = tlv_length(data, i)
            i += used
        if i + n > len(data):
            raise ZvtError(
                f"BMP {number:02X} ({bmp.name}) needs {n} bytes at offset {i}, only {len(data) - i} left"
            )
        fields[bmp.name] = _decode_value(bmp, data[i : i + n])
        i += n
    return fields


def build_bmps(items: list[tuple[str, Any]]) -> bytes:
    """Encode [(bmp name, value), ...] in the order given; None values are left out."""
    out = bytearray()
    for name, value in items:
        if value is None:
            continue
        bmp = BMP_BY_NAME[name]
        raw = _encode_value(bmp, value)
        out.append(bmp.number)
        if bmp.kind == "ll":
            out += llvar_prefix(len(raw), 2)
        elif bmp.kind == "lll":
            out += llvar_prefix(len(raw), 3)
        elif bmp.kind == "tlv":
            raw = tlv_container(raw)
        out += raw
    return bytes(out)


# -- whole messages ------------------------------------------------------------------------------------------
@dataclass
class Message:
    """A decoded APDU: its command name and its fields (positional prefix and BMPs by name)."""

    name: str
    fields: dict[str, Any] = field(default_factory=dict)
    apdu: Apdu | None = None


def decode_apdu(apdu: Apdu) -> Message:
    """Decode an APDU's data by its command's layout. Raises ZvtError (code 9A) when the data is malformed."""
    name = apdu.name
    data = apdu.data
    fields: dict[str, Any] = {}
    if name == "nack":
        fields["result_code"] = apdu.ins
        return Message(name, fields, apdu)
    i = 0
    for fname, size, enc, optional in PREFIX.get(name, ()):
        if size == -1:
            fields[fname] = data[i:].decode("latin-1")
            i = len(data)
            continue
        if i + size > len(data):
            if optional:
                break
            raise ZvtError(f"{name}: {fname} ({size} bytes) missing")
        if optional and name == "registration" and fname == "currency" and data[i] in (0x03, 0x06):
            break  # no currency code: the BMP section (03 / 06) starts here
        chunk = data[i : i + size]
        fields[fname] = bcd_decode(chunk) if enc == "bcd" else int.from_bytes(chunk, "big")
        i += size
    rest = data[i:]
    if name == "completion" and rest and rest[0] >= 0xF0:
        # 05 01 answer: <sw-version LLLVAR> <terminal-status-code> [06 TLV]
        n = llvar_length(rest[:3])
        fields["sw_version"] = rest[3 : 3 + n].decode("latin-1")
        if len(rest) < 4 + n:
            raise ZvtError("completion: terminal-status-code missing")
        fields["terminal_status"] = rest[3 + n]
        rest = rest[4 + n :]
    if name in NO_BMPS:
        if name == "abort" and rest:
            fields["extra"] = rest
        return Message(name, fields, apdu)
    if rest:
        parse_bmps(rest, fields)
    return Message(name, fields, apdu)


def encode(name: str, **fields: Any) -> bytes:
    """Encode a command by name: positional prefix fields first, then every other field as a BMP.

    >>> encode("ack").hex(" ")
    '80 00 00'
    >>> encode("abort", result_code=0x6C).hex(" ")
    '06 1e 01 6c'
    """
    if name == "nack":
        return frame(NACK_CLASS, int(fields.get("result_code", 0x83)))
    cls, ins = CONTROL[name]
    data = bytearray()
    used = set()
    for fname, size, enc, _optional in PREFIX.get(name, ()):
        if fields.get(fname) is None:
            continue
        value = fields[fname]
        used.add(fname)
        if size == -1:
            data += str(value).encode("latin-1", "replace")
        elif enc == "bcd":
            data += bcd_encode(int(value), size)
        else:
            data += int(value).to_bytes(size, "big")
    if name == "completion" and fields.get("sw_version") is not None:
        sw = str(fields["sw_version"]).encode("latin-1")
        data += llvar_prefix(len(sw), 3) + sw + bytes([int(fields.get("terminal_status", 0))])
        used |= {"sw_version", "terminal_status"}
    rest = [(k, v) for k, v in fields.items() if k not in used]
    unknown = [k for k, _ in rest if k not in BMP_BY_NAME]
    if unknown:
        raise ZvtError(f"{name}: no BMP named {', '.join(unknown)}; known: {', '.join(sorted(BMP_BY_NAME))}")
    data += build_bmps(rest)
    return frame(cls, ins, bytes(data))


def hexdump(raw: bytes) -> str:
    """APDU bytes for transcripts, colon-separated ('06:01:0a'), so BCD amounts and traces in a dump do not
    look like card numbers to the PAN masker (card numbers on the wire are masked with E nibbles already).
    """
    return bytes(raw).hex(":")


def describe(message: Message) -> str:
    """One line for logs: 'status_information result_code=0x00 amount=1999 pan=411111******1111'."""
    parts = [message.name]
    for k, v in message.fields.items():
        if k == "result_code" and isinstance(v, int):
            parts.append(f"result_code=0x{v:02X} ({RESULT_CODES.get(v, 'unknown')})")
        elif isinstance(v, bytes):
            parts.append(f"{k}={v.hex()}")
        else:
            parts.append(f"{k}={v}")
    return " ".join(parts)


# -- serial (RS-232) data link -----------------------------------------------------------------------------
# On a serial line every APDU travels as DLE STX <APDU, each DLE doubled> DLE ETX <CRC low> <CRC high>; the
# receiver answers ACK (06) when the CRC is right, NAK (15) otherwise, and the sender repeats up to 3 times.
DLE, STX, ETX = 0x10, 0x02, 0x03
LINK_ACK, LINK_NAK = 0x06, 0x15
SERIAL_RETRIES = 3


def crc16(data: bytes) -> int:
    """CRC-CCITT as ZVT uses it on RS-232 (reflected polynomial 0x8408, start 0), over the APDU plus ETX."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc


def serial_frame(apdu: bytes) -> bytes:
    """DLE STX, the APDU with DLE doubled, DLE ETX, CRC low byte, CRC high byte."""
    crc = crc16(bytes(apdu) + bytes([ETX]))
    stuffed = bytes(apdu).replace(bytes([DLE]), bytes([DLE, DLE]))
    return bytes([DLE, STX]) + stuffed + bytes([DLE, ETX, crc & 0xFF, crc >> 8])


@dataclass(frozen=True)
class LinkEvent:
    """What the serial decoder found: 'ack', 'nak', 'frame' (apdu, crc_ok) or 'noise' (bytes skipped)."""

    kind: str
    apdu: bytes = b""
    crc_ok: bool = True


class SerialDecoder:
    """Incremental decoder of the serial data link. Bytes outside a frame other than ACK/NAK are noise."""

    def __init__(self, max_frame: int = MAX_APDU_DATA + 8):
        self.max_frame = max_frame
        self._state = "idle"
        self._frame = bytearray()
        self._crc = bytearray()

    def feed(self, chunk: bytes) -> list[LinkEvent]:
        events: list[LinkEvent] = []
        noise = bytearray()
        for byte in chunk:
            state = self._state
            if state == "idle":
                if byte == LINK_ACK:
                    events.append(LinkEvent("ack"))
                elif byte == LINK_NAK:
                    events.append(LinkEvent("nak"))
                elif byte == DLE:
                    self._state = "start"
                else:
                    noise.append(byte)
            elif state == "start":
                if byte == STX:
                    self._state, self._frame = "data", bytearray()
                else:
                    noise += bytes([DLE, byte])
                    self._state = "idle"
            elif state == "data":
                if byte == DLE:
                    self._state = "escape"
                else:
                    self._frame.append(byte)
            elif state == "escape":
                if byte == DLE:
                    self._frame.append(DLE)
                    self._state = "data"
                elif byte == ETX:
                    self._state, self._crc = "crc", bytearray()
                else:  # DLE followed by anything else: broken frame
                    noise += bytes([DLE, STX]) + self._frame + bytes([DLE, byte])
                    self._state = "idle"
            elif state == "crc":
                self._crc.append(byte)
                if len(self._crc) == 2:
                    apdu = bytes(self._frame)
                    expected = crc16(apdu + bytes([ETX]))
                    ok = self._crc[0] == expected & 0xFF and self._crc[1] == expected >> 8
                    events.append(LinkEvent("frame", apdu, ok))
                    self._state = "idle"
            if self._state == "data" and len(self._frame) > self.max_frame:
                noise += bytes([DLE, STX]) + self._frame
                self._state = "idle"
        if noise:
            events.append(LinkEvent("noise", bytes(noise)))
        return events

"""ZVT BMPs (bitmaps) declared as data, with their codec, and the BER-TLV container BMP 06 carries.

A BMP is a one-byte number, then a value whose length is fixed, LLVAR (F1 F2 = 12 bytes), LLLVAR (F0 F1 F2) or a
BER length (BMP 06, the TLV container). Value encodings: int (binary), bcd (packed decimal, an int), digits (BCD
digit string: E = masked digit shown as '*', F = padding), ascii (fixed ones padded with 00), raw (bytes), tlv.

>>> raw = build_bmps([("amount", 1999), ("pan", "411111******1111"), ("tlv", {"online_flag": 0})])
>>> raw.hex(" ")
'04 00 00 00 00 19 99 22 f0 f8 41 11 11 ee ee ee 11 11 06 04 1f 11 01 00'
>>> parse_bmps(raw)
{'amount': 1999, 'pan': '411111******1111', 'tlv': {'online_flag': 0}}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from harness.core.masking import mask_pan, mask_pans
from harness.protocols.zvt.codes import ZvtError

FIXED, LL, LLL, TLV = "fixed", "ll", "lll", "tlv"
LL_PLACES = {LL: 2, LLL: 3}


@dataclass(frozen=True)
class Bmp:
    number: int
    name: str
    kind: str            # fixed | ll | lll | tlv
    size: int            # bytes of a fixed BMP (0 for the others)
    encoding: str        # int | bcd | digits | ascii | raw | tlv


BMP_TABLE: tuple[Bmp, ...] = (
    Bmp(0x01, "timeout", FIXED, 1, "int"),
    Bmp(0x02, "max_status_infos", FIXED, 1, "int"),
    Bmp(0x03, "service_byte", FIXED, 1, "int"),
    Bmp(0x04, "amount", FIXED, 6, "bcd"),
    Bmp(0x05, "pump_no", FIXED, 1, "int"),
    Bmp(0x06, "tlv", TLV, 0, "tlv"),
    Bmp(0x0B, "trace", FIXED, 3, "bcd"),
    Bmp(0x0C, "time", FIXED, 3, "digits"),                 # HHMMSS
    Bmp(0x0D, "date", FIXED, 2, "digits"),                 # MMDD
    Bmp(0x0E, "expiry", FIXED, 2, "digits"),               # YYMM
    Bmp(0x17, "card_sequence_no", FIXED, 2, "bcd"),
    Bmp(0x19, "payment_type", FIXED, 1, "int"),            # also status-byte (06 00 completion)
    Bmp(0x22, "pan", LL, 0, "digits"),                     # card number, E nibbles = masked digits
    Bmp(0x23, "track2", LL, 0, "digits"),
    Bmp(0x24, "track3", LLL, 0, "digits"),
    Bmp(0x27, "result_code", FIXED, 1, "int"),
    Bmp(0x29, "terminal_id", FIXED, 4, "digits"),
    Bmp(0x2A, "vu_number", FIXED, 15, "ascii"),
    Bmp(0x2D, "track1", LL, 0, "ascii"),
    Bmp(0x2E, "sync_chip_data", LLL, 0, "raw"),
    Bmp(0x37, "original_trace", FIXED, 3, "bcd"),
    Bmp(0x3A, "cvv", FIXED, 2, "digits"),
    Bmp(0x3B, "aid", FIXED, 8, "ascii"),                   # authorisation attribute (the approval code)
    Bmp(0x3C, "additional_text", LLL, 0, "ascii"),
    Bmp(0x3D, "password", FIXED, 3, "bcd"),
    Bmp(0x49, "currency", FIXED, 2, "bcd"),
    Bmp(0x60, "totals", LLL, 0, "raw"),
    Bmp(0x87, "receipt_no", FIXED, 2, "bcd"),
    Bmp(0x88, "turnover_no", FIXED, 3, "bcd"),
    Bmp(0x8A, "card_type", FIXED, 1, "int"),
    Bmp(0x8B, "card_name", LL, 0, "ascii"),
    Bmp(0x8C, "card_type_id", FIXED, 1, "int"),
    Bmp(0x9A, "geldkarte", LLL, 0, "raw"),
    Bmp(0xA0, "result_code_as", FIXED, 1, "int"),
    Bmp(0xA7, "chip_data", LL, 0, "raw"),
    Bmp(0xAA, "date_long", FIXED, 3, "digits"),            # YYMMDD
    Bmp(0xAF, "ef_info", LLL, 0, "raw"),
    Bmp(0xBA, "aid_parameter", FIXED, 5, "raw"),
)
BMPS: dict[int, Bmp] = {b.number: b for b in BMP_TABLE}
BMP_BY_NAME: dict[str, Bmp] = {b.name: b for b in BMP_TABLE}

# Where card data sits in a decoded message (for masking, and to withhold raw bytes that carry it in clear).
CARD_DATA = ("pan", "track1", "track2", "track3")


# -- primitive encodings ---------------------------------------------------------------------------------------------
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
    return int(text)


def digits_encode(digits: str, size: int = 0) -> bytes:
    """BCD digit string; 'E' (or '*') marks a masked digit, odd lengths padded with F. `size` pads with F to a
    fixed number of bytes."""
    text = digits.upper().replace("*", "E")
    if any(c not in "0123456789E" for c in text):
        raise ZvtError(f"card digits may only be 0-9 or masked: {digits!r}")
    if len(text) % 2:
        text += "F"
    if size:
        if len(text) > size * 2:
            raise ZvtError(f"{len(digits)} digits do not fit {size} BCD bytes")
        text = text.ljust(size * 2, "F")
    return bytes.fromhex(text)


def digits_decode(raw: bytes) -> str:
    """Inverse of digits_encode: F padding dropped, masked digits shown as '*'."""
    return raw.hex().upper().rstrip("F").replace("E", "*")


def llvar_prefix(length: int, places: int) -> bytes:
    """LLVAR/LLLVAR length: each decimal digit d as byte F0+d (12 -> F1 F2)."""
    text = str(length).rjust(places, "0")
    if len(text) > places:
        raise ZvtError(f"length {length} does not fit {places} digits")
    return bytes(0xF0 | int(c) for c in text)


def llvar_length(raw: bytes) -> int:
    if any(b & 0xF0 != 0xF0 or (b & 0x0F) > 9 for b in raw):
        raise ZvtError(f"bad LLVAR length {raw.hex(' ')} (expected Fx bytes)")
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


def ber_length(n: int) -> bytes:
    """BER length of `n` content bytes: short form below 128, else 81 LL or 82 HH LL."""
    if n < 0x80:
        return bytes([n])
    if n < 0x100:
        return bytes([0x81, n])
    if n <= 0xFFFF:
        return bytes([0x82]) + n.to_bytes(2, "big")
    raise ZvtError(f"TLV content of {n} bytes is too long")


def tlv_container(content: bytes) -> bytes:
    """BMP 06 value: BER length + content."""
    return ber_length(len(content)) + bytes(content)


# -- the TLV container (BMP 06) --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TlvTag:
    tag: int
    name: str
    encoding: str        # int | text | raw; a constructed tag (bit 20 of its first byte) holds a nested container


TLV_TABLE: tuple[TlvTag, ...] = (
    TlvTag(0x07, "text_lines", "text"),
    TlvTag(0x41, "card_type_id", "raw"),
    TlvTag(0x42, "application_name", "text"),
    TlvTag(0x43, "application_id", "raw"),
    TlvTag(0xC4, "ecr_transaction", "raw"),
    TlvTag(0x1F10, "cardholder_auth", "raw"),
    TlvTag(0x1F11, "online_flag", "int"),          # 0 = offline transaction, 1 = online
    TlvTag(0x1F12, "card_technology", "raw"),
)
TLV_TAGS: dict[int, TlvTag] = {t.tag: t for t in TLV_TABLE}
TLV_BY_NAME: dict[str, TlvTag] = {t.name: t for t in TLV_TABLE}


def _tag_bytes(tag: int) -> bytes:
    raw = tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")
    multi = raw[0] & 0x1F == 0x1F
    if multi != (len(raw) > 1) or any(not b & 0x80 for b in raw[1:-1]) or (len(raw) > 1 and raw[-1] & 0x80):
        raise ZvtError(f"{tag:X} is not a BER tag")
    return raw


def _tag_of(name: str) -> int:
    known = TLV_BY_NAME.get(name)
    if known is not None:
        return known.tag
    if name.startswith("tag_"):
        try:
            return int(name[4:], 16)
        except ValueError:
            pass
    raise ZvtError(f"no TLV tag named {name!r}; known: {', '.join(TLV_BY_NAME)} (or tag_<hex>)")


def parse_tlv(data: bytes) -> dict[str, Any]:
    """A BER-TLV container -> {name: value}: named tags by name (others 'tag_<hex>'), constructed tags as nested
    dicts, values by the tag's encoding (unknown tags: raw bytes)."""
    out: dict[str, Any] = {}
    pos = 0
    while pos < len(data):
        first = tag = data[pos]
        pos += 1
        if first & 0x1F == 0x1F:
            while True:
                if pos >= len(data):
                    raise ZvtError(f"TLV tag {tag:X} cut short")
                tag = tag << 8 | data[pos]
                pos += 1
                if not tag & 0x80:
                    break
        if pos >= len(data):
            raise ZvtError(f"TLV tag {tag:X} without a length")
        n, used = tlv_length(data, pos)
        pos += used
        value = bytes(data[pos : pos + n])
        if len(value) != n:
            raise ZvtError(f"TLV tag {tag:X} declares {n} bytes, {len(value)} present")
        pos += n
        spec = TLV_TAGS.get(tag)
        name = spec.name if spec is not None else f"tag_{tag:x}"
        if first & 0x20:
            out[name] = parse_tlv(value)
        elif spec is None or spec.encoding == "raw":
            out[name] = value
        elif spec.encoding == "int":
            out[name] = int.from_bytes(value, "big") if value else None
        else:
            out[name] = value.decode("latin-1")
    return out


def build_tlv(items: Mapping[str, Any]) -> bytes:
    """Inverse of parse_tlv: {name: value} -> TLV bytes, in the order given."""
    out = bytearray()
    for name, value in items.items():
        tag = _tag_of(name)
        head = _tag_bytes(tag)
        constructed = bool(head[0] & 0x20)
        if isinstance(value, Mapping):
            if not constructed:
                raise ZvtError(f"TLV tag {tag:X} ({name}) is primitive: its value cannot be a container")
            body = build_tlv(value)
        elif constructed:
            raise ZvtError(f"TLV tag {tag:X} ({name}) is constructed: its value must be a container (dict)")
        elif value is None:
            body = b""
        elif isinstance(value, int):
            body = value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
        elif isinstance(value, str):
            body = value.encode("latin-1", "replace")
        else:
            body = bytes(value)
        out += head + ber_length(len(body)) + body
    return bytes(out)


# -- BMP values ------------------------------------------------------------------------------------------------------
def _decode_value(bmp: Bmp, raw: bytes) -> Any:
    if bmp.encoding == "int":
        return int.from_bytes(raw, "big")
    if bmp.encoding == "bcd":
        return bcd_decode(raw)
    if bmp.encoding == "digits":
        return digits_decode(raw)
    if bmp.encoding == "ascii":
        text = raw.decode("latin-1")
        return text.rstrip("\x00 ") if bmp.kind == FIXED else text.rstrip("\x00")
    if bmp.encoding == "tlv":
        return parse_tlv(raw)
    return bytes(raw)


def _encode_value(bmp: Bmp, value: Any) -> bytes:
    if bmp.encoding == "int":
        try:
            return int(value).to_bytes(bmp.size or 1, "big")
        except OverflowError:
            raise ZvtError(f"BMP {bmp.number:02X} ({bmp.name}): {value} does not fit {bmp.size} byte(s)") from None
    if bmp.encoding == "bcd":
        return bcd_encode(int(value), bmp.size)
    if bmp.encoding == "digits":
        return digits_encode(str(value), bmp.size)
    if bmp.encoding == "ascii":
        raw = str(value).encode("latin-1", "replace")
        return raw.ljust(bmp.size, b"\x00")[: bmp.size] if bmp.kind == FIXED else raw
    if bmp.encoding == "tlv":
        return build_tlv(value) if isinstance(value, Mapping) else bytes(value)
    raw = bytes(value)
    if bmp.kind == FIXED and len(raw) != bmp.size:
        raise ZvtError(f"BMP {bmp.number:02X} ({bmp.name}) takes {bmp.size} bytes, not {len(raw)}")
    return raw


def parse_bmps(data: bytes, fields: dict[str, Any] | None = None, *, lenient: bool = False) -> dict[str, Any]:
    """Decode a BMP section into {name: value}; raises ZvtError naming the BMP and offset that is wrong.

    `lenient`: an unknown BMP ends parsing and the rest is kept as hex under 'unparsed' (an ECR tolerates a
    terminal's newer BMPs); otherwise it is an error (a terminal refuses what it does not understand).
    """
    fields = {} if fields is None else fields
    i = 0
    while i < len(data):
        number = data[i]
        bmp = BMPS.get(number)
        if bmp is None:
            if lenient:
                fields["unparsed"] = bytes(data[i:]).hex()
                return fields
            raise ZvtError(f"unknown BMP {number:02X} at offset {i}")
        i += 1
        if bmp.kind == FIXED:
            n = bmp.size
        elif bmp.kind in LL_PLACES:
            places = LL_PLACES[bmp.kind]
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


def build_bmps(items: Iterable[tuple[str, Any]]) -> bytes:
    """Encode [(bmp name, value), ...] in the order given; None values are left out."""
    out = bytearray()
    for name, value in items:
        if value is None:
            continue
        bmp = BMP_BY_NAME[name]
        raw = _encode_value(bmp, value)
        out.append(bmp.number)
        if bmp.kind in LL_PLACES:
            out += llvar_prefix(len(raw), LL_PLACES[bmp.kind])
        elif bmp.kind == TLV:
            raw = tlv_container(raw)
        out += raw
    return bytes(out)


def masked(fields: Mapping[str, Any]) -> dict[str, Any]:
    """`fields` with the card data masked (harness.core.masking): a clear card number shows BIN and last four.

    >>> masked({"pan": "4111111111111111", "amount": 5})
    {'pan': '411111******1111', 'amount': 5}
    """
    out = dict(fields)
    pan = out.get("pan")
    if isinstance(pan, str) and "*" not in pan:
        out["pan"] = mask_pan(pan)
    for track in CARD_DATA[1:]:
        if isinstance(out.get(track), str):
            out[track] = mask_pans(out[track])
    return out

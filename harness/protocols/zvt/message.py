"""Whole ZVT messages: a command's positional prefix and its BMPs, by name, both ways.

>>> raw = encode("authorization", amount=1999, currency=978)
>>> raw.hex(" ")
'06 01 0a 04 00 00 00 00 19 99 49 09 78'
>>> msg = decode(raw)
>>> msg.name, msg.fields
('authorization', {'amount': 1999, 'currency': 978})
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.protocols.zvt.apdu import Apdu, frame
from harness.protocols.zvt.bmp import (
    BMP_BY_NAME,
    bcd_decode,
    bcd_encode,
    build_bmps,
    llvar_length,
    llvar_prefix,
    parse_bmps,
)
from harness.protocols.zvt.codes import RESULT_CODES, RESULT_PLEASE_WAIT, RESULT_PROCESSING_ERROR, ZvtError
from harness.protocols.zvt.commands import BY_NAME, COMMANDS, CONTROL, NACK, NACK_CLASS

NO_CURRENCY = (0x03, 0x06)       # registration: a BMP (service byte 03, TLV 06) where the currency code could be


@dataclass
class Message:
    """A decoded APDU: its command name and its fields (positional prefix and BMPs by name)."""

    name: str
    fields: dict[str, Any] = field(default_factory=dict)
    apdu: Apdu | None = None


def decode_apdu(apdu: Apdu, *, lenient: bool = False) -> Message:
    """Decode an APDU's data by its command's layout. Raises ZvtError (code 9A) when the data is malformed.

    `lenient`: unknown BMPs end the decoding instead of failing it (see `parse_bmps`)."""
    name = apdu.name
    data = apdu.data
    fields: dict[str, Any] = {}
    if name == NACK.name:
        fields["result_code"] = apdu.ins
        return Message(name, fields, apdu)
    command = COMMANDS.get(apdu.control)
    i = 0
    for f in command.prefix if command is not None else ():
        if f.size == -1:
            fields[f.name] = data[i:].decode("latin-1")
            i = len(data)
            continue
        if i + f.size > len(data):
            if f.optional:
                break
            raise ZvtError(f"{name}: {f.name} ({f.size} bytes) missing")
        if f.optional and name == "registration" and f.name == "currency" and data[i] in NO_CURRENCY:
            break
        chunk = data[i : i + f.size]
        fields[f.name] = bcd_decode(chunk) if f.encoding == "bcd" else int.from_bytes(chunk, "big")
        i += f.size
    rest = data[i:]
    if name == "completion" and rest and rest[0] >= 0xF0:
        # 05 01 answer: <sw-version LLLVAR> <terminal-status-code> [06 TLV]
        n = llvar_length(rest[:3])
        fields["sw_version"] = rest[3 : 3 + n].decode("latin-1")
        if len(rest) < 4 + n:
            raise ZvtError("completion: terminal-status-code missing")
        fields["terminal_status"] = rest[3 + n]
        rest = rest[4 + n :]
    if command is not None and not command.bmps:
        if name == "abort" and rest:
            fields["extra"] = rest
        return Message(name, fields, apdu)
    if rest:
        parse_bmps(rest, fields, lenient=lenient)
    return Message(name, fields, apdu)


def decode(raw: bytes, *, lenient: bool = False) -> Message:
    """Decode the bytes of exactly one APDU (see `Apdu.from_bytes`, `decode_apdu`)."""
    return decode_apdu(Apdu.from_bytes(raw), lenient=lenient)


def encode(name: str, **fields: Any) -> bytes:
    """Encode a command by name: positional prefix fields first, then every other field as a BMP.

    >>> encode("ack").hex(" ")
    '80 00 00'
    >>> encode("abort", result_code=0x6C).hex(" ")
    '06 1e 01 6c'
    """
    if name == NACK.name:
        return frame(NACK_CLASS, int(fields.get("result_code", NACK.ins)))
    if name not in CONTROL:
        raise ZvtError(f"no ZVT command named {name!r}; known: {', '.join(BY_NAME)}")
    command = BY_NAME[name]
    data = bytearray()
    used = set()
    for f in command.prefix:
        if fields.get(f.name) is None:
            continue
        value = fields[f.name]
        used.add(f.name)
        if f.size == -1:
            data += str(value).encode("latin-1", "replace")
        elif f.encoding == "bcd":
            data += bcd_encode(int(value), f.size)
        else:
            data += int(value).to_bytes(f.size, "big")
    if name == "completion" and fields.get("sw_version") is not None:
        sw = str(fields["sw_version"]).encode("latin-1")
        data += llvar_prefix(len(sw), 3) + sw + bytes([int(fields.get("terminal_status", 0))])
        used |= {"sw_version", "terminal_status"}
    rest = [(k, v) for k, v in fields.items() if k not in used]
    unknown = [k for k, _ in rest if k not in BMP_BY_NAME]
    if unknown:
        raise ZvtError(f"{name}: no BMP named {', '.join(unknown)}; known: {', '.join(sorted(BMP_BY_NAME))}")
    if rest and not command.bmps:
        raise ZvtError(f"{name} carries no BMPs: {', '.join(k for k, _ in rest)}")
    data += build_bmps(rest)
    return frame(command.cls, command.ins, bytes(data))


# -- the ECR's answers to the status information (04 0F): the issue of goods -------------------------------------
ANSWER_BOOK = encode("ack")                                                  # 80 00 00: booked, goods handed over
ANSWER_WAIT = encode("nack", result_code=RESULT_PLEASE_WAIT)                 # 84 9C 00: repeat it later
ANSWER_NO_GOODS = encode("nack", result_code=RESULT_PROCESSING_ERROR)        # 84 66 00: goods refused, reverse


def hexdump(raw: bytes) -> str:
    """APDU bytes for transcripts, colon-separated ('06:01:0a'), so BCD amounts and traces in a dump do not
    look like card numbers to the PAN masker (card numbers on the wire are masked with E nibbles already).
    """
    return bytes(raw).hex(":")


def describe(message: Message) -> str:
    """One line for logs: 'status_information result_code=0x00 (no error) amount=1999 pan=411111******1111'.
    A password is never written out ('password=******').

    >>> describe(decode(encode("registration", password=123456, config_byte=0x08)))
    'registration password=****** config_byte=8'
    """
    parts = [message.name]
    for k, v in message.fields.items():
        if k == "password":
            parts.append("password=******")
        elif k == "result_code" and isinstance(v, int):
            parts.append(f"result_code=0x{v:02X} ({RESULT_CODES.get(v, 'unknown')})")
        elif isinstance(v, bytes):
            parts.append(f"{k}={v.hex()}")
        else:
            parts.append(f"{k}={v}")
    return " ".join(parts)

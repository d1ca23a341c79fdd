"""ISO 8583 as spoken between the payment terminal and the acquirer host: specs, framing, message names.

Encoding and decoding are pyiso8583's; this module adds what pyiso8583 leaves out: the length framing on TCP,
and the message type names of the payment flows.

>>> frame = encode_frame({"t": "0800", "11": "000001", "70": "301"})
>>> reader = FrameReader()
>>> [msg] = reader.feed(frame)
>>> decode(msg)["t"]
'0800'
"""

from __future__ import annotations

import copy
import struct
from dataclasses import dataclass
from typing import Any

import iso8583
from iso8583.specs import default as _binary_spec
from iso8583.specs import default_ascii as _ascii_spec

SPECS: dict[str, dict] = {"ascii": copy.deepcopy(_ascii_spec), "binary": copy.deepcopy(_binary_spec)}
DEFAULT_SPEC = "ascii"
MAX_MESSAGE = 8192           # larger length prefixes are treated as garbage, not waited for

# Message type indicators of the flows the harness emulates and faults.
MTI_NAMES = {
    "0100": "authorization request", "0101": "authorization request repeat", "0110": "authorization response",
    "0200": "financial request", "0201": "financial request repeat", "0210": "financial response",
    "0220": "financial advice", "0221": "financial advice repeat", "0230": "financial advice response",
    "0400": "reversal request", "0401": "reversal request repeat", "0410": "reversal response",
    "0420": "reversal advice", "0421": "reversal advice repeat", "0430": "reversal advice response",
    "0500": "reconciliation request", "0501": "reconciliation request repeat",
    "0510": "reconciliation response",
    "0800": "network management request", "0801": "network management request repeat",
    "0810": "network management response",
}
RESPONSE_MTI = {"0100": "0110", "0200": "0210", "0220": "0230", "0400": "0410", "0420": "0430",
                "0500": "0510", "0800": "0810",     # repeats (last digit 1) are answered like the original
                "0101": "0110", "0201": "0210", "0221": "0230", "0401": "0410", "0421": "0430",
                "0501": "0510", "0801": "0810"}

# Field numbers by name (pyiso8583 keys fields by their number as a string).
PAN, PROCESSING_CODE, AMOUNT, TRANSMISSION_TIME, STAN = "2", "3", "4", "7", "11"
LOCAL_TIME, LOCAL_DATE, RRN, AUTH_CODE, RESPONSE_CODE = "12", "13", "37", "38", "39"
TERMINAL_ID, MERCHANT_ID, CURRENCY, ORIGINAL_DATA = "41", "42", "49", "90"
NETWORK_CODE = "70"
# Reconciliation totals (0500/0510): counts n10, amounts n16, net settlement x+n16 ('C'/'D' + 16 digits).
CREDITS_COUNT, CREDITS_REVERSAL_COUNT, DEBITS_COUNT, DEBITS_REVERSAL_COUNT = "74", "75", "76", "77"
CREDITS_AMOUNT, CREDITS_REVERSAL_AMOUNT, DEBITS_AMOUNT, DEBITS_REVERSAL_AMOUNT = "86", "87", "88", "89"
NET_SETTLEMENT = "97"


def original_data(mti: str, stan: str, transmission: str = "0000000000") -> str:
    """Field 90 (n42) naming the message a reversal undoes: original MTI, STAN, transmission time, ids."""
    return f"{mti:0>4}{stan:0>6}{transmission:0>10}".ljust(42, "0")


def parse_original_data(value: str) -> tuple[str, str]:
    """(original MTI, original STAN) from field 90."""
    return value[:4], value[4:10]


class FramingError(ValueError):
    """The byte stream cannot be split into messages (e.g. an impossible length prefix).

    `frames` holds the whole messages that came before the bad bytes in the same chunk: they are not lost.
    """

    def __init__(self, message: str, frames: list[bytes] | None = None):
        super().__init__(message)
        self.frames = frames or []


class MessageError(ValueError):
    """A frame does not decode as ISO 8583 with the spec in use; `raw` keeps the bytes for evidence."""

    def __init__(self, message: str, raw: bytes):
        super().__init__(message)
        self.raw = raw


@dataclass(frozen=True)
class Framing:
    """How messages are delimited on TCP: 2-byte big-endian length (default), 4 ASCII digits, or none."""

    name: str = "2byte"

    def __post_init__(self) -> None:
        if self.name not in ("2byte", "4ascii", "none"):
            raise ValueError(f"unknown framing {self.name!r}; expected 2byte, 4ascii or none")

    def wrap(self, payload: bytes) -> bytes:
        if self.name == "2byte":
            if len(payload) > 0xFFFF:
                raise FramingError(f"message of {len(payload)} bytes does not fit a 2-byte length")
            return struct.pack(">H", len(payload)) + payload
        if self.name == "4ascii":
            if len(payload) > 9999:
                raise FramingError(f"message of {len(payload)} bytes does not fit a 4-digit length")
            return b"%04d" % len(payload) + payload
        return payload


def frame_length(head: bytes, framing: Framing | str = "2byte") -> int | None:
    """Total length (prefix and message) of the frame whose first bytes are `head`; None while too few are known.
    Raises FramingError for a prefix no message can have.

    >>> frame_length(b"\\x00\\x2a0200"), frame_length(b"0042", "4ascii"), frame_length(b"\\x00")
    (44, 46, None)
    """
    name = framing.name if isinstance(framing, Framing) else framing
    size = 2 if name == "2byte" else 4
    if name == "none":
        raise FramingError("framing 'none' has no length prefix: a message is whatever one segment carries")
    if len(head) < size:
        return None
    if size == 2:
        (n,) = struct.unpack_from(">H", head)
    elif head[:4].isdigit():
        n = int(head[:4])
    else:
        raise FramingError(f"4-digit ASCII length expected, got {bytes(head[:4])!r}")
    if n == 0:
        raise FramingError("length prefix 0: no message is empty")
    return size + n


class FrameReader:
    """Incremental splitter: feed any chunks, get whole messages. Half messages wait for the rest.

    With framing 'none' every chunk is taken as one message (the peer writes one message per segment).
    """

    def __init__(self, framing: Framing | str = "2byte", max_message: int = MAX_MESSAGE):
        self.framing = framing if isinstance(framing, Framing) else Framing(framing)
        self.max_message = max_message
        self._buf = bytearray()

    @property
    def pending(self) -> bytes:
        """Bytes of an incomplete message still waiting for the rest."""
        return bytes(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        if self.framing.name == "none":
            return [bytes(data)] if data else []
        self._buf += data
        out = []
        head = 2 if self.framing.name == "2byte" else 4
        while len(self._buf) >= head:
            if head == 2:
                (n,) = struct.unpack(">H", self._buf[:2])
            else:
                digits = bytes(self._buf[:4])
                if not digits.isdigit():
                    bad = bytes(self._buf)
                    self._buf.clear()
                    raise FramingError(
                        f"4-digit ASCII length expected, got {digits!r}; {len(bad)} bytes dropped", out)
                n = int(digits)
            if n == 0 or n > self.max_message:
                bad = bytes(self._buf)
                self._buf.clear()
                raise FramingError(
                    f"length prefix {n} outside 1..{self.max_message}; {len(bad)} bytes dropped", out)
            if len(self._buf) < head + n:
                break
            out.append(bytes(self._buf[head : head + n]))
            del self._buf[: head + n]
        return out


def encode(fields: dict[str, Any], spec: str = DEFAULT_SPEC) -> bytes:
    """Encode a message (pyiso8583 field dict, 't' = MTI) without framing."""
    raw, _ = iso8583.encode(dict(fields), SPECS[spec])
    return bytes(raw)


def encode_frame(fields: dict[str, Any], spec: str = DEFAULT_SPEC, framing: Framing | str = "2byte") -> bytes:
    framing = framing if isinstance(framing, Framing) else Framing(framing)
    return framing.wrap(encode(fields, spec))


def decode(raw: bytes, spec: str = DEFAULT_SPEC) -> dict[str, Any]:
    """Decode one message; raise MessageError (keeping the raw bytes) when it is malformed (whatever pyiso8583
    raised: a bitmap announcing a field past 128 makes it raise KeyError, not DecodeError)."""
    try:
        fields, _ = iso8583.decode(bytearray(raw), SPECS[spec])
    except iso8583.DecodeError as exc:
        raise MessageError(f"malformed ISO 8583 message: {exc}", raw) from None
    except Exception as exc:  # noqa: BLE001 - no input may escape as anything but a malformed message
        raise MessageError(f"malformed ISO 8583 message: {type(exc).__name__} {exc}", raw) from None
    fields.pop("p", None)
    fields.pop("s", None)
    return fields


TRACKS = ("35", "36", "45")                 # track 2, track 3, track 1 data


def mask_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Decoded fields safe for ledgers and transcripts: the card number masked, track data blanked."""
    from harness.core.masking import mask_pan

    out = dict(fields)
    if PAN in out:
        out[PAN] = mask_pan(str(out[PAN]))
    for track in TRACKS:
        if track in out:
            out[track] = "*" * len(str(out[track]))
    return out


def describe(fields: dict[str, Any]) -> str:
    """One-line human summary, card number masked: '0200 financial request STAN 000123 amount 000000001000'."""
    from harness.core.masking import mask_pan

    mti = fields.get("t", "????")
    parts = [mti, MTI_NAMES.get(mti, "unknown")]
    for key, label in ((STAN, "STAN"), (AMOUNT, "amount"), (RESPONSE_CODE, "rc"), (PAN, "PAN")):
        if key in fields:
            value = mask_pan(fields[key]) if key == PAN else fields[key]
            parts.append(f"{label} {value}")
    return " ".join(parts)

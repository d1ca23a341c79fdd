"""The payment protocols the link recognises, declared once as scapy layers, with the cheap framing the
engine uses.

Each protocol is a scapy `Packet` (for dissecting captures and building test traffic) plus two class
attributes the engine's hot path reads instead of running full scapy dissection (~115 us a packet):

* `head_size`: bytes needed to know a message's length and stage,
* `frame(head)`: `(total_length, stage)` from a message's first bytes, or None while more bytes are needed.

Stages read the same in fault specs and evidence: ISO 8583 by MTI ("0200", "0210"), ZVT by APDU class and
instruction ("zvt:06 01", "zvt:04 0F"), a TCP SYN as "connect".

>>> from scapy.layers.inet import IP, TCP
>>> bind_ports({"iso8583": 5000})
>>> pkt = IP(bytes(IP() / TCP(sport=5000) / ISO8583(mti=b"0210", data=b"...")))
>>> [m.stage for m in messages(pkt)]
['0210']
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from scapy.fields import (
    ByteField,
    ConditionalField,
    FieldLenField,
    LEShortField,
    StrFixedLenField,
    StrLenField,
    XByteField,
)
from scapy.layers.inet import TCP
from scapy.packet import Packet, Raw, bind_bottom_up, bind_layers

CONNECT = "connect"          # the stage of a TCP SYN opening a connection on a watched port


class FramingError(ValueError):
    """The first bytes of a message cannot be a message of this protocol (garbage on the wire)."""


NEED_MORE = ...              # secret_span(): the head seen so far is too short to tell


class StreamMessage(Packet):
    """Common behaviour: messages are delimited by their own length; what follows is the next message."""

    head_size = 0
    secret_head = 0          # bytes `secret_span` needs at most (0: this protocol carries no card number)
    max_length = 0xFFFF + 5

    @classmethod
    def secret_span(cls, head: bytes) -> tuple[int, int] | None:
        """Byte range of a message to mask in captures (card number minus first 6 and last 4), None if none,
        NEED_MORE while `head` is too short to tell."""
        return None

    @classmethod
    def frame(cls, head: bytes) -> tuple[int, str] | None:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def stage(self) -> str:
        return self.frame(bytes(self)[: self.head_size])[1]

    def guess_payload_class(self, payload: bytes) -> type[Packet]:
        try:
            whole = self.frame(payload[: self.head_size])
        except FramingError:
            return Raw
        if whole is not None and len(payload) >= whole[0]:
            return type(self)
        return Raw

    @classmethod
    def tcp_reassemble(cls, data: bytes, metadata: dict, session: object) -> Packet | None:
        """For scapy's TCPSession: a message is complete once its declared length has arrived."""
        try:
            whole = cls.frame(data[: cls.head_size])
        except FramingError:
            return Raw(data)
        if whole is None or len(data) < whole[0]:
            return None
        return cls(data)


class ISO8583(StreamMessage):
    """An ISO 8583 message on TCP: 2-byte big-endian length (of MTI and body), 4-character MTI, body.

    The STAN and other fields are read from the body with `harness.protocols.iso8583.decode` (see `stan`).
    """

    name = "ISO 8583"
    fields_desc = [
        FieldLenField("length", None, length_of="data", fmt="!H", adjust=lambda pkt, n: n + 4),
        StrFixedLenField("mti", b"0200", 4),
        StrLenField("data", b"", length_from=lambda pkt: max(0, pkt.length - 4)),
    ]
    head_size = 6
    secret_head = 2 + 4 + 32 + 2

    @classmethod
    def secret_span(cls, head: bytes) -> tuple[int, int] | None:
        """Field 2 (PAN, 2-digit length then ASCII digits) follows the bitmap: 16 hex characters (ascii spec)
        or 8 bytes (binary spec), twice that when bit 1 announces a secondary bitmap."""
        if len(head) < 7:
            return NEED_MORE
        ascii_map = chr(head[6]) in "0123456789ABCDEFabcdef"
        unit = 16 if ascii_map else 8
        if len(head) < 6 + unit:
            return NEED_MORE
        first = int(chr(head[6]), 16) if ascii_map else head[6] >> 4
        if not first & 0x4:
            return None                                   # no field 2
        at = 6 + unit * (2 if first & 0x8 else 1)
        if len(head) < at + 2:
            return NEED_MORE
        digits = head[at:at + 2]
        if not digits.isdigit():
            return None
        n = int(digits)
        return (at + 2 + 6, at + 2 + n - 4) if n > 10 else (at + 2, at + 2 + n)

    @classmethod
    def frame(cls, head: bytes) -> tuple[int, str] | None:
        if len(head) < 2:
            return None
        (n,) = struct.unpack_from("!H", head)
        if n < 4:
            raise FramingError(f"ISO 8583 length prefix {n} is shorter than an MTI")
        if len(head) < 6:
            return None
        mti = head[2:6]
        if not mti.isdigit():
            raise FramingError(f"ISO 8583 MTI expected after the length prefix, got {mti!r}")
        return n + 2, mti.decode()

    def stan(self, spec: str = "ascii") -> str | None:
        """The System Trace Audit Number (field 11), or None when the body does not decode."""
        from harness.protocols import iso8583

        try:
            return iso8583.decode(self.mti + self.data, spec).get(iso8583.STAN)
        except (iso8583.MessageError, ValueError):
            return None

    def mysummary(self) -> str:
        return f"ISO8583 {self.mti.decode(errors='replace')} len={self.length}"


class ZVT(StreamMessage):
    """A ZVT APDU: class byte, instruction byte, length (one byte, or FF then 2 bytes little-endian), data."""

    name = "ZVT APDU"
    fields_desc = [
        XByteField("apdu_class", 0x06),
        XByteField("instr", 0x01),
        ByteField("length", None),
        ConditionalField(LEShortField("ext_length", None), lambda pkt: pkt.length == 0xFF),
        StrLenField("data", b"",
                    length_from=lambda pkt: pkt.ext_length if pkt.length == 0xFF else pkt.length),
    ]
    head_size = 5

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        if self.length is None:
            n = len(self.data or b"")
            pkt = pkt[:2] + (bytes([n]) if n < 0xFF else b"\xff" + struct.pack("<H", n)) + pkt[3:]
        return pkt + pay

    @classmethod
    def frame(cls, head: bytes) -> tuple[int, str] | None:
        if len(head) < 3:
            return None
        stage = f"zvt:{head[0]:02X} {head[1]:02X}"
        if head[2] != 0xFF:
            return 3 + head[2], stage
        if len(head) < 5:
            return None
        return 5 + struct.unpack_from("<H", head, 3)[0], stage

    def mysummary(self) -> str:
        return f"ZVT {self.apdu_class:02X} {self.instr:02X}"


PROTOCOLS: dict[str, type[StreamMessage]] = {"iso8583": ISO8583, "zvt": ZVT}


def protocol(name: str) -> type[StreamMessage]:
    """The layer for a protocol name as written in a rig's `links.<name>.ports`."""
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ValueError(f"unknown link protocol {name!r} in ports; known: {', '.join(PROTOCOLS)}") from None


def bind_ports(ports: dict[str, int]) -> None:
    """Bind the protocol layers to TCP ports, e.g. {"iso8583": 5000, "zvt": 20007}, both directions."""
    for name, port in ports.items():
        layer = protocol(name)
        bind_bottom_up(TCP, layer, dport=port)
        bind_bottom_up(TCP, layer, sport=port)
        bind_layers(TCP, layer, dport=port)


def messages(pkt: Packet) -> Iterator[StreamMessage]:
    """Every whole protocol message in a dissected packet (several when a segment carries several)."""
    layer = pkt
    while layer and not isinstance(layer, StreamMessage):
        layer = layer.payload
    while isinstance(layer, StreamMessage):
        yield layer
        layer = layer.payload


def is_stage(name: str) -> bool:
    """True for a stage name the link understands: an MTI, "zvt:CC II" or "connect"."""
    if name == CONNECT:
        return True
    if len(name) == 4 and name.isdigit():
        return True
    if name.startswith("zvt:"):
        parts = name[4:].split()
        return len(parts) == 2 and all(len(p) == 2 and all(c in "0123456789ABCDEF" for c in p) for p in parts)
    return False

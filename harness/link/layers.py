"""The payment protocols the link recognises, declared once as scapy layers (for dissecting captures and
building test traffic), with the cheap framing the engine uses.

The framing is the protocols' own (`harness.protocols.iso8583.frame_length`, `harness.protocols.zvt.apdu_length`)
and stage names are `harness.protocols.stages`'; each layer adds two class attributes the engine's hot path
reads instead of running full scapy dissection (~115 us a packet):

* `head_size`: bytes needed to know a message's length and stage,
* `frame(head)`: `(total_length, stage name)` from a message's first bytes, or None while more are needed.

>>> from scapy.layers.inet import IP, TCP
>>> bind_ports({"iso8583": 5000})
>>> pkt = IP(bytes(IP() / TCP(sport=5000) / ISO8583(mti=b"0210", data=b"...")))
>>> [m.stage for m in messages(pkt)]
['0210']
"""

from __future__ import annotations

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

from harness.protocols import iso8583, zvt
from harness.protocols.iso8583 import FramingError  # the first bytes cannot start a message: garbage on the wire
from harness.protocols.stages import StageError, iso8583_stage, zvt_stage

NEED_MORE = ...              # pan_span(): the head seen so far is too short to tell


class StreamMessage(Packet):
    """Common behaviour: messages are delimited by their own length; what follows is the next message."""

    head_size = 0
    pan_head = 0             # bytes `pan_span` needs at most (0: this protocol carries no card number in clear)

    @classmethod
    def pan_span(cls, head: bytes) -> tuple[int, int] | None:
        """Byte range of the card number in a message (for masking the capture), None if it has none,
        NEED_MORE while `head` is too short to tell."""
        return None

    @classmethod
    def frame(cls, head: bytes) -> tuple[int, str] | None:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def stage(self) -> str | None:
        """The message's stage name; None for a segment too short to carry one or that no message starts with."""
        head = self._own_bytes()[: self.head_size]
        try:
            whole = self.frame(head)
        except FramingError:
            return None
        return None if whole is None else whole[1]

    def _own_bytes(self) -> bytes:
        """This message's bytes as dissected (a short segment leaves later fields at their defaults, which
        `bytes(self)` would fill in), or as built."""
        cached = self.raw_packet_cache
        return bytes(cached) if cached is not None else bytes(self)

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
    pan_head = 2 + 4 + 32 + 2

    @classmethod
    def pan_span(cls, head: bytes) -> tuple[int, int] | None:
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
        return at + 2, at + 2 + int(digits)

    @classmethod
    def frame(cls, head: bytes) -> tuple[int, str] | None:
        total = iso8583.frame_length(head)
        if total is None:
            return None
        if total < 6:
            raise FramingError(f"ISO 8583 length prefix {total - 2} is shorter than an MTI")
        if len(head) < 6:
            return None
        try:
            return total, iso8583_stage(head[2:6]).name
        except StageError:
            raise FramingError(f"ISO 8583 MTI expected after the length prefix, got {bytes(head[2:6])!r}") from None

    def stan(self, spec: str = "ascii") -> str | None:
        """The System Trace Audit Number (field 11), or None when the body does not decode."""
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
            pkt = zvt.frame(pkt[0], pkt[1], pkt[3:])          # the length as the protocol writes it
        return pkt + pay

    @classmethod
    def frame(cls, head: bytes) -> tuple[int, str] | None:
        total = zvt.apdu_length(head)
        return None if total is None else (total, zvt_stage(head[0], head[1]).name)

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


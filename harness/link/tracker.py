"""Per-connection TCP tracking on the link: sequence numbers and protocol messages per direction.

The engine sees every segment crossing the link (it never terminates TCP). For each connection and direction
the tracker keeps the next byte it expects, splits the byte stream into protocol messages (several in one
segment, one split across several: both fine), remembers recent messages by sequence range so retransmissions
of a message are recognised, and keeps `delivered` (the highest sequence number let through), i.e. the
receiver's rcv_nxt: exactly the sequence number a forged RST must carry to be accepted (RFC 5961).

Only IPv4 header + TCP header + the first bytes of each message are read: no scapy on the hot path. Card numbers
are located here (the protocol layer says where in a message) and hidden in the capture as
`harness.core.masking` decides.

On a TLS port (the link's `tls:` key) the stream is split into TLS records instead, and each connection's
`harness.protocols.tls.TlsSession` names the stages they make (handshake, request#N, response#N); records that
start no stage (handshake messages, the rest of a burst, tickets) are not messages here.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass, field

from harness.core.masking import hidden_range
from harness.link.layers import NEED_MORE, FramingError, StreamMessage
from harness.protocols import stages
from harness.protocols.tls import DEFAULT_TICKETS, Record, RecordReader, TlsSession

CONNECT = stages.CONNECT.name    # the stage of a TCP SYN opening a connection on a watched port
SYN, ACK, RST, FIN = 0x02, 0x10, 0x04, 0x01
MOD = 1 << 32
RECENT = 64                  # messages remembered per direction for recognising retransmissions


@dataclass(slots=True)
class Segment:
    """The parts of an IPv4 packet the engine decides on."""

    src: str
    dst: str
    proto: int
    sport: int = 0
    dport: int = 0
    seq: int = 0
    ack: int = 0
    flags: int = 0
    window: int = 0
    ihl: int = 20
    doff: int = 20
    payload_len: int = 0

    @property
    def tcp(self) -> bool:
        return self.proto == 6

    @property
    def seq_len(self) -> int:
        """Sequence space used: payload plus one for SYN and for FIN."""
        return self.payload_len + (1 if self.flags & SYN else 0) + (1 if self.flags & FIN else 0)

    def flag_text(self) -> str:
        return "".join(c for bit, c in ((SYN, "S"), (FIN, "F"), (RST, "R"), (0x08, "P"), (ACK, "A"))
                       if self.flags & bit) or "."


def _ip(raw: bytes, off: int) -> str:
    return f"{raw[off]}.{raw[off + 1]}.{raw[off + 2]}.{raw[off + 3]}"


def parse(raw: bytes) -> Segment | None:
    """Decode IPv4 and TCP headers (None for anything that is not IPv4)."""
    if len(raw) < 20 or raw[0] >> 4 != 4:
        return None
    ihl = (raw[0] & 0x0F) * 4
    total = struct.unpack_from("!H", raw, 2)[0]
    seg = Segment(src=_ip(raw, 12), dst=_ip(raw, 16), proto=raw[9], ihl=ihl)
    if seg.proto == 6 and len(raw) >= ihl + 20:
        (seg.sport, seg.dport, seg.seq, seg.ack, off_flags,
         seg.window) = struct.unpack_from("!HHIIHH", raw, ihl)
        seg.doff = (off_flags >> 12) * 4
        seg.flags = off_flags & 0x3F
        seg.payload_len = max(0, min(total, len(raw)) - ihl - seg.doff)
    return seg


@dataclass(slots=True)
class Message:
    """One protocol message seen on the link: where it sits in the stream and which stage it is."""

    stage: str
    direction: str
    start: int               # relative sequence number of its first byte
    end: int                 # relative sequence number after its last byte
    packet: int              # number (1-based, pcap order) of the packet where it was recognised
    ordinal: int = 0         # messages of this stage and direction the link saw so far, this one included
    record: Record | None = None     # on a TLS port: the record this message starts with

    def overlaps(self, start: int, end: int) -> bool:
        return start < self.end and self.start < end


@dataclass
class HalfStream:
    """One direction of one connection."""

    direction: str
    layer: type[StreamMessage] | None
    isn: int | None = None           # absolute sequence number of relative 0
    next: int = 0                    # relative seq of the next byte to parse
    delivered: int = 0               # relative seq after the last byte let through (receiver's rcv_nxt)
    pending: bytes = b""             # start of a message whose head is incomplete
    skip: int = 0                    # body bytes of the current message still to pass
    garbage: str | None = None       # why parsing stopped (bytes that are not this protocol)
    recent: deque[Message] = field(default_factory=lambda: deque(maxlen=RECENT))
    out_of_order: dict[int, bytes] = field(default_factory=dict)
    last_ack: int | None = None      # absolute ack number of this side's last segment
    masks: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=16))   # card digits to hide
    _probe: tuple[int, bytearray, int] | None = None     # (message start, head so far, message length)
    records: RecordReader | None = None                  # a TLS port: the stream is records, not messages

    def rel(self, seq: int) -> int:
        return (seq - self.isn) % MOD

    def absolute(self, rel: int) -> int:
        return (rel + self.isn) % MOD

    def feed(self, rel: int, data: bytes, packet: int) -> list[Message]:
        """Take a segment's payload at relative seq `rel`; return the messages recognised in it."""
        if (self.layer is None and self.records is None) or self.garbage:
            self.next = max(self.next, rel + len(data))
            return []
        end = rel + len(data)
        if rel > self.next:
            if len(self.out_of_order) < 64:
                self.out_of_order[rel] = data
            return []
        if end <= self.next:
            return []
        found = self._parse(data[self.next - rel:], packet)
        self.next = end
        while self.next in self.out_of_order:
            chunk = self.out_of_order.pop(self.next)
            found += self._parse(chunk, packet)
            self.next += len(chunk)
        for k in [k for k in self.out_of_order if k + len(self.out_of_order[k]) <= self.next]:
            del self.out_of_order[k]
        return found

    def _parse(self, data: bytes, packet: int) -> list[Message]:
        if self.records is not None:
            return self._records(data, packet)
        layer = self.layer
        found: list[Message] = []
        if self._probe is not None:
            self._find_pan(data)
        buf = self.pending + data if self.pending else data
        base = self.next - len(self.pending)
        i, n = 0, len(buf)
        self.pending = b""
        while i < n:
            if self.skip:
                k = min(self.skip, n - i)
                self.skip -= k
                i += k
                continue
            try:
                whole = layer.frame(buf[i:i + layer.head_size])
            except FramingError as exc:
                self.garbage = str(exc)
                break
            if whole is None:
                self.pending = bytes(buf[i:])
                break
            total, stage = whole
            msg = Message(stage=stage, direction=self.direction, start=base + i, end=base + i + total,
                          packet=packet)
            self.recent.append(msg)
            found.append(msg)
            self.skip = total
            if layer.pan_head:
                self._probe = (msg.start, bytearray(), total)
                self._find_pan(buf[i:i + min(total, layer.pan_head)])
        return found

    def _records(self, data: bytes, packet: int) -> list[Message]:
        """TLS records whose header is in `data` (the stream's next bytes), as messages of stage "tls"."""
        found = [Message(stage="tls", direction=self.direction, start=rec.start, end=rec.end, packet=packet,
                         record=rec) for rec in self.records.feed(data)]
        if self.records.broken:
            self.garbage = self.records.broken
        return found

    def _find_pan(self, data: bytes) -> None:
        """Find where a message's card number sits (from its first bytes) so the capture can mask it."""
        start, head, total = self._probe
        limit = min(total, self.layer.pan_head)
        head += data[:limit - len(head)]
        span = self.layer.pan_span(bytes(head))
        if span is NEED_MORE and len(head) < limit:
            return
        self._probe = None
        if span is not NEED_MORE and span is not None:
            a, b = hidden_range(span[1] - span[0])
            if b > a:
                self.masks.append((start + span[0] + a, start + span[0] + b))

    def mask(self, rel: int, payload: bytes) -> bytes | None:
        """`payload` (at relative seq `rel`) with the hidden card-number digits as "*", or None when it has none
        (a card number split across segments is masked in each)."""
        end = rel + len(payload)
        out = None
        for a, b in self.masks:
            if a < end and rel < b:
                out = bytearray(payload) if out is None else out
                lo, hi = max(a, rel) - rel, min(b, end) - rel
                out[lo:hi] = b"*" * (hi - lo)
        return bytes(out) if out is not None else None

    def messages_in(self, rel: int, end: int) -> list[Message]:
        """Known messages overlapping the relative range [rel, end) (for retransmissions)."""
        return [m for m in self.recent if m.overlaps(rel, end)]


@dataclass
class Connection:
    """A TCP connection crossing the link, oriented client -> server (the server owns the watched port)."""

    key: tuple[str, int, str, int]
    client: str
    server: str
    up: HalfStream                   # client -> server
    down: HalfStream                 # server -> client
    syn_seq: int | None = None
    reset_sent: set[str] = field(default_factory=set)
    tls: TlsSession | None = None    # a TLS port: its records into stages

    def half(self, seg: Segment) -> HalfStream:
        return self.up if (seg.src, seg.sport) == (self.key[0], self.key[1]) else self.down

    def other(self, half: HalfStream) -> HalfStream:
        return self.down if half is self.up else self.up


class Tracker:
    """All connections on one link; names directions "<end>-><end>" from addresses or, failing that, ports."""

    def __init__(self, ends: tuple[str, str], ports: dict[int, type[StreamMessage]],
                 addresses: dict[str, str] | None = None, server: str | None = None,
                 tls_ports: set[int] | None = None, tickets: tuple[int, int] = DEFAULT_TICKETS):
        self.ends = ends
        self.ports = ports
        self.tls_ports = tls_ports or set()     # ports carrying TLS: stages from record structure
        self.tickets = tuple(tickets)
        self.addresses = addresses or {}
        self.server = server or ends[1]
        self.client = ends[0] if self.server == ends[1] else ends[1]
        self.connections: dict[tuple[str, int, str, int], Connection] = {}
        self.counts: dict[tuple[str, str], int] = {}
        self.stages_seen: dict[str, dict[str, int]] = {}

    def end_of(self, ip: str, port: int, peer_port: int) -> str:
        """Which end of the link an address belongs to."""
        name = self.addresses.get(ip)
        if name:
            return name
        if port in self.ports:
            return self.server
        if peer_port in self.ports:
            return self.client
        return "?"

    def direction(self, seg: Segment) -> str:
        return f"{self.end_of(seg.src, seg.sport, seg.dport)}->{self.end_of(seg.dst, seg.dport, seg.sport)}"

    def connection(self, seg: Segment) -> Connection | None:
        """The connection a TCP segment belongs to (created on first sight); None for non-TCP."""
        if not seg.tcp:
            return None
        if seg.dport in self.ports or (seg.sport not in self.ports and seg.dport < seg.sport):
            key = (seg.src, seg.sport, seg.dst, seg.dport)
        else:
            key = (seg.dst, seg.dport, seg.src, seg.sport)
        conn = self.connections.get(key)
        fresh_syn = seg.flags & SYN and not seg.flags & ACK
        if conn is not None and fresh_syn and conn.syn_seq not in (None, seg.seq):
            conn = None          # a new connection reusing the 4-tuple
        if conn is None:
            layer = self.ports.get(key[3])
            client = self.end_of(key[0], key[1], key[3])
            server = self.end_of(key[2], key[3], key[1])
            conn = Connection(key=key, client=client, server=server,
                              up=HalfStream(f"{client}->{server}", layer),
                              down=HalfStream(f"{server}->{client}", layer))
            if key[3] in self.tls_ports:
                conn.tls = TlsSession(self.tickets)
                for half in (conn.up, conn.down):
                    half.layer, half.records = None, RecordReader()
            if len(self.connections) > 4096:
                self.connections.pop(next(iter(self.connections)))
            self.connections[key] = conn
        return conn

    def observe(self, seg: Segment, payload: bytes,
                packet: int) -> tuple[Connection | None, list[Message], bool]:
        """Account one segment: (connection, new messages recognised in it, retransmission?)."""
        conn = self.connection(seg)
        if conn is None:
            return None, [], False
        half = conn.half(seg)
        retransmission = False
        new: list[Message] = []
        if seg.flags & ACK:
            half.last_ack = seg.ack
        if seg.flags & SYN:
            if not seg.flags & ACK:
                retransmission = conn.syn_seq == seg.seq
                conn.syn_seq = seg.seq
                if not retransmission:
                    new.append(self._count(Message(CONNECT, half.direction, 0, 1, packet)))
            half.isn = (seg.seq + 1) % MOD
            return conn, new, retransmission
        if half.isn is None:
            half.isn = seg.seq
        if seg.payload_len:
            rel = half.rel(seg.seq)
            if rel >= 1 << 31:                  # before what we took as the start: an old retransmission
                return conn, [], True
            retransmission = rel < half.next
            off = seg.ihl + seg.doff
            for msg in half.feed(rel, payload[off:off + seg.payload_len], packet):
                if conn.tls is not None and not self._tls_stage(conn, half, seg, msg):
                    continue
                new.append(self._count(msg))
        return conn, new, retransmission

    def _tls_stage(self, conn: Connection, half: HalfStream, seg: Segment, msg: Message) -> bool:
        """Name the TLS stage a record starts (False: none); a server record is told how much of the client's
        stream the server had acknowledged when it was sent."""
        acked = None
        if half is conn.down and seg.flags & ACK and conn.up.isn is not None:
            acked = conn.up.rel(seg.ack)
        stage = conn.tls.classify(msg.record, half is conn.up, acked)
        if stage is None:
            return False
        msg.stage = stage
        return True

    def _count(self, msg: Message) -> Message:
        k = (msg.direction, msg.stage)
        self.counts[k] = self.counts.get(k, 0) + 1
        msg.ordinal = self.counts[k]
        seen = self.stages_seen.setdefault(msg.direction, {})
        seen[msg.stage] = seen.get(msg.stage, 0) + 1
        return msg

    def delivered(self, conn: Connection, half: HalfStream, seg: Segment) -> None:
        """Record that `seg` was let through: the receiver's rcv_nxt moves on."""
        if half.isn is None:
            return
        if seg.flags & SYN:
            return
        end = half.rel(seg.seq) + seg.seq_len
        if end < 1 << 31:
            half.delivered = max(half.delivered, end)

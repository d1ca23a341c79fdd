"""What each fault action does to the link's packets, and the timers that end its effects.

An armed fault waits for its stage (`on_messages`); when it fires (`fire`) its action leaves an effect behind:

* drop: a drop range (connection, direction, stream bytes) that every later segment of those bytes falls into,
* hold: a hold on that direction of that connection until a time; packets queue behind it until `release`,
* blackhole / flap: outage windows in which every packet is dropped,
* rst: resets forged with the sequence numbers the receivers expect, then liveness probes that prove them taken,
* duplicate: copies to send right after the original (`after`),
* corrupt: one byte of the message flipped (the new packet is returned with the decision).

`ongoing()` applies outages, drop ranges and holds to every packet; `run_timers()` releases holds, ends outages
and sends or expires probes. What happens is reported through `emit` as `harness.link.faults` events.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.link.engine.forge import build_tcp, refresh_tcp_checksum
from harness.link.faults import (
    EVERY,
    FaultArmed,
    FaultCleared,
    FaultEvent,
    FaultFired,
    FaultReleased,
    FaultSpec,
    OutageEnded,
    ResetVerified,
)
from harness.link.layers import ISO8583
from harness.link.tracker import ACK, CONNECT, RST, SYN, Connection, HalfStream, Message, Segment, Tracker
from harness.protocols import iso8583  # imported up front: a first import at fire time costs milliseconds
from harness.protocols.stages import ANY

PROBE_DELAY = 0.01           # s between a forged RST and the liveness probe that checks it
FOREVER = float("inf")
ACCEPT, DROP, HOLD = "accept", "drop", "hold"      # what happens to a packet: the engine's decision


@dataclass
class ArmedFault:
    id: int
    spec: FaultSpec
    armed_at: float
    seen: int = 0
    fired: int = 0
    done: bool = False
    packets: int = 0                 # packets this fault acted on (dropped, held, injected, modified)

    def wants(self, msg: Message) -> bool:
        s = self.spec
        if self.done or (s.stage not in (None, ANY.name) and msg.stage != s.stage):
            return False
        return s.direction is None or s.direction == msg.direction


@dataclass
class Hold:
    fault: ArmedFault
    until: float
    packets: list = field(default_factory=list)


@dataclass
class Probe:
    """A probe sent after a forged RST: the reset end answers RST if its socket is gone, ACK if it is not."""

    fault: ArmedFault
    conn: Connection
    end_ip: str
    end_port: int
    end_name: str
    rst_seq: int
    rcv_nxt: int
    deadline: float
    packet: bytes = b""
    src_ip: str = ""
    sent: bool = False


Inject = Callable[..., None]         # inject(packet, src, dst, comment, shown=None)


class Effects:
    """The armed faults of one link and the effects they left: outages, drop ranges, holds, probes, timers."""

    def __init__(self, tracker: Tracker, emit: Callable[[FaultEvent], None], inject: Inject):
        self.tracker = tracker
        self.emit = emit
        self.inject = inject
        self.faults: dict[int, ArmedFault] = {}
        self.windows: list[tuple[float, float, ArmedFault]] = []
        self.drops: list[tuple[tuple, str, int, int, ArmedFault]] = []
        self.holds: dict[tuple[tuple, str], Hold] = {}
        self.probes: list[Probe] = []
        self.timers: list[tuple[float, int, str, Any]] = []
        self.after: list[tuple[ArmedFault, int]] = []    # duplicates owed after the packet being decided
        self.after_accept: list[tuple] = []              # injections that must follow the accepted packet
        self._timer_seq = 0

    def at(self, when: float, what: str, arg: Any) -> None:
        self._timer_seq += 1
        heapq.heappush(self.timers, (when, self._timer_seq, what, arg))

    # -- arming ----------------------------------------------------------------------------------------------
    def arm(self, fid: int, spec: FaultSpec) -> None:
        now = time.monotonic()
        f = ArmedFault(fid, spec, now)
        self.faults[fid] = f
        self.emit(FaultArmed(fid, time.time(), spec))
        if spec.stage is None:
            self.fire(f, None, None, None, now, time.time())

    def clear(self, fid: int | None) -> None:
        ids = list(self.faults) if fid is None else [fid]
        for i in ids:
            f = self.faults.get(i)
            if f is None:
                continue
            f.done = True
            self.windows = [w for w in self.windows if w[2] is not f]
            self.drops = [d for d in self.drops if d[4] is not f]
            for key, hold in list(self.holds.items()):
                if hold.fault is f:
                    self.release(key, force=True)
            self.emit(FaultCleared(i, time.time()))

    def states(self) -> list[dict[str, Any]]:
        return [{"id": f.id, "seen": f.seen, "fired": f.fired, "packets": f.packets, "done": f.done}
                for f in self.faults.values()]

    # -- per packet ------------------------------------------------------------------------------------------
    def answer_probes(self, conn: Connection, seg: Segment, number: int, notes: list[str]) -> bool:
        """A pending liveness probe's answer proves whether the forged RST was taken. True: this packet is one
        (it is dropped)."""
        answered = False
        for probe in list(self.probes):
            if probe.conn is conn and (seg.src, seg.sport) == (probe.end_ip, probe.end_port):
                self.verified(probe, taken=bool(seg.flags & RST), seg=seg, packet=number)
                notes.append(f"answer to liveness probe of fault #{probe.fault.id}")
                answered = True
        return answered

    def on_messages(self, new: list[Message], seg: Segment, conn: Connection, raw: bytes, number: int,
                    now: float, wall: float, notes: list[str]) -> tuple[str, bytes | None] | None:
        """Faults armed for a stage fire on the message they target; the last one firing decides the packet
        (None: no fault fired with a decision)."""
        decided = None
        for msg in new:
            for f in list(self.faults.values()):
                if f.wants(msg):
                    if f.spec.stan is not None and self.stan_of(msg, conn, seg, raw) != f.spec.stan:
                        continue
                    f.seen += 1
                    if f.spec.occurrence == EVERY or f.seen == f.spec.occurrence:
                        result = self.fire(f, msg, seg, conn, now, wall, raw=raw, number=number)
                        notes.append(f"fault #{f.id} {f.spec.action} fired on {msg.stage} #{msg.ordinal} "
                                     f"{msg.direction}")
                        if result is not None:
                            decided = result if isinstance(result, tuple) else (result, None)
        return decided

    def ongoing(self, seg: Segment, conn: Connection | None, half: HalfStream | None, now: float,
                notes: list[str]) -> str:
        """What outages, drop ranges and holds make of a packet no fault fired on: accept, drop or hold."""
        for start, end, f in self.windows:
            if start <= now < end:
                f.packets += 1
                notes.append(f"blackholed by fault #{f.id} {f.spec.action}")
                return DROP
        if conn is not None and self.drops and seg.seq_len:
            rel = half.rel(seg.seq) if half.isn is not None else None
            for key, direction, start, end, f in self.drops:
                if key != conn.key or direction != half.direction:
                    continue
                if start == end == -1:
                    hit = bool(seg.flags & SYN) and not seg.flags & ACK
                else:
                    hit = rel is not None and rel < end and start < rel + max(seg.payload_len, 1) \
                        and not seg.flags & SYN
                if hit:
                    f.packets += 1
                    notes.append(f"dropped by fault #{f.id} (retransmission of the dropped message)")
                    return DROP
        if conn is not None:
            hold = self.holds.get((conn.key, half.direction))
            if hold is not None and now >= hold.until:
                self.release((conn.key, half.direction), force=True)     # keep the stream in order
            elif hold is not None:
                if not notes:
                    notes.append(f"held with the message of fault #{hold.fault.id} until its release")
                return HOLD
        return ACCEPT

    def hold_packet(self, pkt: Any, conn: Connection, half: HalfStream, seg: Segment, now: float) -> None:
        """Keep a retained packet with the hold of its direction, to go when the hold is released."""
        hold = self.holds[(conn.key, half.direction)]
        hold.packets.append((pkt, conn, half, seg, now))
        hold.fault.packets += 1

    # -- firing ----------------------------------------------------------------------------------------------
    def fire(self, f: ArmedFault, msg: Message | None, seg: Segment | None, conn: Connection | None,
             now: float, wall: float, raw: bytes = b"", number: int | None = None) -> Any:
        """Apply the fault's action; returns the packet's decision (or (decision, new packet)), None if the
        packet is left to the ongoing effects."""
        spec = f.spec
        f.fired += 1
        if spec.occurrence != EVERY:
            f.done = True
        detail: dict[str, Any] = {"firing": f.fired}
        stan = None
        if msg is not None:
            detail.update(stream_start=msg.start, stream_end=msg.end)
        if seg is not None:
            detail["segment"] = (f"{seg.src}:{seg.sport} > {seg.dst}:{seg.dport} [{seg.flag_text()}] "
                                 f"seq={seg.seq} ack={seg.ack} len={seg.payload_len}")
            stan = self.stan_of(msg, conn, seg, raw)
        resets: list[dict[str, Any]] = []
        result: Any = None
        action = spec.action
        if action == "drop":
            half = conn.half(seg)
            if msg.stage == CONNECT:
                self.drops.append((conn.key, half.direction, -1, -1, f))
            else:
                self.drops.append((conn.key, half.direction, msg.start, msg.end, f))
            f.packets += 1
            result = DROP
        elif action == "hold":
            half = conn.half(seg)
            until = now + spec.param("ms") / 1000.0
            key = (conn.key, half.direction)
            if key in self.holds:                  # already holding this direction: hold on until the later
                self.holds[key].until = max(self.holds[key].until, until)
            else:
                self.holds[key] = Hold(f, until)
            self.at(until, "release", key)
            detail["release_at"] = wall + spec.param("ms") / 1000.0
            result = HOLD
        elif action in ("blackhole", "flap"):
            if action == "blackhole":
                ms = spec.param("ms")
                spans = [(now, now + ms / 1000.0 if ms else FOREVER)]
            else:
                every, down = spec.param("every_ms") / 1000.0, spec.param("down_ms") / 1000.0
                spans = [(now + i * every, now + i * every + down) for i in range(spec.param("count"))]
            for start, end in spans:
                self.windows.append((start, end, f))
                if end != FOREVER:
                    self.at(end, "window_end", (f, start, end))
            detail["outages"] = [[round(wall + s - now, 6), None if e == FOREVER else round(wall + e - now, 6)]
                                 for s, e in spans]
            if seg is not None:
                f.packets += 1
                result = DROP
        elif action == "rst":
            result = self.cut(f, conn, seg, now, resets)
        elif action == "duplicate":
            self.after.append((f, spec.param("copies")))
            result = ACCEPT
        elif action == "corrupt" and seg.payload_len:
            result = (ACCEPT, self.corrupt(f, msg, conn, seg, raw, detail))
            f.packets += 1
        self.emit(FaultFired(f.id, wall, number if seg is not None else None,
                             stage=msg.stage if msg is not None else None,
                             direction=msg.direction if msg is not None else None,
                             ordinal=msg.ordinal if msg is not None else None,
                             stan=stan, resets=tuple(resets), detail=detail))
        return result

    def stan_of(self, msg: Message | None, conn: Connection, seg: Segment, raw: bytes) -> str | None:
        """The STAN of an ISO 8583 message when all of it is in this segment (evidence only)."""
        half = conn.half(seg)
        if msg is None or msg.stage == CONNECT or half.layer is not ISO8583:
            return None
        half_start = seg.ihl + seg.doff
        rel0 = half.rel(seg.seq)
        a = half_start + msg.start - rel0
        b = half_start + msg.end - rel0
        if a < half_start or b > len(raw):
            return None
        try:
            return iso8583.decode(raw[a + 2:b]).get(iso8583.STAN)      # + 2: after the length prefix
        except Exception:  # noqa: BLE001 - evidence only: a body we cannot decode has no STAN to show
            return None

    def corrupt(self, f: ArmedFault, msg: Message, conn: Connection, seg: Segment, raw: bytes,
                detail: dict[str, Any]) -> bytes:
        half = conn.half(seg)
        rel0 = half.rel(seg.seq)
        offset = f.spec.param("offset")
        size = msg.end - msg.start
        if offset is None:
            offset = size - 1
        target = msg.start + min(max(offset, 0), size - 1)
        base = seg.ihl + seg.doff
        index = base + target - rel0
        if not base <= index < base + seg.payload_len:
            index = base + seg.payload_len - 1      # the byte is in a later segment: flip the last one here
        data = bytearray(raw)
        data[index] ^= 0xFF
        detail["corrupted"] = {"message_offset": index - base + rel0 - msg.start, "was": raw[index],
                               "now": data[index]}
        out = bytes(data)
        if f.spec.param("checksum") == "fix":
            out = refresh_tcp_checksum(out, seg)
        return out

    def cut(self, f: ArmedFault, conn: Connection, seg: Segment, now: float, forged: list[dict[str, Any]]) -> str:
        """Forge resets with the sequence numbers the receivers expect (listed in `forged`), then probe to prove
        them taken."""
        spec = f.spec
        sender = conn.half(seg)
        receiver = conn.other(sender)
        deliver = spec.param("deliver")
        if deliver:
            self.tracker.delivered(conn, sender, seg)
        off = spec.param("seq_offset")
        s_ip, s_port, r_ip, r_port = seg.src, seg.sport, seg.dst, seg.dport
        s_name, r_name = sender.direction.split("->")
        to = spec.param("to")
        targets = {"both": ("receiver", "sender"), "sender": ("sender",), "receiver": ("receiver",)}.get(to)
        if targets is None:
            if to == r_name:
                targets = ("receiver",)
            elif to == s_name:
                targets = ("sender",)
            else:
                raise ValueError(f"rst to={to!r}: not an end of this connection ({s_name}, {r_name})")
        if seg.flags & SYN and not seg.flags & ACK:
            # Connection refused: the connecting end accepts a RST that acknowledges its SYN.
            pkt = build_tcp(r_ip, r_port, s_ip, s_port, 0, seg.seq + 1 + off, RST | ACK)
            self.inject(pkt, r_ip, s_ip, f"forged RST (refused) to {s_name} by fault #{f.id}")
            forged.append({"to": s_name, "seq": 0, "ack": (seg.seq + 1 + off) % (1 << 32)})
            f.packets += 1
            return DROP
        for which in targets:
            if which == "receiver":
                # The receiver expects the sender's next byte: what was delivered to it so far.
                to_half, from_half = sender, receiver
                dst_ip, dst_port, src_ip, src_port, name = r_ip, r_port, s_ip, s_port, r_name
            else:
                to_half, from_half = receiver, sender
                dst_ip, dst_port, src_ip, src_port, name = s_ip, s_port, r_ip, r_port, s_name
            if to_half.isn is None:
                # Nothing seen from the peer since the engine started: the sender told us what it expects.
                rcv_nxt = seg.ack
            else:
                rcv_nxt = to_half.absolute(to_half.delivered)
            seq = rcv_nxt + off
            ack = from_half.absolute(from_half.delivered) if from_half.isn is not None else seg.ack
            rst = build_tcp(src_ip, src_port, dst_ip, dst_port, seq, ack, RST | ACK)
            comment = f"forged RST to {name} by fault #{f.id} seq={seq % (1 << 32)}"
            if deliver:          # behind the delivered segment: a RST overtaking it would not be exact yet
                self.after_accept.append((rst, src_ip, dst_ip, comment))
            else:
                self.inject(rst, src_ip, dst_ip, comment)
            probe = build_tcp(src_ip, src_port, dst_ip, dst_port, rcv_nxt - 1, ack, ACK, window=502)
            p = Probe(f, conn, dst_ip, dst_port, name, seq % (1 << 32), rcv_nxt,
                      now + PROBE_DELAY + spec.param("verify_ms") / 1000.0, probe, src_ip)
            # Probe a little later: what the end sent before the RST reached it is still on its way here.
            self.at(now + PROBE_DELAY, "probe_send", p)
            self.at(p.deadline, "probe_timeout", p)
            conn.reset_sent.add(name)
            forged.append({"to": name, "seq": seq % (1 << 32), "ack": ack, "expected": rcv_nxt})
            f.packets += 2
        return ACCEPT if deliver else DROP

    def verified(self, probe: Probe, taken: bool | None, seg: Segment | None = None,
                 packet: int | None = None) -> None:
        self.probes.remove(probe)
        if taken:
            detail = (f"{probe.end_name} answered the liveness probe with a RST: its socket is gone, "
                      f"the forged RST (seq {probe.rst_seq}) was taken")
        elif taken is None:
            detail = f"{probe.end_name} did not answer the liveness probe within the verify window"
        else:
            detail = (f"{probe.end_name} answered the liveness probe with [{seg.flag_text()}] ack={seg.ack}: "
                      f"its socket is still open, the forged RST (seq {probe.rst_seq}) was NOT taken; "
                      f"it expected seq {probe.rcv_nxt}")
        self.emit(ResetVerified(probe.fault.id, time.time(), end=probe.end_name, taken=taken, detail=detail,
                                packet=packet))

    # -- timers ----------------------------------------------------------------------------------------------
    def release(self, key: tuple, force: bool = False) -> None:
        hold = self.holds.get(key)
        if hold is None or (not force and time.monotonic() < hold.until - 0.0001):
            return
        del self.holds[key]
        t = time.time()
        for pkt, conn, half, seg, _arrived in hold.packets:
            pkt.accept()
            self.tracker.delivered(conn, half, seg)
        if hold.packets:
            first = hold.packets[0][4]
            self.emit(FaultReleased(hold.fault.id, t, packets=len(hold.packets),
                                    held_ms=round((time.monotonic() - first) * 1000, 3)))

    def release_all(self) -> None:
        for key in list(self.holds):
            self.release(key, force=True)

    def run_timers(self) -> float | None:
        """Run the timers that are due; returns the seconds until the next one (None: no timer)."""
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now:
            _, _, what, arg = heapq.heappop(self.timers)
            if what == "release":
                self.release(arg)
            elif what == "window_end":
                f, start, end = arg
                self.windows = [w for w in self.windows if w != (start, end, f)]
                self.emit(OutageEnded(f.id, time.time()))
            elif what == "probe_send":
                arg.sent = True
                self.probes.append(arg)
                self.inject(arg.packet, arg.src_ip, arg.end_ip,
                            f"liveness probe to {arg.end_name} by fault #{arg.fault.id}")
            elif what == "probe_timeout" and arg in self.probes:
                self.verified(arg, taken=None)
            now = time.monotonic()
        return self.timers[0][0] - now if self.timers else None

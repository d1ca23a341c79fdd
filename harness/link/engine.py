"""The link engine: a process that receives the link's packets from NFQUEUE and decides on each one.

Runs where the traffic is (the link namespace, or the bench machine with its bridge); the kernel forwards,
iptables sends the link's packets to this engine's queue, and the engine gives every packet a verdict: accept,
drop, hold for N ms (retain, accept later) or accept plus inject (forged RSTs, duplicates). It never
terminates TCP.

    python -m harness.link.engine CONFIG.json      # control on stdin, events on stdout, both JSON lines

Control: {"op": "arm", "id": 1, "spec": {...FaultSpec...}}, {"op": "clear", "id": 1 | null},
{"op": "status"}, {"op": "stop"} (stdin closing = stop). Events: ready (with the queue number bound), armed,
fired, released, verified (forged RST taken or not), cleared, status, error, stopped.

Every packet goes into a pcapng capture; packets a fault touched carry a comment saying which fault did what.
If this process dies the queue goes away and iptables' `--queue-bypass` lets traffic through (fail-open).
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import json
import os
import select
import signal
import socket
import struct
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from harness.link.faults import EVERY, FaultSpec
from harness.link.layers import CONNECT, protocol
from harness.link.pcapng import PcapNgWriter
from harness.link.tracker import ACK, RST, SYN, Connection, HalfStream, Message, Segment, Tracker, parse
from harness.protocols import iso8583  # imported up front: a first import at fire time costs milliseconds

BATCH = 64                   # packets handled before timers and control get a turn
SPIN = 0.001                 # s before a timer is due when the loop stops sleeping and polls (precise holds)
PROBE_DELAY = 0.01           # s between a forged RST and the liveness probe that checks it
MAX_QUEUE = 8192             # packets the kernel queues for us (held packets count against it); beyond, the
                             # kernel lets packets through (fail-open) rather than dropping them
FOREVER = float("inf")


def set_fail_open(fd: int, queue: int) -> None:
    """Ask the kernel to accept packets, not drop them, when our queue is full (NFQA_CFG_F_FAIL_OPEN), on the
    queue's own netlink socket (only the binding socket may configure it). NetfilterQueue lacks it."""
    flag = 1                                                 # NFQA_CFG_F_FAIL_OPEN
    attrs = (struct.pack("=HH", 8, 4) + struct.pack("!I", flag)       # NFQA_CFG_MASK
             + struct.pack("=HH", 8, 5) + struct.pack("!I", flag))    # NFQA_CFG_FLAGS
    body = struct.pack("=BB", 0, 0) + struct.pack("!H", queue) + attrs   # nfgenmsg: AF_UNSPEC, v0, res_id
    header = struct.pack("=IHHII", 16 + len(body), (3 << 8) | 2, 1, 0, 0)  # NFNL_SUBSYS_QUEUE/CONFIG, REQUEST
    with socket.socket(fileno=os.dup(fd)) as sock:
        sock.sendto(header + body, (0, 0))


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def tcp_checksum(src: str, dst: str, tcp: bytes) -> int:
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    return checksum(pseudo + tcp)


def build_tcp(src: str, sport: int, dst: str, dport: int, seq: int, ack: int, flags: int,
              payload: bytes = b"", window: int = 0) -> bytes:
    """A complete IPv4+TCP packet with correct checksums (forged resets and probes)."""
    tcp = struct.pack("!HHIIHHHH", sport, dport, seq % (1 << 32), ack % (1 << 32), (5 << 12) | flags, window,
                      0, 0) + payload
    tcp = tcp[:16] + struct.pack("!H", tcp_checksum(src, dst, tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), os.getpid() & 0xFFFF, 0x4000, 64, 6, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return ip + tcp


def refresh_tcp_checksum(raw: bytes, seg: Segment) -> bytes:
    tcp = bytearray(raw[seg.ihl:])
    tcp[16:18] = b"\0\0"
    tcp[16:18] = struct.pack("!H", tcp_checksum(seg.src, seg.dst, bytes(tcp)))
    return raw[:seg.ihl] + bytes(tcp)


class Batch:
    """A socket stand-in for NetfilterQueue.run_socket that ends its loop after `n` packets (raising EAGAIN,
    which run_socket takes as "nothing more"), so a flood cannot starve hold releases and control messages."""

    def __init__(self, sock: socket.socket, n: int):
        self.sock, self.left = sock, n

    def recv(self, size: int) -> bytes:
        if self.left <= 0:
            raise BlockingIOError(errno.EAGAIN, "batch done")
        self.left -= 1
        return self.sock.recv(size)


class Injector:
    """Sends forged packets. Routed links use a raw IP socket; bridged links (no IP) send Ethernet frames out
    of the bridge port the destination was last seen on, with the MAC addresses learned from the traffic."""

    def __init__(self, bridged: bool):
        self.bridged = bridged
        self.seen: dict[str, tuple[bytes, int]] = {}      # ip -> (mac, bridge port ifindex)
        self._raw: socket.socket | None = None
        self._ports: dict[int, socket.socket] = {}
        if not bridged:
            self._raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)

    def learn(self, ip: str, pkt: Any) -> None:
        if self.bridged and ip not in self.seen:
            hw = pkt.get_hw()
            if hw and pkt.physindev:
                self.seen[ip] = (bytes(hw[:6]), pkt.physindev)

    def send(self, packet: bytes, src: str, dst: str) -> None:
        if self._raw is not None:
            self._raw.sendto(packet, (dst, 0))
            return
        if dst not in self.seen or src not in self.seen:
            raise RuntimeError(f"cannot inject {src} -> {dst} on the bridge: no frame from both seen yet")
        dst_mac, port = self.seen[dst]
        src_mac = self.seen[src][0]
        sock = self._ports.get(port)
        if sock is None:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            sock.bind((socket.if_indextoname(port), 0))
            self._ports[port] = sock
        sock.send(dst_mac + src_mac + b"\x08\x00" + packet)

    def close(self) -> None:
        for s in [self._raw, *self._ports.values()]:
            if s is not None:
                s.close()


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
        if self.done or (s.stage not in (None, "any") and msg.stage != s.stage):
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


class Engine:
    def __init__(self, config: dict[str, Any]):
        self.config = config
        self.link = config["link"]
        ports = {int(port): protocol(name) for name, port in config.get("ports", {}).items()}
        self.tracker = Tracker(tuple(config["ends"]), ports, config.get("addresses") or {},
                               config.get("server"))
        self.injector = Injector(bridged=config.get("bridged", False))
        self.pcap_fh = open(config["pcap"], "wb") if config.get("pcap") else None
        self.pcap = PcapNgWriter(self.pcap_fh, interface=self.link) if self.pcap_fh else None
        self.faults: dict[int, ArmedFault] = {}
        self.windows: list[tuple[float, float, ArmedFault]] = []
        self.drops: list[tuple[tuple, str, int, int, ArmedFault]] = []
        self.holds: dict[tuple[tuple, str], Hold] = {}
        self.probes: list[Probe] = []
        self.timers: list[tuple[float, int, str, Any]] = []
        self._timer_seq = 0
        self.count = 0
        self.stats = {"packets": 0, "accepted": 0, "dropped": 0, "held": 0, "injected": 0, "modified": 0}
        self.running = True
        self.queue_num: int | None = None
        self._after: list[tuple[ArmedFault, int]] = []
        self._deferred: list[tuple[bytes, float, str]] | None = None   # injected while deciding a packet

    # -- events ----------------------------------------------------------------------------------------
    def emit(self, ev: str, **fields: Any) -> None:
        line = json.dumps({"ev": ev, **fields}, default=str) + "\n"
        os.write(1, line.encode())

    def record(self, raw: bytes, t: float, comment: str | None = None) -> int:
        self.count += 1
        if self.pcap is not None:
            self.pcap.packet(raw, t, comment)
        return self.count

    def at(self, when: float, what: str, arg: Any) -> None:
        self._timer_seq += 1
        heapq.heappush(self.timers, (when, self._timer_seq, what, arg))

    # -- control ---------------------------------------------------------------------------------------
    def control(self, msg: dict[str, Any]) -> None:
        op = msg.get("op")
        if op == "arm":
            self.arm(int(msg["id"]), FaultSpec.from_json(msg["spec"]))
        elif op == "clear":
            self.clear(msg.get("id"))
        elif op == "status":
            if self.pcap_fh is not None:
                self.pcap_fh.flush()              # so the capture can be read while the link runs
            self.emit("status", stats=self.stats, seen=self.tracker.stages_seen, faults=self.fault_states(),
                      queue=self.queue_num)
        elif op == "stop":
            self.running = False
        else:
            self.emit("error", message=f"unknown control op {op!r}")

    def arm(self, fid: int, spec: FaultSpec) -> None:
        now = time.monotonic()
        f = ArmedFault(fid, spec, now)
        self.faults[fid] = f
        self.emit("armed", id=fid, t=time.time(), spec=spec.to_json())
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
            self.emit("cleared", id=i, t=time.time())

    def fault_states(self) -> list[dict[str, Any]]:
        return [{"id": f.id, "seen": f.seen, "fired": f.fired, "packets": f.packets, "done": f.done}
                for f in self.faults.values()]

    # -- packets ---------------------------------------------------------------------------------------
    def on_packet(self, pkt: Any) -> None:
        try:
            self.decide(pkt)
        except Exception:  # noqa: BLE001 - a bug here must not stall the link: let the packet through
            self.emit("error", message="engine error, packet accepted: " + traceback.format_exc(limit=4))
            with contextlib.suppress(Exception):
                pkt.accept()

    def decide(self, pkt: Any) -> None:
        self._deferred = []
        try:
            self._decide(pkt)
        finally:
            deferred, self._deferred = self._deferred, None
            for raw, t, comment in deferred:          # after the packet that caused them, in the capture
                self.record(raw, t, comment)

    def _decide(self, pkt: Any) -> None:
        now = time.monotonic()
        wall = time.time()
        raw = pkt.get_payload()
        self.stats["packets"] += 1
        seg = parse(raw)
        number = self.count + 1
        if seg is None:
            self.record(raw, wall)
            self.stats["accepted"] += 1
            pkt.accept()
            return
        self.injector.learn(seg.src, pkt)
        conn, new, _retransmission = self.tracker.observe(seg, raw, number)
        half = conn.half(seg) if conn is not None else None
        notes: list[str] = []
        verdict = "accept"
        payload = None

        # A pending liveness probe: the reset end's answer proves whether the forged RST was taken.
        if conn is not None and self.probes:
            for probe in list(self.probes):
                if probe.conn is conn and (seg.src, seg.sport) == (probe.end_ip, probe.end_port):
                    self.verified(probe, taken=bool(seg.flags & RST), seg=seg, packet=number)
                    notes.append(f"answer to liveness probe of fault #{probe.fault.id}")
                    verdict = "drop"

        # Faults armed for a stage fire on the message they target.
        for msg in new:
            for f in list(self.faults.values()):
                if f.wants(msg):
                    if f.spec.stan is not None and self.stan_of(msg, seg, raw) != f.spec.stan:
                        continue
                    f.seen += 1
                    if f.spec.occurrence == EVERY or f.seen == f.spec.occurrence:
                        result = self.fire(f, msg, seg, conn, now, wall, raw=raw, pkt=pkt)
                        notes.append(f"fault #{f.id} {f.spec.action} fired on {msg.stage} #{msg.ordinal} "
                                     f"{msg.direction}")
                        if result is not None:
                            verdict, payload = result if isinstance(result, tuple) else (result, None)

        # Ongoing effects.
        if verdict == "accept":
            for start, end, f in self.windows:
                if start <= now < end:
                    verdict = "drop"
                    f.packets += 1
                    notes.append(f"blackholed by fault #{f.id} {f.spec.action}")
                    break
        if verdict == "accept" and conn is not None and self.drops and seg.seq_len:
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
                    verdict = "drop"
                    f.packets += 1
                    notes.append(f"dropped by fault #{f.id} (retransmission of the dropped message)")
                    break
        if verdict == "accept" and conn is not None:
            hold = self.holds.get((conn.key, half.direction))
            if hold is not None and now >= hold.until:
                self.release((conn.key, half.direction), force=True)     # keep the stream in order
            elif hold is not None:
                verdict = "hold"
                if not notes:
                    notes.append(f"held with the message of fault #{hold.fault.id} until its release")

        if payload is not None:
            pkt.set_payload(payload)
            self.stats["modified"] += 1
        shown = self.masked(payload or raw, seg, half)
        self.record(shown, wall, "posrig: " + "; ".join(notes) if notes else None)
        if verdict == "accept":
            self.stats["accepted"] += 1
            pkt.accept()
            if conn is not None:
                self.tracker.delivered(conn, half, seg)
        elif verdict == "drop":
            self.stats["dropped"] += 1
            pkt.drop()
        elif verdict == "hold":
            self.stats["held"] += 1
            pkt.retain()
            hold = self.holds[(conn.key, half.direction)]
            hold.packets.append((pkt, conn, half, seg, now))
            hold.fault.packets += 1
        self.after_verdict(seg, raw, shown)

    def after_verdict(self, seg: Segment, raw: bytes, shown: bytes) -> None:
        """Injections that must follow the original on the wire (duplicates)."""
        pending, self._after = self._after, []
        for f, copies in pending:
            for _ in range(copies):
                self.inject(raw, seg.src, seg.dst, f"duplicate of packet {self.count} by fault #{f.id}",
                            shown=shown)
            f.packets += copies

    def masked(self, raw: bytes, seg: Segment, half: HalfStream | None) -> bytes:
        """The packet as the capture shows it: card numbers masked (first 6 and last 4 kept)."""
        if half is None or not half.masks or not seg.payload_len or half.isn is None:
            return raw
        off = seg.ihl + seg.doff
        hidden = half.mask(half.rel(seg.seq), raw[off:off + seg.payload_len])
        return raw if hidden is None else raw[:off] + hidden + raw[off + seg.payload_len:]

    # -- firing ----------------------------------------------------------------------------------------
    def fire(self, f: ArmedFault, msg: Message | None, seg: Segment | None, conn: Connection | None,
             now: float, wall: float, raw: bytes = b"", pkt: Any = None) -> Any:
        spec = f.spec
        f.fired += 1
        if spec.occurrence != EVERY:
            f.done = True
        packet = self.count + 1 if seg is not None else None
        info: dict[str, Any] = {"id": f.id, "t": wall, "packet": packet, "fired": f.fired}
        if msg is not None:
            info.update(stage=msg.stage, ordinal=msg.ordinal, direction=msg.direction, stream_start=msg.start,
                        stream_end=msg.end)
        if seg is not None:
            info["segment"] = (f"{seg.src}:{seg.sport} > {seg.dst}:{seg.dport} [{seg.flag_text()}] "
                               f"seq={seg.seq} ack={seg.ack} len={seg.payload_len}")
            stan = self.stan_of(msg, seg, raw)
            if stan:
                info["stan"] = stan
        result: Any = None
        action = spec.action
        if action == "drop":
            half = conn.half(seg)
            if msg.stage == CONNECT:
                self.drops.append((conn.key, half.direction, -1, -1, f))
            else:
                self.drops.append((conn.key, half.direction, msg.start, msg.end, f))
            f.packets += 1
            result = "drop"
        elif action == "hold":
            half = conn.half(seg)
            until = now + spec.param("ms") / 1000.0
            key = (conn.key, half.direction)
            if key in self.holds:                  # already holding this direction: hold on until the later
                self.holds[key].until = max(self.holds[key].until, until)
            else:
                self.holds[key] = Hold(f, until)
            self.at(until, "release", key)
            info["release_at"] = wall + spec.param("ms") / 1000.0
            result = "hold"
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
            info["outages"] = [[round(wall + s - now, 6), None if e == FOREVER else round(wall + e - now, 6)]
                               for s, e in spans]
            if seg is not None:
                f.packets += 1
                result = "drop"
        elif action == "rst":
            result = self.cut(f, conn, seg, now, info)
        elif action == "duplicate":
            self._after.append((f, spec.param("copies")))
            result = "accept"
        elif action == "corrupt" and seg.payload_len:
            result = ("accept", self.corrupt(f, msg, conn, seg, raw, info))
            f.packets += 1
        self.emit("fired", **info)
        return result

    def stan_of(self, msg: Message | None, seg: Segment, raw: bytes) -> str | None:
        """The STAN of an ISO 8583 message when all of it is in this segment (evidence only)."""
        if msg is None or msg.stage == CONNECT or msg.stage.startswith("zvt:"):
            return None
        half_start = seg.ihl + seg.doff
        conn = self.tracker.connection(seg)
        rel0 = conn.half(seg).rel(seg.seq)
        a = half_start + msg.start - rel0
        b = half_start + msg.end - rel0
        if a < half_start or b > len(raw):
            return None
        try:
            return iso8583.decode(raw[a + 2:b]).get(iso8583.STAN)
        except Exception:  # noqa: BLE001 - evidence only: a body we cannot decode has no STAN to show
            return None

    def corrupt(self, f: ArmedFault, msg: Message, conn: Connection, seg: Segment, raw: bytes,
                info: dict[str, Any]) -> bytes:
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
        info["corrupted"] = {"message_offset": index - base + rel0 - msg.start, "was": raw[index],
                             "now": data[index]}
        out = bytes(data)
        if f.spec.param("checksum") == "fix":
            out = refresh_tcp_checksum(out, seg)
        return out

    def cut(self, f: ArmedFault, conn: Connection, seg: Segment, now: float, info: dict[str, Any]) -> str:
        """Forge resets with the sequence numbers the receivers expect, then probe to prove them taken."""
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
        forged = []
        if seg.flags & SYN and not seg.flags & ACK:
            # Connection refused: the connecting end accepts a RST that acknowledges its SYN.
            pkt = build_tcp(r_ip, r_port, s_ip, s_port, 0, seg.seq + 1 + off, RST | ACK)
            self.inject(pkt, r_ip, s_ip, f"forged RST (refused) to {s_name} by fault #{f.id}")
            forged.append({"to": s_name, "seq": 0, "ack": (seg.seq + 1 + off) % (1 << 32)})
            info["resets"] = forged
            f.packets += 1
            return "drop"
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
            self.inject(rst, src_ip, dst_ip, f"forged RST to {name} by fault #{f.id} seq={seq % (1 << 32)}")
            probe = build_tcp(src_ip, src_port, dst_ip, dst_port, rcv_nxt - 1, ack, ACK, window=502)
            p = Probe(f, conn, dst_ip, dst_port, name, seq % (1 << 32), rcv_nxt,
                      now + PROBE_DELAY + spec.param("verify_ms") / 1000.0, probe, src_ip)
            # Probe a little later: what the end sent before the RST reached it is still on its way here.
            self.at(now + PROBE_DELAY, "probe_send", p)
            self.at(p.deadline, "probe_timeout", p)
            conn.reset_sent.add(name)
            forged.append({"to": name, "seq": seq % (1 << 32), "ack": ack, "expected": rcv_nxt})
            f.packets += 2
        info["resets"] = forged
        return "accept" if deliver else "drop"

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
        self.emit("verified", id=probe.fault.id, end=probe.end_name, taken=taken, detail=detail,
                  packet=packet, t=time.time())

    def inject(self, packet: bytes, src: str, dst: str, comment: str, shown: bytes | None = None) -> None:
        self.injector.send(packet, src, dst)
        self.stats["injected"] += 1
        entry = (shown or packet, time.time(), "posrig: injected: " + comment)
        if self._deferred is not None:
            self._deferred.append(entry)
        else:
            self.record(*entry)

    # -- timers ----------------------------------------------------------------------------------------
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
            self.emit("released", id=hold.fault.id, t=t, packets=len(hold.packets),
                      held_ms=round((time.monotonic() - first) * 1000, 3))

    def run_timers(self) -> float | None:
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now:
            _, _, what, arg = heapq.heappop(self.timers)
            if what == "release":
                self.release(arg)
            elif what == "window_end":
                f, start, end = arg
                self.windows = [w for w in self.windows if w != (start, end, f)]
                self.emit("window_end", id=f.id, t=time.time())
            elif what == "probe_send":
                arg.sent = True
                self.probes.append(arg)
                self.inject(arg.packet, arg.src_ip, arg.end_ip,
                            f"liveness probe to {arg.end_name} by fault #{arg.fault.id}")
            elif what == "probe_timeout" and arg in self.probes:
                self.verified(arg, taken=None)
            now = time.monotonic()
        return self.timers[0][0] - now if self.timers else None

    # -- main loop -------------------------------------------------------------------------------------
    def bind(self, nfq: Any) -> int:
        first, count = self.config.get("queue", [0, 64])
        errors = []
        for num in range(first, first + count):
            try:
                nfq.bind(num, self.on_packet, max_len=int(self.config.get("max_queue", MAX_QUEUE)))
                set_fail_open(nfq.get_fd(), num)
                return num
            except OSError as exc:
                errors.append(f"{num}: {exc}")
        raise OSError(f"no free NFQUEUE number in {first}..{first + count - 1}: {'; '.join(errors[-3:])}")

    def run(self) -> None:
        import warnings

        from netfilterqueue import NetfilterQueue

        warnings.simplefilter("ignore", RuntimeWarning)  # socket buffer smaller than asked: harmless here
        nfq = NetfilterQueue()
        self.queue_num = self.bind(nfq)
        nfsock = socket.socket(fileno=os.dup(nfq.get_fd()))
        nfsock.setblocking(False)
        self.emit("ready", queue=self.queue_num, pid=os.getpid())
        ctrl = sys.stdin.buffer.raw if hasattr(sys.stdin.buffer, "raw") else sys.stdin.buffer
        os.set_blocking(ctrl.fileno(), False)
        buf = b""
        try:
            while self.running:
                timeout = self.run_timers()
                if timeout is not None:
                    timeout = 0 if timeout <= SPIN else timeout - SPIN   # wake early, poll the last stretch
                readable, _, _ = select.select([nfsock, ctrl], [], [], timeout)
                if nfsock in readable:
                    nfq.run_socket(Batch(nfsock, BATCH))   # bounded: timers and control run between batches
                if ctrl in readable:
                    chunk = os.read(ctrl.fileno(), 65536)
                    if not chunk:
                        break
                    buf += chunk
                    while b"\n" in buf:
                        line, buf = buf.split(b"\n", 1)
                        if line.strip():
                            try:
                                self.control(json.loads(line))
                            except Exception as exc:  # noqa: BLE001 - reported to the driver, engine goes on
                                self.emit("error", message=f"bad control message {line[:200]!r}: {exc}")
        finally:
            for key in list(self.holds):
                self.release(key, force=True)
            if self.pcap_fh is not None:
                self.pcap_fh.flush()
            self.emit("stopped", stats=self.stats, seen=self.tracker.stages_seen, faults=self.fault_states())
            nfq.unbind()
            nfsock.close()
            self.injector.close()
            if self.pcap_fh is not None:
                self.pcap_fh.close()


def sharpen_timing(realtime: bool) -> str:
    """Make holds and releases punctual: 1 ns timer slack and, when allowed (root), SCHED_FIFO priority so the
    engine is woken on time on a busy machine. Returns what was applied."""
    import ctypes

    applied = []
    with contextlib.suppress(OSError, AttributeError):
        if ctypes.CDLL(None, use_errno=True).prctl(29, 1, 0, 0, 0) == 0:     # PR_SET_TIMERSLACK
            applied.append("timerslack=1ns")
    if realtime:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
            applied.append("SCHED_FIFO 10")
        except (OSError, AttributeError) as exc:
            applied.append(f"normal priority ({exc.__class__.__name__})")
    return ", ".join(applied)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m harness.link.engine CONFIG.json", file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as fh:
        config = json.load(fh)
    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)      # an operator's Ctrl-C is for the driver; it stops us
    timing = sharpen_timing(config.get("realtime", True))
    print(f"engine timing: {timing}", file=sys.stderr, flush=True)
    engine = Engine(config)
    try:
        engine.run()
    except OSError as exc:
        engine.emit("error", message=str(exc), fatal=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

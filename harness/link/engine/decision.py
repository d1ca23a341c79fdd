"""The engine's decision on each packet: track it, let armed faults fire on the messages it completes, apply
the effects in force, record it in the capture, then accept, drop or hold it (never terminating TCP).

Every packet goes into a pcapng capture, card numbers masked; packets a fault touched carry a comment saying
which fault did what; forged packets follow the packet that caused them.
"""

from __future__ import annotations

import contextlib
import time
import traceback
from typing import Any

from harness.core.process import announce
from harness.link.engine.effects import ACCEPT, DROP, HOLD, Effects
from harness.link.engine.forge import Injector
from harness.link.faults import FaultEvent
from harness.link.layers import protocol
from harness.link.pcapng import LINKTYPE_ETHERNET, LINKTYPE_IPV4, PcapNgWriter
from harness.link.tracker import HalfStream, Segment, Tracker, parse
from harness.protocols.tls import DEFAULT_TICKETS


class Engine:
    """One link's packets, decided one by one (`on_packet` is NetfilterQueue's callback)."""

    def __init__(self, config: dict[str, Any]):
        self.config = config
        self.link = config["link"]
        self.injector = Injector(bridged=config.get("bridged", False))
        self.pcap_fh: Any = None
        self.pcap: PcapNgWriter | None = None
        self._deferred: list[tuple[bytes, float, str]] | None = None   # injected while deciding a packet
        self._fresh(config.get("pcap"))

    def _fresh(self, pcap: str | None) -> None:
        """A clean slate: no connection tracked, no fault armed, no effect left, counters at zero, the capture
        (if any) a new file."""
        config = self.config
        ports = {int(port): protocol(name) for name, port in config.get("ports", {}).items()}
        tls = config.get("tls") or {}
        self.tracker = Tracker(tuple(config["ends"]), ports, config.get("addresses") or {},
                               config.get("server"), tls_ports={int(p) for p in tls.get("ports", ())},
                               tickets=tuple(tls.get("tickets", DEFAULT_TICKETS)))
        self.effects = Effects(self.tracker, self.emit_event, self.inject)
        if self.pcap_fh is not None:
            self.pcap_fh.close()
        self.pcap_fh = open(pcap, "wb") if pcap else None
        linktype = LINKTYPE_ETHERNET if self.injector.bridged else LINKTYPE_IPV4
        self.pcap = PcapNgWriter(self.pcap_fh, interface=self.link, linktype=linktype) if self.pcap_fh else None
        self.count = 0
        self.stats = {"packets": 0, "accepted": 0, "dropped": 0, "held": 0, "injected": 0, "modified": 0}

    # -- a warm engine between scenarios (see harness.link.warm) --------------------------------------------
    def park(self) -> dict[str, Any]:
        """End a scenario as `stop` would (held packets let go, capture flushed and closed), but keep running:
        returns the scenario's final figures; from now on packets pass untracked and uncaptured."""
        self.effects.release_all()
        final = {"stats": self.stats, "seen": self.tracker.stages_seen, "faults": self.effects.states()}
        self._fresh(None)
        return final

    def rearm(self, pcap: str | None) -> int:
        """Start a new scenario: anything still held is DROPPED (a packet of the previous scenario must never
        reach this one), every fault, outage, probe and timer goes, connections are forgotten, counters and
        packet numbers restart, the capture goes to `pcap`. Returns how many held packets were dropped."""
        dropped = 0
        for hold in self.effects.holds.values():
            for pkt, *_ in hold.packets:
                with contextlib.suppress(Exception):
                    pkt.drop()
                dropped += 1
        self.effects.holds.clear()
        self._fresh(pcap)
        return dropped

    # -- output ----------------------------------------------------------------------------------------------
    def emit(self, event: str, **fields: Any) -> None:
        """One event line to the supervising driver."""
        announce(event, **fields)

    def emit_event(self, ev: FaultEvent) -> None:
        announce(ev.event, **ev.to_json())

    def record(self, raw: bytes, t: float, comment: str | None = None) -> int:
        """Add a packet to the capture; returns its number (1-based)."""
        self.count += 1
        if self.pcap is not None:
            if self.pcap.linktype == LINKTYPE_ETHERNET:
                raw = self.ethernet_header(raw) + raw
            self.pcap.packet(raw, t, comment)
        return self.count

    def ethernet_header(self, raw: bytes) -> bytes:
        """A bridged packet's Ethernet header for the capture: the MAC addresses of its source and destination as
        learned on the bridge (NFQUEUE hands over the IP packet and its source MAC; a MAC not seen yet is
        00:00:00:00:00:00)."""
        seen = self.injector.seen
        src = ".".join(map(str, raw[12:16])) if len(raw) >= 20 else ""
        dst = ".".join(map(str, raw[16:20])) if len(raw) >= 20 else ""
        zero = b"\0" * 6
        return seen.get(dst, (zero,))[0] + seen.get(src, (zero,))[0] + b"\x08\x00"

    def flush(self) -> None:
        if self.pcap_fh is not None:
            self.pcap_fh.flush()

    def close(self) -> None:
        self.injector.close()
        if self.pcap_fh is not None:
            self.pcap_fh.close()

    def inject(self, packet: bytes, src: str, dst: str, comment: str, shown: bytes | None = None) -> None:
        """Send a forged packet and capture it (`shown`: as the capture shows it, card numbers masked)."""
        self.injector.send(packet, src, dst)
        self.stats["injected"] += 1
        entry = (shown or packet, time.time(), "posrig: injected: " + comment)
        if self._deferred is not None:
            self._deferred.append(entry)
        else:
            self.record(*entry)

    # -- packets ---------------------------------------------------------------------------------------------
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
        effects = self.effects
        notes: list[str] = []
        decision = ACCEPT
        payload = None

        if conn is not None and effects.probes and effects.answer_probes(conn, seg, number, notes):
            decision = DROP
        if new:
            fired = effects.on_messages(new, seg, conn, raw, number, now, wall, notes)
            if fired is not None:
                decision, payload = fired
        if decision == ACCEPT and (effects.windows or effects.drops or effects.holds):
            decision = effects.ongoing(seg, conn, half, now, notes)

        if payload is not None:
            pkt.set_payload(payload)
            self.stats["modified"] += 1
        shown = self.masked(payload or raw, seg, half)
        self.record(shown, wall, "posrig: " + "; ".join(notes) if notes else None)
        if decision == ACCEPT:
            self.stats["accepted"] += 1
            pkt.accept()
            if conn is not None:
                self.tracker.delivered(conn, half, seg)
        elif decision == DROP:
            self.stats["dropped"] += 1
            pkt.drop()
        elif decision == HOLD:
            self.stats["held"] += 1
            pkt.retain()
            effects.hold_packet(pkt, conn, half, seg, now)
        self.after_decision(seg, raw, shown)

    def after_decision(self, seg: Segment, raw: bytes, shown: bytes) -> None:
        """Injections that must follow the original on the wire (resets behind a delivered segment,
        duplicates)."""
        forged, self.effects.after_accept = self.effects.after_accept, []
        for packet, src, dst, comment in forged:
            self.inject(packet, src, dst, comment)
        pending, self.effects.after = self.effects.after, []
        for f, copies in pending:
            for _ in range(copies):
                self.inject(raw, seg.src, seg.dst, f"duplicate of packet {self.count} by fault #{f.id}",
                            shown=shown)
            f.packets += copies

    def masked(self, raw: bytes, seg: Segment, half: HalfStream | None) -> bytes:
        """The packet as the capture shows it: card numbers masked (see `HalfStream.mask`)."""
        if half is None or not half.masks or not seg.payload_len or half.isn is None:
            return raw
        off = seg.ihl + seg.doff
        hidden = half.mask(half.rel(seg.seq), raw[off:off + seg.payload_len])
        return raw if hidden is None else raw[:off] + hidden + raw[off + seg.payload_len:]

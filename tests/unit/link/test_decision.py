"""The engine's decision on each packet, in-process: packets as NetfilterQueue hands them over, events as the
engine prints them. (The same engine on a real queue, with real TCP peers, is tests/netns/link.)"""

from __future__ import annotations

import json
import time

import pytest
from scapy.utils import rdpcap

from harness.link.engine.decision import Engine
from harness.link.engine.forge import build_tcp
from harness.link.engine.loop import Loop
from harness.link.faults import FaultCleared, FaultFired, FaultReleased, FaultSpec, fault_event
from harness.link.tracker import ACK, SYN
from tests.support.link_peers import iso_message

TERMINAL, HOST = ("10.0.0.1", 40000), ("10.0.0.2", 5000)


class Queued:
    """A packet as NetfilterQueue hands it to the engine; remembers what the engine decided."""

    physindev = 0

    def __init__(self, raw: bytes):
        self.raw = raw
        self.fate: str | None = None
        self.payload: bytes | None = None

    def get_payload(self) -> bytes:
        return self.raw

    def set_payload(self, data: bytes) -> None:
        self.payload = data

    def get_hw(self) -> None:
        return None

    def accept(self) -> None:
        self.fate = "accept"

    def drop(self) -> None:
        self.fate = "drop"

    def retain(self) -> None:
        self.fate = "retain"


class Wire:
    """One ISO 8583 connection terminal -> host crossing an engine."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.seq = {TERMINAL: 1000, HOST: 5000}

    def send(self, src, dst, payload: bytes = b"", flags: int = ACK, seq: int | None = None) -> Queued:
        at = self.seq[src] if seq is None else seq
        pkt = Queued(build_tcp(*src, *dst, at, self.seq[dst], flags, payload))
        self.engine.on_packet(pkt)
        if seq is None:
            self.seq[src] += len(payload) + (1 if flags & SYN else 0)
        return pkt

    def open(self) -> None:
        self.send(TERMINAL, HOST, flags=SYN)
        self.send(HOST, TERMINAL, flags=SYN | ACK)
        self.send(TERMINAL, HOST)


@pytest.fixture
def engine(tmp_path):
    e = Engine({"link": "terminal-host", "ends": ["terminal", "host"], "ports": {"iso8583": 5000},
                "addresses": {TERMINAL[0]: "terminal", HOST[0]: "host"}, "server": "host", "bridged": True,
                "pcap": str(tmp_path / "link.pcapng")})
    yield e
    e.close()


def events(capsys) -> list:
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return [fault_event(line) or line for line in lines]


def test_drop_fires_on_the_message_and_its_retransmission(engine, capsys):
    wire = Wire(engine)
    wire.open()
    engine.effects.arm(1, FaultSpec.parse("drop 0200 terminal->host"))
    first = wire.seq[TERMINAL]
    sent = wire.send(TERMINAL, HOST, iso_message("0200", "000001"))
    again = wire.send(TERMINAL, HOST, iso_message("0200", "000001"), seq=first)
    other = wire.send(HOST, TERMINAL)
    assert (sent.fate, again.fate, other.fate) == ("drop", "drop", "accept")
    fired = [e for e in events(capsys) if isinstance(e, FaultFired)]
    assert len(fired) == 1
    assert (fired[0].packet, fired[0].stage, fired[0].stan, fired[0].ordinal) == (4, "0200", "000001", 1)
    assert engine.stats["dropped"] == 2 and engine.stats["packets"] == 6
    engine.flush()
    pkts = rdpcap(engine.config["pcap"])
    assert [c.decode() for c in pkts[3].comments] == ["posrig: fault #1 drop fired on 0200 #1 terminal->host"]
    assert "retransmission of the dropped message" in pkts[4].comments[0].decode()


def test_hold_keeps_the_stream_in_order_until_released(engine, capsys):
    wire = Wire(engine)
    wire.open()
    engine.effects.arm(1, FaultSpec.parse("hold 0200 terminal->host ms=30"))
    held = wire.send(TERMINAL, HOST, iso_message("0200", "000002"))
    behind = wire.send(TERMINAL, HOST, iso_message("0800", "000003"))
    reply = wire.send(HOST, TERMINAL)
    assert (held.fate, behind.fate, reply.fate) == ("retain", "retain", "accept")
    time.sleep(0.04)
    assert engine.effects.run_timers() is None
    assert held.fate == behind.fate == "accept"
    released = [e for e in events(capsys) if isinstance(e, FaultReleased)]
    assert released[0].packets == 2 and released[0].held_ms >= 30


def test_corrupt_sets_a_new_payload(engine, capsys):
    wire = Wire(engine)
    wire.open()
    engine.effects.arm(1, FaultSpec.parse("corrupt 0200 offset=7"))
    msg = iso_message("0200", "000004")
    pkt = wire.send(TERMINAL, HOST, msg)
    assert pkt.fate == "accept" and pkt.payload is not None
    assert pkt.payload[40 + 7] == msg[7] ^ 0xFF and pkt.payload[:36] == pkt.raw[:36]
    fired = next(e for e in events(capsys) if isinstance(e, FaultFired))
    assert fired.detail["corrupted"]["message_offset"] == 7


def test_an_engine_error_lets_the_packet_through(engine, capsys):
    """A bridged link that never saw both ends cannot forge a reset: the engine says so, the packet passes."""
    wire = Wire(engine)
    wire.open()
    engine.effects.arm(1, FaultSpec.parse("rst 0200 terminal->host"))
    pkt = wire.send(TERMINAL, HOST, iso_message("0200", "000005"))
    assert pkt.fate == "accept"
    errors = [e for e in events(capsys) if isinstance(e, dict) and e["event"] == "error"]
    assert "engine error, packet accepted" in errors[0]["message"] and "cannot inject" in errors[0]["message"]
    later = wire.send(TERMINAL, HOST, iso_message("0200", "000006"))
    assert later.fate == "accept"                                  # and it goes on deciding


def test_not_ipv4_is_accepted_and_captured(engine):
    pkt = Queued(b"\x60" + b"\0" * 39)                              # an IPv6 header
    engine.on_packet(pkt)
    assert pkt.fate == "accept" and engine.count == 1


def test_control_channel(engine, capsys):
    loop = Loop(engine, engine.config)
    loop.control({"op": "arm", "fault": 3, "spec": FaultSpec.parse("blackhole ms=5").to_json()})
    loop.control({"op": "status"})
    loop.control({"op": "clear", "fault": 3})
    loop.control({"op": "reboot"})
    loop.control({"op": "stop"})
    out = events(capsys)
    assert [type(e).__name__ if not isinstance(e, dict) else e["event"] for e in out] == \
        ["FaultArmed", "FaultFired", "status", "FaultCleared", "error"]
    assert out[1].packet is None and len(out[1].detail["outages"]) == 1
    assert out[2]["faults"][0]["id"] == 3 and isinstance(out[3], FaultCleared)
    assert "unknown control op 'reboot'" in out[4]["message"] and not loop.running

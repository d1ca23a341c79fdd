"""Warm link engines (harness.link.warm): a scenario that leaves a mess on the link, then the next scenario on the
same engine starts clean. First the engine's park and reset in-process, then whole links on the session topology."""

from __future__ import annotations

import json
import time

import pytest
from scapy.layers.inet import TCP
from scapy.utils import rdpcap

from harness.core.device import DeviceContext
from harness.core.evidence import Evidence
from harness.link.emulated import EmulatedLink
from harness.link.engine.decision import Engine
from harness.link.engine.loop import Loop
from harness.link.faults import FaultFired, FaultReleased, FaultSpec, fault_event
from harness.link.tracker import SYN
from tests.support.link_peers import iso_decode, iso_message
from tests.unit.link.test_decision import HOST, TERMINAL, Wire


def lines(capsys) -> list:
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return [fault_event(line) or line for line in out]


@pytest.fixture
def engine(tmp_path):
    e = Engine({"link": "terminal-host", "ends": ["terminal", "host"], "ports": {"iso8583": 5000},
                "addresses": {TERMINAL[0]: "terminal", HOST[0]: "host"}, "server": "host", "bridged": True,
                "pcap": str(tmp_path / "one.pcapng")})
    yield e
    e.close()


def test_reset_drops_what_is_held_and_forgets_everything(engine, tmp_path, capsys):
    loop = Loop(engine, engine.config)
    wire = Wire(engine)
    wire.open()
    loop.control({"op": "arm", "fault": 1, "spec": FaultSpec.parse("hold 0200 terminal->host ms=5000").to_json()})
    loop.control({"op": "arm", "fault": 2, "spec": FaultSpec.parse("drop 0800 terminal->host").to_json()})
    loop.control({"op": "arm", "fault": 3, "spec": FaultSpec.parse("blackhole ms=10000").to_json()})
    held = wire.send(TERMINAL, HOST, iso_message("0200", "000001"))
    assert held.fate == "retain" and engine.effects.timers
    lines(capsys)
    loop.control({"op": "reset", "epoch": 7, "pcap": str(tmp_path / "two.pcapng")})
    assert held.fate == "drop", "a packet held for the old scenario is dropped, never delivered into the new one"
    (ack,) = lines(capsys)
    assert (ack["event"], ack["epoch"], ack["dropped_held"]) == ("reset", 7, 1)
    e = engine.effects
    assert (e.faults, e.windows, e.drops, e.holds, e.probes, e.timers) == ({}, [], [], {}, [], [])
    assert engine.tracker.connections == {} and engine.tracker.stages_seen == {}
    assert engine.count == 0 and set(engine.stats.values()) == {0}
    late = wire.send(TERMINAL, HOST, iso_message("0800", "000002"))     # the old half-open connection goes on
    assert late.fate == "accept"                                         # no blackhole, no drop 0800 left
    assert not [x for x in lines(capsys) if isinstance(x, FaultFired)]
    engine.flush()
    pkts = rdpcap(str(tmp_path / "two.pcapng"))
    assert len(pkts) == 1 and b"000002" in bytes(pkts[0][TCP].payload)
    assert b"000002" not in (tmp_path / "one.pcapng").read_bytes()


def test_park_ends_the_scenario_like_stop_and_keeps_running(engine, capsys):
    loop = Loop(engine, engine.config)
    wire = Wire(engine)
    wire.open()
    loop.control({"op": "arm", "fault": 1, "spec": FaultSpec.parse("hold 0200 terminal->host ms=5000").to_json()})
    held = wire.send(TERMINAL, HOST, iso_message("0200", "000001"))
    loop.control({"op": "park"})
    assert held.fate == "accept"                                        # as a stopping engine lets it go
    out = lines(capsys)
    assert isinstance(out[-2], FaultReleased) and out[-1]["event"] == "parked"
    assert out[-1]["stats"]["held"] == 1 and out[-1]["seen"]["terminal->host"] == {"connect": 1, "0200": 1}
    assert loop.running and engine.pcap is None
    between = wire.send(TERMINAL, HOST, flags=SYN)                      # parked: passes, tracked by nobody
    assert between.fate == "accept" and engine.pcap is None


# -- whole links on the session topology -------------------------------------------------------------------------

def scenario_link(bench, topology, tmp_path, name: str) -> EmulatedLink:
    """The terminal-host link of one scenario: its own evidence folder, the session topology."""
    ctx = DeviceContext(rig=bench.rig, evidence=Evidence(tmp_path / name), timing=bench.rig.timing,
                        namespace=topology.link, network=bench.network)
    link = EmulatedLink(bench.rig.links["terminal-host"], ctx)
    link.start()
    return link


@pytest.mark.needs_netns
def test_next_scenario_on_a_warm_engine_starts_clean(bench, topology, acquirer, terminal_client, tmp_path):
    if topology is None:
        pytest.skip("needs network namespaces")
    first = scenario_link(bench, topology, tmp_path, "one")
    pid = first.engine.pid
    old = terminal_client()
    hold = first.inject("hold", stage="0210", direction="host->terminal", ms=8000, required=False)
    old.send(iso_message("0200", "424242"))
    hold.wait_fired(2.0)                                       # the 0210 is held: a half-done exchange
    first.inject("drop", stage="0800", direction="terminal->host", required=False)     # armed, never fires
    first.inject("blackhole", ms=20000, required=False)        # an outage in progress
    first.close()
    assert first.final["stats"]["held"] == 1
    log = json.loads(first.fault_log_path.read_text())
    assert [f["describe"] for f in log["faults"]][0].startswith("hold") and log["warm"]["pid"] == pid

    second = scenario_link(bench, topology, tmp_path, "two")
    try:
        assert second.engine.pid == pid, "the warm engine was adopted, not restarted"
        assert second.seen() == {}
        status = second.status()
        assert status["faults"] == [] and set(status["stats"].values()) == {0}
        with second.inject("hold", stage="0210", direction="host->terminal", ms=50) as fault:
            assert fault.id == 1
            new = terminal_client()
            t0 = time.monotonic()
            new.send(iso_message("0200", "737373"))
            answer = new.recv(2.0)
        assert answer is not None and time.monotonic() - t0 < 1.5      # no blackhole, no 8 s hold left
        assert iso_decode(answer)["t"] == "0210"
        assert [f.stan for f in fault.fired] == ["737373"] and len(fault.released) == 1
        assert second.seen() == {"terminal->host": {"connect": 1, "0200": 1}, "host->terminal": {"0210": 1}}
        assert [f.id for f in second.faults] == [1]
    finally:
        second.close()
    pkts = rdpcap(str(second.pcap_path))
    assert pkts and not any(b"424242" in bytes(p) for p in pkts), "only this scenario's traffic in its capture"
    notes = [c.decode() for p in pkts for c in (p.comments or [])]
    assert notes and all("fault #1 " in n or "by fault #1" in n for n in notes), notes
    assert b"424242" in first.pcap_path.read_bytes() and b"737373" not in first.pcap_path.read_bytes()
    for link in (first, second):                        # each scenario keeps its own part of the engine's log
        assert link._log_path.read_text().startswith(f"# warm engine pid {pid}")
    assert second.warm.child.log.exists()               # the engine's own log, outside any scenario's evidence
    assert not second.warm.child.log.is_relative_to(tmp_path)


@pytest.mark.needs_netns
def test_a_dead_engine_is_replaced_not_reused(bench, topology, acquirer, terminal_client, tmp_path):
    if topology is None:
        pytest.skip("needs network namespaces")
    first = scenario_link(bench, topology, tmp_path, "one")
    pid = first.engine.pid
    first.kill_engine()
    first.close()
    assert not first.warm.child.log.exists(), "a discarded engine's own log goes (its part is in the evidence)"
    second = scenario_link(bench, topology, tmp_path, "two")
    try:
        assert second.engine.pid != pid
        assert len(second.rules.listed()) == 2, "the dead engine's rules went with it"
        c = terminal_client()
        c.send(iso_message("0200", "000003"))
        assert c.recv(2.0) is not None
        assert second.seen()["terminal->host"] == {"connect": 1, "0200": 1}
    finally:
        second.close()

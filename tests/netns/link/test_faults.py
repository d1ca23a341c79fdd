"""Every fault, in real namespaces with real TCP peers: it takes effect; the capture and fault log show it."""

from __future__ import annotations

import json
import time

import pytest
from scapy.layers.inet import IP, TCP
from scapy.utils import rdpcap

from harness.link.driver import FaultNotFired, ResetNotTaken
from harness.terminal.capture_journal import CaptureJournal
from tests.support.link_peers import ACK, AUTHORIZE, iso_decode, iso_frame, iso_message, tcp_state

pytestmark = pytest.mark.needs_netns


def capture(link) -> list:
    """The link's pcapng, read back with scapy (flushed: the link is closed first)."""
    link.close()
    return rdpcap(str(link.pcap_path))


def comments(pkts) -> list[str]:
    return [c.decode() if isinstance(c, bytes) else c for p in pkts for c in (p.comments or [])]


def payloads(pkts, sport=None, dport=None) -> list[bytes]:
    return [bytes(p[TCP].payload) for p in pkts if TCP in p and (sport is None or p[TCP].sport == sport)
            and (dport is None or p[TCP].dport == dport) and len(p[TCP].payload)]


def test_pass_through_records_everything(th, acquirer, terminal_client):
    c = terminal_client()
    for stan in ("000001", "000002"):
        c.send(iso_message("0200", stan))
        assert c.recv(2.0) is not None
    seen = th.seen()
    assert seen["terminal->host"] == {"connect": 1, "0200": 2}
    assert seen["host->terminal"] == {"0210": 2}
    pkts = capture(th)
    assert all(IP in p for p in pkts)
    assert sum(1 for p in pkts if TCP in p and p[TCP].flags.S) == 2        # SYN and SYN-ACK
    assert len(payloads(pkts)) == 4
    assert not comments(pkts)                                              # nothing faulted, nothing marked


@pytest.mark.parametrize("direction,stage", [("host->terminal", "0210"), ("terminal->host", "0200")])
def test_drop_message_and_its_retransmissions(th, acquirer, terminal_client, direction, stage):
    c = terminal_client()
    with th.inject("drop", stage=stage, direction=direction) as fault:
        c.send(iso_message("0200", "000007"))
        assert c.recv(0.9) is None                                         # the payment never completes
        if stage == "0200":                                                # while armed (once cleared, TCP's next
            assert acquirer.received == []                                 # retransmission may get through)
    shot = fault.fired[0]
    assert shot.stage == stage and shot.direction == direction and shot.stan == "000007"
    pkts = capture(th)
    marked = comments(pkts)
    assert any(f"fault #{fault.id} drop fired on {stage}" in m for m in marked)
    retrans = [m for m in marked if "retransmission of the dropped message" in m]
    assert retrans, "the sender retransmitted within 0.9 s and the retransmission had to be dropped too"
    fired_pkt = pkts[shot.packet - 1]
    assert bytes(fired_pkt[TCP].payload)[2:6] == stage.encode()
    log = json.loads(th.fault_log_path.read_text())
    assert log["faults"][0]["fired"][0]["packet"] == shot.packet
    assert log["faults"][0]["armed_at"] <= shot.t


def test_drop_connect(th, acquirer, terminal_client):
    with th.inject("drop", stage="connect", direction="terminal->host") as fault:
        with pytest.raises(OSError):
            terminal_client(timeout=0.7)
    assert fault.fired[0].stage == "connect"
    assert acquirer.conns == []


@pytest.mark.parametrize("direction,stage", [("host->terminal", "0210"), ("terminal->host", "0200")])
def test_hold_delays_the_message(th, acquirer, terminal_client, direction, stage):
    c = terminal_client()
    with th.inject("hold", stage=stage, direction=direction, ms=250) as fault:
        t0 = time.monotonic()
        c.send(iso_message("0200", "000011"))
        assert c.recv(2.0) is not None
        elapsed = time.monotonic() - t0
    assert elapsed >= 0.25
    assert fault.released and fault.released[0].held_ms >= 250
    assert any("hold fired" in m for m in comments(capture(th)))


def test_hold_every_occurrence(th, acquirer, terminal_client):
    c = terminal_client()
    with th.inject("hold", stage="0210", direction="host->terminal", occurrence="every", ms=120) as fault:
        for stan in ("000001", "000002"):
            t0 = time.monotonic()
            c.send(iso_message("0200", stan))
            assert c.recv(2.0) is not None
            assert time.monotonic() - t0 >= 0.12
    assert len(fault.fired) == 2


def test_nth_occurrence_only(th, acquirer, terminal_client):
    c = terminal_client()
    with th.inject("drop", stage="0200", direction="terminal->host", occurrence=2) as fault:
        c.send(iso_message("0200", "000001"))
        assert c.recv(2.0) is not None                                     # first one untouched
        c.send(iso_message("0200", "000002"))
        assert c.recv(0.6) is None                                         # second dropped
    assert fault.fired[0].ordinal == 2 and fault.fired[0].stan == "000002"
    assert len(acquirer.received) == 1


def test_blackhole_for_a_while_then_traffic_recovers(th, acquirer, terminal_client):
    c = terminal_client()
    with th.inject("blackhole", ms=400) as fault:
        t0 = time.monotonic()
        c.send(iso_message("0200", "000003"))
        got = c.recv(3.0)
        elapsed = time.monotonic() - t0
    assert got is not None and elapsed >= 0.4  # TCP retransmitted after the outage
    assert fault.fired[0].packet is None  # armed with no stage: fires at once
    assert any("blackholed by fault" in m for m in comments(capture(th)))


def test_blackhole_both_directions_until_cleared(th, acquirer, terminal_client):
    c = terminal_client()
    c.send(iso_message("0200", "000001"))
    assert c.recv(2.0) is not None
    fault = th.inject("blackhole", stage="0200", direction="terminal->host")
    c.send(iso_message("0200", "000002"))
    assert c.recv(0.8) is None
    assert len(acquirer.received) == 1
    fault.clear()
    assert c.recv(3.0) is not None  # retransmission passes once cleared
    st = th.status()["stats"]
    assert st["dropped"] >= 2


def test_rst_both_ends_is_taken(th, acquirer, terminal_client):
    c = terminal_client()
    with th.inject("rst", stage="0210", direction="host->terminal", to="both") as fault:
        c.send(iso_message("0200", "000005"))
        with pytest.raises(ConnectionResetError):
            c.recv(2.0)
    assert all(v.taken for v in fault.verified) and len(fault.verified) == 2
    assert acquirer.wait_received(1, 1.0)
    server_side = acquirer.conns[0]
    assert tcp_state(server_side) == "CLOSE"                               # the host's socket was reset too
    resets = fault.fired[0].resets
    assert {r["to"] for r in resets} == {"terminal", "host"}
    assert all(r["seq"] == r["expected"] for r in resets)
    pkts = capture(th)
    injected = [p for p in pkts if p.comments and any(b"forged RST" in c for c in p.comments)]
    assert len(injected) == 2 and all(p[TCP].flags.R for p in injected)


def test_rst_one_end_leaves_the_other_half_open(th, acquirer, terminal_client):
    c = terminal_client()
    with th.inject("rst", stage="0200", direction="terminal->host", to="terminal"):
        c.send(iso_message("0200", "000006"))
        with pytest.raises(ConnectionResetError):
            c.recv(2.0)
    assert acquirer.received == []  # the 0200 was cut, never delivered
    time.sleep(0.05)
    assert acquirer.conns and tcp_state(acquirer.conns[0]) == "ESTABLISHED"  # the host never knew: half-open


def test_rst_off_by_one_is_detected_as_not_taken(th, acquirer, terminal_client):
    c = terminal_client()
    fault = th.inject("rst", stage="0210", direction="host->terminal", to="terminal", seq_offset=1,
                      verify_ms=500)
    c.send(iso_message("0200", "000008"))
    with pytest.raises(ResetNotTaken, match="NOT taken"):
        fault.wait_verified(timeout=2.0)
    assert c.recv(2.0) is not None  # the host retransmitted and the payment completed: no cut happened
    fault.clear()


def test_rst_at_connect_refuses(th, acquirer, terminal_client):
    with th.inject("rst", stage="connect", direction="terminal->host"):
        with pytest.raises(ConnectionRefusedError):
            terminal_client()


def test_rst_on_zvt_stage(tt, zvt_terminal, till_client):
    c = till_client()
    with th_fault(tt, "rst", "zvt:04 0F", "terminal->till") as fault:
        c.send(AUTHORIZE)
        assert c.recv(2.0) == bytes.fromhex("800000")                       # the ack before 04 0F passes
        with pytest.raises(ConnectionResetError):
            c.recv(2.0)
    assert fault.fired[0].stage == "zvt:04 0F"


def th_fault(link, action, stage, direction, **params):
    return link.inject(action, stage=stage, direction=direction, **params)


def test_never_fired_fails_with_what_was_seen(th, acquirer, terminal_client):
    c = terminal_client()
    with pytest.raises(FaultNotFired, match="armed, never fired: no 0420 seen on terminal-host") as info:
        with th.inject("drop", stage="0420", direction="terminal->host"):
            c.send(iso_message("0200", "000001"))
            assert c.recv(2.0) is not None
    assert "0200x1" in str(info.value) and "pcapng" in str(info.value)


def test_unfired_fault_fails_at_link_close(th, acquirer, terminal_client):
    th.inject("drop", stage="0430", direction="host->terminal")
    with pytest.raises(FaultNotFired, match="no 0430 seen"):
        th.close()


def test_capture_masks_card_numbers(th, acquirer, terminal_client):
    c = terminal_client()
    pan = "4111111111111111"
    with th.inject("duplicate", stage="0200", direction="terminal->host"):
        c.send(iso_frame({"t": "0200", "2": pan, "4": "000000001000", "11": "000021"}))
        assert c.recv(2.0) is not None
    assert iso_decode(acquirer.received[0])["2"] == pan                 # the wire carries the real number
    th.close()
    raw = th.pcap_path.read_bytes()
    assert pan.encode() not in raw and raw.count(b"411111******1111") == 2   # original and duplicate


def test_aim_by_stan(th, acquirer, terminal_client):
    c = terminal_client()
    with th.inject("drop", stage="0210", direction="host->terminal", stan="000032") as fault:
        for stan in ("000031", "000033"):
            c.send(iso_message("0200", stan))
            assert c.recv(2.0) is not None
        c.send(iso_message("0200", "000032"))
        assert c.recv(0.5) is None
    assert fault.fired[0].stan == "000032" and len(fault.fired) == 1


def test_link_fixture_gives_every_link_of_the_rig(link, acquirer, zvt_terminal, terminal_client, till_client):
    assert set(link) == {"till-terminal", "terminal-host"}
    assert link["till-terminal"].queue != link["terminal-host"].queue     # one namespace, two queues
    with link["terminal-host"].inject("hold", stage="0210", direction="host->terminal", ms=50):
        c = terminal_client()
        c.send(iso_message("0200", "000041"))
        assert c.recv(2.0) is not None
    t = till_client()
    t.send(AUTHORIZE)
    assert t.recv(2.0) is not None
    assert link["till-terminal"].seen()["till->terminal"]["zvt:06 01"] == 1
    assert "zvt:06 01" not in str(link["terminal-host"].seen())     # each link sees only its own traffic


def test_bench_writes_out_running_captures_before_a_record_is_read(bench, tt, zvt_terminal, till_client):
    """A physical terminal's journal is decoded from the till-terminal capture while the link runs: the oracle's
    read must hold the sale that just ended (in CI once, the last sale was missing from the evidence)."""
    c = till_client()
    c.send(AUTHORIZE)
    assert [c.recv(2.0), c.recv(2.0)[:2]] == [ACK, bytes.fromhex("040F")]
    c.send(ACK)
    assert c.recv(2.0) == bytes.fromhex("060F00")
    bench.flush_captures()
    assert tt.engine_alive                                            # read while the engine still runs
    sales = CaptureJournal(tt.pcap_path, 20007).transactions("sale")
    assert [(s["amount"], s["state"], s["trace"], s.get("completed")) for s in sales] == \
        [(1000, "approved", "000123", True)]


def test_watched_link_refuses_faults(bench, topology):
    from dataclasses import replace

    from harness.core.device import DeviceContext
    from harness.link.emulated import EmulatedLink
    from harness.link.faults import FaultError

    spec = replace(bench.rig.links["terminal-host"], faultable=False)
    ctx = DeviceContext(rig=bench.rig, evidence=bench.evidence, timing=bench.rig.timing,
                        namespace=topology.link, network=bench.network)
    with EmulatedLink(spec, ctx) as watched:
        with pytest.raises(FaultError, match="faultable: false"):
            watched.inject("drop", stage="0210")
        assert watched.rules.listed()                                   # it still watches


def test_bad_fault_arguments_are_refused_before_arming(th):
    from harness.link.faults import FaultError

    with pytest.raises(FaultError, match="not a direction of link terminal-host"):
        th.inject("drop", stage="0210", direction="host->till")
    with pytest.raises(FaultError, match="rst to='printer'"):
        th.inject("rst", stage="0210", to="printer")
    with pytest.raises(FaultError, match="has no parameter 'ms'"):
        th.inject("drop", stage="0210", ms=5)
    assert th.faults == []


@pytest.mark.parametrize("stage,direction", [("0210", "host->terminal"), ("0200", "terminal->host")])
def test_rst_on_a_connection_opened_before_the_engine(bench, topology, acquirer, terminal_client, stage,
                                                      direction):
    """A terminal's long-lived host connection predates the link: the engine learns it mid-stream (for the
    0200 case the cut packet is the first the engine ever sees of that connection)."""
    c = terminal_client()
    c.send(iso_message("0200", "000051"))
    assert c.recv(2.0) is not None
    th = bench.device("terminal-host")                  # rules installed now, mid-connection
    with th.inject("rst", stage=stage, direction=direction, to="both") as fault:
        c.send(iso_message("0200", "000052"))
        with pytest.raises(ConnectionResetError):
            c.recv(2.0)
    assert len(fault.verified) == 2 and all(v.taken for v in fault.verified)


def test_faults_armed_from_the_rig(bench, topology, acquirer, terminal_client):
    """A link spec carrying `faults` (text or mappings, as a rig file would) arms them at link start."""
    from dataclasses import dataclass

    from harness.core.device import DeviceContext
    from harness.core.rig import LinkSpec
    from harness.link.emulated import EmulatedLink

    @dataclass(frozen=True)
    class RigLink(LinkSpec):
        faults: tuple = ()

    base = bench.rig.links["terminal-host"]
    spec = RigLink(**{**base.__dict__, "faults": ("hold 0210 host->terminal ms=50",
                                                  {"action": "drop", "stage": "0200", "occurrence": 2})})
    ctx = DeviceContext(rig=bench.rig, evidence=bench.evidence, timing=bench.rig.timing,
                        namespace=topology.link, network=bench.network)
    with EmulatedLink(spec, ctx) as th:
        assert [f.spec.action for f in th.faults] == ["hold", "drop"]
        c = terminal_client()
        c.send(iso_message("0200", "000061"))
        assert c.recv(2.0) is not None
        c.send(iso_message("0200", "000062"))
        assert c.recv(0.5) is None
        assert [len(f.fired) for f in th.faults] == [1, 1]


def test_capture_readable_while_the_link_runs(th, acquirer, terminal_client):
    c = terminal_client()
    with th.inject("drop", stage="0210", direction="host->terminal") as fault:
        c.send(iso_message("0200", "000071"))
        fault.wait_fired(2.0)
        pkts = rdpcap(str(th.capture()))
    assert th.engine_alive
    assert any(f"fault #{fault.id} drop fired on 0210" in m for m in comments(pkts))


def test_fault_events_for_the_timeline(th, acquirer, terminal_client):
    """What the scenario runner puts on a report's timeline: armed, FIRED on packet #n, released, cleared."""
    c = terminal_client()
    with th.inject("hold", stage="0210", direction="host->terminal", ms=50) as fault:
        c.send(iso_message("0200", "000081"))
        assert c.recv(2.0) is not None
    events = fault.events()
    assert [e.what.split()[0] for e in events] == ["armed", "FIRED", "released", "cleared"]
    assert events[1].what == f"FIRED hold 0210 host->terminal first ms=50.0 on packet #{fault.fired[0].packet}"
    assert all(e.source == "link terminal-host" for e in events)
    assert [e.t for e in events] == sorted(e.t for e in events) and events[0].t == fault.armed_at
    assert abs(events[0].t - time.time()) < 60                       # epoch seconds, like every posrig `t`
    assert th.events() == events


def test_engine_is_a_supervised_child(th, bench, topology):
    """The engine says ready in the one dialect (queue bound, pid); one that cannot start fails with its reason."""
    from dataclasses import replace

    from harness.core.device import DeviceContext
    from harness.link.driver import LinkError
    from harness.link.emulated import EmulatedLink

    assert th.engine.ready["event"] == "ready" and th.engine.ready["queue"] == th.queue
    assert th.engine.ready["pid"] == th.engine.pid

    class Crowded(EmulatedLink):
        def engine_config(self):
            return {**super().engine_config(), "queue": [th.queue, 1]}     # the only queue it may use is taken

    ctx = DeviceContext(rig=bench.rig, evidence=bench.evidence, timing=bench.rig.timing,
                        namespace=topology.link, network=bench.network)
    crowded = Crowded(replace(bench.rig.links["terminal-host"], name="crowded"), ctx)     # its own evidence files
    with pytest.raises(LinkError, match=f"no free NFQUEUE number in {th.queue}..{th.queue}"):
        crowded.start()
    assert not crowded.engine_alive and crowded.rules is None

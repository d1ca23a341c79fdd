"""Split and coalesced messages, flap, duplicate, corrupt, ZVT both ways, fail-open and cleanup."""

from __future__ import annotations

import os
import signal
import time

import pytest
from scapy.layers.inet import TCP
from scapy.utils import rdpcap

from harness.core.events import wait_until
from harness.link.emulated import EmulatedLink
from harness.link.layers import bind_ports, messages
from tests.support.link_peers import ACK, AUTHORIZE, COMPLETION, STATUS_INFO, iso_decode, iso_encode, iso_message

pytestmark = pytest.mark.needs_netns


def comments_of(p) -> list[str]:
    return [c.decode() for c in (p.comments or [])]


def test_message_split_across_segments_is_one_message(th, acquirer, terminal_client):
    c = terminal_client()
    frame = iso_message("0200", "000042")
    with th.inject("drop", stage="0200", direction="terminal->host") as fault:
        for part in (frame[:1], frame[1:4], frame[4:]):     # length prefix and MTI split over three segments
            c.send(part)
            time.sleep(0.03)
        assert c.recv(0.6) is None
        assert acquirer.received == []              # while armed: once cleared, a retransmission may get through
    assert th.seen()["terminal->host"] == {"connect": 1, "0200": 1}
    assert fault.fired[0].detail["stream_start"] == 0 and fault.fired[0].detail["stream_end"] == len(frame)


def test_split_message_passes_and_next_message_is_still_found(th, acquirer, terminal_client):
    c = terminal_client()
    first, second = iso_message("0800", "000001"), iso_message("0200", "000002")
    with th.inject("hold", stage="0210", direction="host->terminal", ms=50) as fault:
        c.send(first[:10])
        time.sleep(0.03)
        c.send(first[10:] + second[:3])  # end of one message and start of the next together
        time.sleep(0.03)
        c.send(second[3:])
        assert iso_decode(c.recv(2.0))["t"] == "0810"
        assert iso_decode(c.recv(2.0))["t"] == "0210"
    assert fault.fired[0].stan == "000002"
    assert th.seen()["terminal->host"] == {"connect": 1, "0800": 1, "0200": 1}


def test_coalesced_messages_in_one_segment(th, acquirer, terminal_client):
    c = terminal_client()
    with th.inject("drop", stage="0200", direction="terminal->host", occurrence=2) as fault:
        c.send(iso_message("0800", "000001") + iso_message("0200", "000002") + iso_message("0200", "000003"))
        assert c.recv(0.6) is None                          # the segment carried all three: none delivered
    shot = fault.fired[0]
    assert shot.ordinal == 2 and shot.stan == "000003"
    assert th.seen()["terminal->host"] == {"connect": 1, "0800": 1, "0200": 2}
    th.close()
    bind_ports({"iso8583": 5000})
    fired = rdpcap(str(th.pcap_path))[shot.packet - 1]
    assert [m.mti for m in messages(fired)] == [b"0800", b"0200", b"0200"]   # the scapy layer sees all three


def test_flap_pattern(th, acquirer, terminal_client):
    c = terminal_client()
    with th.inject("flap", stage="0200", direction="terminal->host", count=2, down_ms=150,
                   every_ms=400) as fault:
        got = []
        t0 = time.monotonic()
        for i in range(20):                                 # a message every 40 ms across both outages
            c.send(iso_message("0200", f"{i:06d}"))
            time.sleep(0.04)
        while len(got) < 20 and time.monotonic() - t0 < 5:
            m = c.recv(1.0)
            if m is not None:
                got.append(iso_decode(m)["11"])
    assert got == [f"{i:06d}" for i in range(20)]          # TCP recovered every message, in order
    outages = fault.fired[0].detail["outages"]
    assert len(outages) == 2 and abs((outages[1][0] - outages[0][0]) - 0.4) < 0.01
    th.close()
    dropped = [p.time for p in rdpcap(str(th.pcap_path)) if any("blackholed" in c for c in comments_of(p))]
    assert dropped
    for t in dropped:                                       # every drop fell inside one of the two outages
        assert any(a - 0.005 <= float(t) <= b + 0.005 for a, b in outages), (t, outages)
    assert any(float(t) >= outages[1][0] - 0.005 for t in dropped)  # the second outage happened too


@pytest.mark.parametrize("direction,stage", [("terminal->host", "0200"), ("host->terminal", "0210")])
def test_duplicate_reaches_the_receiver(th, acquirer, terminal_client, direction, stage):
    c = terminal_client()
    with th.inject("duplicate", stage=stage, direction=direction) as fault:
        c.send(iso_message("0200", "000009"))
        assert c.recv(2.0) is not None
        assert c.recv(0.1) is None                          # TCP delivered it once to the application
    time.sleep(0.05)
    assert len(acquirer.received) == 1
    th.close()
    pkts = rdpcap(str(th.pcap_path))
    n = fault.fired[0].packet
    original, copy = pkts[n - 1], pkts[n]
    assert "duplicate of packet" in comments_of(copy)[0]
    assert bytes(original[TCP]) == bytes(copy[TCP])
    # The receiver's kernel saw the copy: it answered with a D-SACK (SACK option) covering those bytes.
    receiver_port = original[TCP].dport
    dsack = [p for p in pkts[n:] if TCP in p and p[TCP].sport == receiver_port
             and any(o[0] == "SAck" for o in p[TCP].options)]
    assert dsack, "the receiver never acknowledged the duplicate"


@pytest.mark.parametrize("direction,stage", [("terminal->host", "0200"), ("host->terminal", "0210")])
def test_corrupt_reaches_the_application(th, acquirer, terminal_client, direction, stage):
    c = terminal_client()
    sent = iso_message("0200", "000010")
    with th.inject("corrupt", stage=stage, direction=direction, offset=7) as fault:
        c.send(sent)
        if stage == "0200":   # the acquirer cannot read the garbled request, so no answer comes: wait for arrival
            assert wait_until(lambda: acquirer.received, 2.0), "the corrupted 0200 never reached the acquirer"
        else:
            got = c.recv(2.0)
    want = iso_encode({"t": "0210", "11": "000010", "39": "00"})
    if stage == "0200":
        assert acquirer.received[0] == bytes(a ^ 0xFF if i == 5 else a for i, a in enumerate(sent[2:]))
    else:
        assert got != want and len(got) == len(want) and got[5] == want[5] ^ 0xFF
    assert fault.fired[0].detail["corrupted"]["message_offset"] == 7
    th.close()
    marked = rdpcap(str(th.pcap_path))[fault.fired[0].packet - 1]
    assert "corrupt fired" in comments_of(marked)[0]
    assert bytes(marked[TCP].payload)[7] == (sent[7] if stage == "0200" else want[5]) ^ 0xFF


def test_corrupt_with_bad_checksum_is_dropped_by_tcp(th, acquirer, terminal_client):
    c = terminal_client()
    sent = iso_message("0200", "000012")
    with th.inject("corrupt", stage="0200", direction="terminal->host", checksum="keep"):
        c.send(sent)
        assert c.recv(2.0) is not None  # retransmitted intact after the receiver discarded it
    assert acquirer.received == [sent[2:]]


@pytest.mark.parametrize("direction,stage", [("till->terminal", "zvt:06 01"),
                                             ("terminal->till", "zvt:06 0F")])
def test_zvt_drop_both_directions(tt, zvt_terminal, till_client, direction, stage):
    c = till_client()
    with tt.inject("drop", stage=stage, direction=direction) as fault:
        c.send(AUTHORIZE)
        got = [c.recv(0.5), c.recv(0.5)]
        if got[1] == STATUS_INFO:
            c.send(ACK)                                 # the till acknowledges the status information
        got.append(c.recv(0.5))
    if stage == "zvt:06 01":
        assert got == [None, None, None] and zvt_terminal.received == []
    else:
        assert got == [ACK, STATUS_INFO, None]          # the completion never arrives
    assert fault.fired[0].stage == stage
    seen = tt.seen()
    assert seen["till->terminal"]["zvt:06 01"] == 1
    if stage == "zvt:06 0F":
        assert seen["terminal->till"] == {"zvt:80 00": 1, "zvt:04 0F": 1, "zvt:06 0F": 1}
        assert COMPLETION not in zvt_terminal.received


def test_zvt_extended_length_apdu(tt, zvt_terminal, till_client):
    c = till_client()
    big = bytes([0x06, 0xD3, 0xFF]) + (300).to_bytes(2, "little") + b"x" * 300       # 06 D3 print block
    with tt.inject("drop", stage="zvt:06 01", direction="till->terminal") as fault:
        c.send(big + AUTHORIZE)
        assert c.recv(0.5) is None
    assert tt.seen()["till->terminal"] == {"connect": 1, "zvt:06 D3": 1, "zvt:06 01": 1}
    assert fault.fired[0].detail["stream_start"] == 305


def test_engine_killed_mid_test_lets_traffic_through(th, acquirer, terminal_client):
    c = terminal_client()
    c.send(iso_message("0200", "000001"))
    assert c.recv(2.0) is not None
    fault = th.inject("hold", stage="0210", direction="host->terminal", ms=5000, required=False)
    c.send(iso_message("0200", "000002"))
    fault.wait_fired(2.0)
    th.kill_engine()                                    # the held 0210 dies with the engine's queue
    assert c.recv(3.0) is not None                      # ...and its retransmission passes: --queue-bypass
    c.send(iso_message("0200", "000003"))
    assert c.recv(2.0) is not None
    fresh = terminal_client()                           # new connections pass too
    fresh.send(iso_message("0200", "000004"))
    assert fresh.recv(2.0) is not None
    assert th.rules.listed(), "rules stay while the link is open: only the bypass lets packets through"


def test_nothing_outlives_the_warm_pool(th, topology, acquirer, terminal_client):
    """A closed link's engine stays warm with its rules; closing the topology's pool removes both."""
    pid = th.engine.pid
    assert th.rules.listed()
    queues = topology.link.run(["cat", "/proc/net/netfilter/nfnetlink_queue"])
    assert str(th.queue) in [line.split()[0] for line in queues.splitlines()]   # other warm engines may be bound
    th.close()
    assert th.rules.listed(), "the warm engine keeps its rules between benches"
    os.kill(pid, 0)                                     # still running, parked
    topology.link_pool.close()
    assert th.rules.listed() == []
    assert topology.link.run(["cat", "/proc/net/netfilter/nfnetlink_queue"]).strip() == ""
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    c = terminal_client()                               # no rule left: plain routing
    c.send(iso_message("0200", "000001"))
    assert c.recv(2.0) is not None


def test_nothing_outlives_a_cold_link(th, topology, acquirer, terminal_client, monkeypatch):
    """POSRIG_LINK_WARM=0: the link starts and stops its own engine, rules go with it."""
    monkeypatch.setenv("POSRIG_LINK_WARM", "0")
    th.close()
    topology.link_pool.close()                          # th's engine was kept warm: gone now
    link = EmulatedLink(th.spec, th.ctx)
    link.start()
    assert link.warm is None
    pid = link.engine.pid
    link.close()
    assert link.rules.listed() == []
    assert topology.link.run(["cat", "/proc/net/netfilter/nfnetlink_queue"]).strip() == ""
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    c = terminal_client()                               # no rule left: plain routing
    c.send(iso_message("0200", "000001"))
    assert c.recv(2.0) is not None



def test_full_queue_fails_open(bench, topology, acquirer, terminal_client):
    """A stuck engine (SIGSTOP) holds at most max_queue packets; the kernel lets the rest through."""
    import socket as sk

    from harness.core.device import DeviceContext

    ctx = DeviceContext(rig=bench.rig, evidence=bench.evidence, timing=bench.rig.timing,
                        namespace=topology.link, network=bench.network,
                        extra={"link_max_queue": 4, "link_watchdog_s": 60})      # no watchdog rescue here
    link = EmulatedLink(bench.rig.links["terminal-host"], ctx)
    link.start()
    try:
        os.kill(link.engine.pid, signal.SIGSTOP)
        with topology.nodes["terminal"].entered():
            u = sk.socket(sk.AF_INET, sk.SOCK_DGRAM)
        for _ in range(4):                                  # fill the queue with packets nobody will judge
            u.sendto(b"x", (topology.ip("host"), 9))
        u.close()
        c = terminal_client()
        c.send(iso_message("0200", "000001"))
        assert c.recv(2.0) is not None
    finally:
        os.kill(link.engine.pid, signal.SIGCONT)
        link.close()


def test_hung_engine_is_killed_and_the_link_fails_open(bench, topology, acquirer, terminal_client):
    from harness.core.device import DeviceContext

    ctx = DeviceContext(rig=bench.rig, evidence=bench.evidence, timing=bench.rig.timing,
                        namespace=topology.link, network=bench.network, extra={"link_watchdog_s": 0.3})
    with EmulatedLink(bench.rig.links["terminal-host"], ctx) as link:
        c = terminal_client()
        os.kill(link.engine.pid, signal.SIGSTOP)             # alive but deaf: packets would sit in its queue
        c.send(iso_message("0200", "000001"))
        assert c.recv(3.0) is not None                       # the watchdog killed it; the bypass took over
        assert not link.engine_alive
        assert any("killed so the link fails open" in e["message"] for e in link.errors)
    assert not link._watchdog.is_alive()

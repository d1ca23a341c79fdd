"""Stages on a TLS link without keys, in real namespaces with Python's ssl at both ends: the Nth request and
response are recognised from record structure (TLS 1.2 and 1.3, tickets, resumption, records split across
segments or sharing one), and a fault on them hits exactly that record, as the capture shows."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from scapy.utils import rdpcap

from fixtures.devices import close_bench
from harness.core.bench import Bench
from harness.core.events import wait_until
from harness.core.rig import LinkTls
from harness.host.tls import BenchPki
from tests.support.link_peers import iso_decode, iso_message
from tests.support.tls_peers import TlsAcquirer, TlsTerminal

pytestmark = pytest.mark.needs_netns

ISO_PORT = 5000
VERSIONS = ("1.2", "1.3")


@pytest.fixture
def pki(topology):
    if topology is None:
        pytest.skip("needs network namespaces")
    p = BenchPki("host", topology.ip("host"))
    yield p
    p.close()


@pytest.fixture
def tls_link(rig, evidence, topology):
    """make(version, tickets) -> the terminal-host link with `tls:` set, started alone on its own bench."""
    if topology is None:
        pytest.skip("needs network namespaces")
    benches: list[Bench] = []

    def make(version: str, tickets: tuple[int, int] = (2, 1)):
        links = dict(rig.links)
        links["terminal-host"] = replace(links["terminal-host"], tls=LinkTls(version, "passthrough", tickets))
        b = Bench(replace(rig, links=links), evidence, topology)
        benches.append(b)
        return b.device("terminal-host")

    yield make
    for b in benches:
        close_bench(b)


@pytest.fixture
def peers(topology, pki):
    """acquirer(version, **kw) in the host namespace; terminal(version, **kw) connecting to it through the link."""
    made: list = []

    def acquirer(version: str, **kw) -> TlsAcquirer:
        a = TlsAcquirer(topology.nodes["host"], topology.ip("host"), ISO_PORT, pki, version, **kw)
        made.append(a)
        return a

    def terminal(version: str, **kw) -> TlsTerminal:
        t = TlsTerminal(topology.nodes["terminal"], (topology.ip("host"), ISO_PORT), pki, version, **kw)
        made.append(t)
        return t

    yield acquirer, terminal
    for p in reversed(made):
        p.close()


def comments(link) -> list[str]:
    link.close()
    pkts = rdpcap(str(link.pcap_path))
    return [c.decode() if isinstance(c, bytes) else c for p in pkts for c in (p.comments or [])]


@pytest.mark.parametrize("version", VERSIONS)
def test_requests_and_responses_are_counted_per_connection(tls_link, peers, version):
    th = tls_link(version)
    acquirer, terminal = peers
    acquirer(version)
    t = terminal(version)
    for stan in ("000001", "000002"):
        t.send(iso_message("0200", stan))
        assert iso_decode(t.recv(2.0))["t"] == "0210"
    time.sleep(0.1)
    seen = th.seen()
    up, down = seen.get("terminal->host", {}), seen.get("host->terminal", {})
    assert (up.get("request#1"), up.get("request#2"), up.get("connect")) == (1, 1, 1)
    assert (down.get("response#1"), down.get("response#2")) == (1, 1)
    # TLS 1.3: the client's Finished ends the handshake; TLS 1.2 (full handshake): the server's Finished.
    assert (up if version == "1.3" else down).get("handshake") == 1
    assert not any(k.startswith("tls") for k in {**up, **down})      # records that start no stage stay unnamed


@pytest.mark.parametrize("version", VERSIONS)
def test_drop_response_1_hits_the_response_record_exactly(tls_link, peers, version):
    th = tls_link(version)
    acquirer, terminal = peers
    server = acquirer(version)
    t = terminal(version)
    with th.inject("drop", stage="response#1", direction="host->terminal") as fault:
        t.send(iso_message("0200", "000007"))
        assert t.recv(1.0) is None                                   # the approval never reaches the terminal
    assert len(server.received) == 1                                 # the request did reach the host
    shot = fault.fired[0]
    assert (shot.stage, shot.direction, shot.ordinal) == ("response#1", "host->terminal", 1)
    stream = server.streams[0]
    assert shot.detail["stream_start"] == stream.marks[0]           # the 0210's record, not a ticket or handshake
    assert any(f"fault #{fault.id} drop fired on response#1" in c for c in comments(th))


@pytest.mark.parametrize("version", VERSIONS)
def test_the_matrix_stage_0210_means_response_1_on_a_tls_link(tls_link, peers, version):
    th = tls_link(version)
    acquirer, terminal = peers
    server = acquirer(version)
    t = terminal(version)
    with th.inject("hold", stage="0210", direction="host->terminal", ms=300) as fault:
        assert fault.spec.stage == "response#1"
        t.send(iso_message("0200", "000008"))
        started = time.monotonic()
        assert iso_decode(t.recv(2.0))["t"] == "0210"
        assert time.monotonic() - started >= 0.28                   # held, then delivered
    assert fault.fired[0].detail["stream_start"] == server.streams[0].marks[0]


@pytest.mark.parametrize("version", VERSIONS)
def test_rst_after_request_1_delivers_it_then_resets_both_ends(tls_link, peers, version):
    th = tls_link(version)
    acquirer, terminal = peers
    server = acquirer(version)
    t = terminal(version)
    fault = th.arm("rst after request#1 terminal->host")
    t.send(iso_message("0200", "000009"))
    # Fired, and both forged resets taken. The host's reset carries the sequence number of the byte after the
    # request and a stack takes a reset only at exactly its next expected byte: taken, it proves the request had
    # reached the host's TCP first. (Its application may still lose it: a TLS 1.3 server whose ticket write meets
    # the reset never reads it; so at most one request reaches the acquirer.)
    fault.prove(timeout=3.0)
    shot = fault.fired[0]
    wait_until(lambda: len(server.received) == 1, 1.0)
    assert len(server.received) <= 1
    assert shot.stage == "request#1" and shot.detail["stream_start"] == t.stream.marks[0]
    assert {r["to"] for r in shot.resets} == {"terminal", "host"}
    with pytest.raises((ConnectionError, OSError)):
        t.send(iso_message("0200", "000010"))
        t.recv(0.5)
        t.send(iso_message("0200", "000011"))


@pytest.mark.parametrize("version", VERSIONS)
def test_records_split_across_segments_and_sharing_one(tls_link, peers, version):
    """The server's response record arrives in three segments (header cut after 2 bytes); the client's last
    handshake flight and its request share one segment (1.3: CCS, Finished, request: three records)."""
    th = tls_link(version)
    acquirer, terminal = peers
    server = acquirer(version, split=(2, 9))
    t = terminal(version, coalesce=True, split=(3,))
    with th.inject("drop", stage="response#1", direction="host->terminal") as fault:
        t.send(iso_message("0200", "000012"))
        assert t.recv(1.0) is None
    assert len(server.received) == 1
    shot = fault.fired[0]
    assert shot.detail["stream_start"] == server.streams[0].marks[0]
    assert th.seen()["terminal->host"]["request#1"] == 1
    assert th.seen()["terminal->host"].get("request#2") is None   # one request, though several records came


def test_tls13_tickets_sent_after_the_request_are_not_the_response(tls_link, peers):
    """The client sends its Finished and request together; the server's two NewSessionTickets
    (application_data too) come after the request on the link, then the response: only it is response#1."""
    th = tls_link("1.3", tickets=(2, 1))
    acquirer, terminal = peers
    server = acquirer("1.3", tickets=2)
    t = terminal("1.3", coalesce=True)
    with th.inject("drop", stage="response#1", direction="host->terminal") as fault:
        t.send(iso_message("0200", "000013"))
        assert t.recv(1.0) is None
    assert fault.fired[0].detail["stream_start"] == server.streams[0].marks[0]


def test_tls13_server_data_before_any_request_is_no_response(tls_link, peers):
    """Told the server sends no tickets (wrongly), the link still does not take the tickets that arrive before
    any request for the response: a server burst before a request answers nothing."""
    th = tls_link("1.3", tickets=(0, 0))
    acquirer, terminal = peers
    server = acquirer("1.3", tickets=2)
    t = terminal("1.3")
    time.sleep(0.2)                                                  # the tickets cross the link first
    with th.inject("drop", stage="response#1", direction="host->terminal") as fault:
        t.send(iso_message("0200", "000014"))
        assert t.recv(1.0) is None
    assert fault.fired[0].detail["stream_start"] == server.streams[0].marks[0]


@pytest.mark.parametrize("version", VERSIONS)
def test_resumed_connection_counts_from_its_own_request_1(tls_link, peers, version):
    th = tls_link(version)
    acquirer, terminal = peers
    server = acquirer(version)
    first = terminal(version)
    first.send(iso_message("0200", "000015"))
    assert first.recv(2.0) is not None
    time.sleep(0.1)                                                  # the 1.3 tickets reach the client
    session = first.session
    first.close()
    with th.inject("drop", stage="response#1", direction="host->terminal") as fault:
        second = terminal(version, session=session)
        assert second.stream.resumed
        second.send(iso_message("0200", "000016"))
        assert second.recv(1.0) is None
    assert fault.fired[0].detail["stream_start"] == server.streams[1].marks[0]
    assert fault.fired[0].ordinal == 2                               # the link's second response#1

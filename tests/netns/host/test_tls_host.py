"""The emulated terminal and host speak ISO 8583 over TLS when the rig's link says so: a sale through the link
node, encrypted on the wire, the bench CA and (keylog: true) the secrets in the evidence."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from fixtures.devices import close_bench
from harness.core.bench import Bench
from harness.core.cards import PANS
from harness.core.rig import LinkTls
from tests.support.ecr_client import Ecr

pytestmark = pytest.mark.needs_netns


@pytest.fixture
def tls_bench(rig, evidence, topology):
    if topology is None:
        pytest.skip("needs network namespaces")
    made: list[Bench] = []

    def make(version: str) -> Bench:
        links = dict(rig.links)
        links["terminal-host"] = replace(links["terminal-host"], tls=LinkTls(version, keylog=True))
        b = Bench(replace(rig, links=links), evidence, topology)
        made.append(b)
        return b

    yield make
    for b in made:
        close_bench(b)


def events(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_a_sale_over_tls_through_the_link(tls_bench, evidence, version):
    b = tls_bench(version)
    link = b.device("terminal-host")
    term = b.terminal
    sock = b.topology.nodes["till"].connect(term.ecr_address, 5.0)
    with Ecr(term.ecr_address, sock=sock) as ecr:
        d = ecr.converse(ecr.authorization(1234))
    assert d.completed and d.status.amount == 1234
    row = term.journal.last("sale")
    assert b.host.ledger.payment(stan=row["stan"], terminal=term.core.terminal_id).state == "approved"
    seen = link.seen()
    assert seen["terminal->host"]["request#1"] == 1 and seen["host->terminal"]["response#1"] == 1
    assert "0200" not in seen["terminal->host"]                      # the link sees records, not messages
    pcap = link.capture().read_bytes()
    b.close()
    host_tls = [e for e in events(evidence.path / "host.jsonl") if e["event"] == "tls"]
    assert host_tls and host_tls[0]["version"] == f"TLSv{version}"
    assert any(e["event"] == "tls" for e in events(evidence.path / "terminal.jsonl"))
    assert b"0200" not in pcap and b"0210" not in pcap                 # encrypted on the wire
    assert (evidence.path / "tls-bench-ca.pem").read_text().startswith("-----BEGIN CERTIFICATE-----")
    keylog = (evidence.path / "tls-keylog.keys").read_text()
    assert ("CLIENT_TRAFFIC_SECRET_0" if version == "1.3" else "CLIENT_RANDOM") in keylog


@pytest.fixture
def terminating_bench(rig, evidence, topology):
    if topology is None:
        pytest.skip("needs network namespaces")
    links = dict(rig.links)
    links["terminal-host"] = replace(links["terminal-host"], tls=LinkTls("1.3", "terminate", keylog=True))
    b = Bench(replace(rig, links=links), evidence, topology)
    yield b
    close_bench(b)


def test_a_terminating_link_sees_iso8583_and_cuts_the_0210(terminating_bench, evidence):
    b = terminating_bench
    link = b.device("terminal-host")
    term = b.terminal
    sock = b.topology.nodes["till"].connect(term.ecr_address, 5.0)
    with Ecr(term.ecr_address, sock=sock) as ecr:
        d = ecr.converse(ecr.authorization(1234))
        assert d.completed
        with link.inject("drop", stage="0210", direction="host->terminal") as fault:
            d2 = ecr.converse(ecr.authorization(555))
        assert not d2.completed                                        # the approval never reached the terminal
    shot = fault.fired[0]
    assert shot.stage == "0210" and shot.stan is not None             # a plaintext stage, STAN read
    seen = link.seen()
    assert seen["terminal->host"]["0200"] == 2 and seen["host->terminal"]["0210"] == 2
    pcap = link.capture().read_bytes()
    b.close()
    assert b"0200" in pcap and b"******" in pcap                       # the decrypted stream, card number masked
    assert not any(pan.encode() in pcap for pan in PANS)
    host_tls = [e for e in events(evidence.path / "host.jsonl") if e["event"] == "tls"]
    assert host_tls and host_tls[0]["version"] == "TLSv1.3"          # the host was reached over TLS
    assert any(e["event"] == "tls" for e in events(evidence.path / "terminal.jsonl"))


def test_a_reset_on_a_terminating_link_is_taken_and_reaches_the_terminal(terminating_bench, evidence):
    """The forged resets and their liveness probes are on the loopback hop, where the engine's own packets
    would come back to it through OUTPUT unless skipped (fwmark): both resets are proven taken."""
    b = terminating_bench
    link = b.device("terminal-host")
    term = b.terminal
    sock = b.topology.nodes["till"].connect(term.ecr_address, 5.0)
    fault = link.inject("rst", stage="0210", direction="host->terminal", to="both")
    with Ecr(term.ecr_address, sock=sock) as ecr:
        d = ecr.converse(ecr.authorization(777))
    fault.prove(timeout=3.0)
    assert not d.completed
    assert {v.end for v in fault.verified if v.taken} == {"terminal", "host"}
    b.close()
    notes = [e["event"] for e in events(evidence.path / "terminal.jsonl")]
    assert "disconnected" in notes                                   # the terminal's TLS connection was reset

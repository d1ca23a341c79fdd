"""`EmulatedHost` as the bench starts it: loopback, namespaces, a bench address, and as a child process."""

from __future__ import annotations

import json
import socket

import pytest

from harness.core.bench import Bench
from harness.core.evidence import Evidence
from harness.core.masking import find_unmasked_pans
from harness.core.rig import parse_rig
from harness.host import AcquirerHost
from harness.host.emulated import EmulatedHost, HostError
from tests.support.iso_client import Client, sale

RIG = """
name: host-test
timing: {{scale: 0.01}}
network: {{mode: {mode}}}
devices:
  host:
    kind: host
    mode: emulated
    transport: tcp
    address: "{address}"
    options: {options}
"""


def bench_for(tmp_path, mode="namespaces", address="host:5000", options="{}") -> Bench:
    rig = parse_rig(RIG.format(mode=mode, address=address, options=options), tmp_path / "rig.yaml")
    return Bench(rig, Evidence(tmp_path / "evidence"), None)


def test_on_loopback_with_behaviour_from_the_test(tmp_path):
    bench = bench_for(tmp_path)
    try:
        host = bench.host
        assert isinstance(host, EmulatedHost) and isinstance(host, AcquirerHost)
        assert host.address[0] == "127.0.0.1" and host.address[1] != 5000
        host.behave("decline", code="51", amount="12.34", times=1)
        c = Client(host.address)
        assert c.exchange(sale(1, amount=1234))["39"] == "51"
        assert c.exchange(sale(2, amount=1234))["39"] == "00"
        host.behave("silent", terminal="TERM0001")
        c.send(sale(3))
        assert c.recv(timeout=0.2) is None
        host.clear_behaviours()
        assert c.exchange(sale(4))["39"] == "00"
        c.close()
        assert [p.state for p in host.ledger.payments()] == ["declined", "approved", "approved", "approved"]
        assert host.identity()["ledger"].endswith("host-ledger.sqlite")
    finally:
        assert bench.close() == []
    ev = tmp_path / "evidence"
    summary = json.loads((ev / "host-ledger.json").read_text())
    assert summary["totals"]["held"]["count"] == 3
    transcript = (ev / "host.jsonl").read_text()
    assert find_unmasked_pans(transcript) == [] and "411111******1111" in transcript
    assert (ev / "host-ledger.sqlite").exists()


def test_process_mode_behave_kill_and_restart(tmp_path):
    bench = bench_for(tmp_path, options="{process: true}")
    try:
        host = bench.host
        assert host.identity()["runs"] == "process"
        host.behave("decline", code="91", stan="000001")  # a rule crossing into the child process
        c = Client(host.address)
        assert c.exchange(sale(1))["39"] == "91"
        answer = c.exchange(sale(2))
        assert answer["39"] == "00"
        host.kill()
        assert c.closed_by_peer()
        c.close()
        host.restart()
        c = Client(host.address)
        assert c.exchange(sale(2, mti="0201"))["37"] == answer["37"]  # same answer after the crash
        c.close()
        assert host.ledger.payment(stan="000002").state == "approved"
    finally:
        assert bench.close() == []
    assert "0210" in (tmp_path / "evidence" / "host.jsonl").read_text()


def test_bench_mode_binds_to_the_rig_address(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bench = bench_for(tmp_path, mode="bench", address=f"127.0.0.1:{port}")
    try:
        assert bench.host.address == ("127.0.0.1", port)
        assert Client(("127.0.0.1", port)).exchange(sale(1))["39"] == "00"
    finally:
        assert bench.close() == []


def test_bad_options_are_named(tmp_path):
    bench = bench_for(tmp_path, options="{colour: red}")
    with pytest.raises(HostError, match="colour"):
        bench.device("host")
    bench = bench_for(tmp_path, options="{rules: /nonexistent/rules.yaml}")
    with pytest.raises(HostError, match="rules"):
        bench.device("host")


@pytest.mark.needs_netns
def test_in_the_host_namespace(host, topology, bench):
    if topology is None:
        pytest.skip("the rig in force builds no namespaces")
    assert host.address == (topology.ip("host"), 5000)
    client = Client(topology.nodes["terminal"].connect(host.address))
    try:
        assert client.exchange(sale(1))["39"] == "00"
    finally:
        client.close()
    assert host.ledger.payment(stan="000001").state == "approved"


def test_rules_file_relative_to_the_rig(tmp_path):
    (tmp_path / "rules.yaml").write_text("- match: {amount: 4321}\n  behaviour: {code: '57'}\n")
    bench = bench_for(tmp_path, options="{rules: rules.yaml}")
    try:
        c = Client(bench.host.address)
        assert c.exchange(sale(1, amount=4321))["39"] == "57"
        c.close()
    finally:
        assert bench.close() == []

"""`EmulatedHost` as the bench starts it, in this process: loopback, a bench address, options and rules files.

As a child process and in a namespace: tests/component/host."""

from __future__ import annotations

import json
import socket

import pytest

from harness.core.masking import find_unmasked_pans
from harness.host import AcquirerHost
from harness.host.emulated import EmulatedHost, HostError
from tests.support.iso_client import Client, sale
from tests.support.iso_client import host_bench as bench_for


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


def test_rules_file_relative_to_the_rig(tmp_path):
    (tmp_path / "rules.yaml").write_text("- match: {amount: 4321}\n  behaviour: {code: '57'}\n")
    bench = bench_for(tmp_path, options="{rules: rules.yaml}")
    try:
        c = Client(bench.host.address)
        assert c.exchange(sale(1, amount=4321))["39"] == "57"
        c.close()
    finally:
        assert bench.close() == []

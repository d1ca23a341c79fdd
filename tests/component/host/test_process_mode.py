"""`EmulatedHost` in process mode (`options.process: true`): `posrig host serve` supervised by core.process.Child."""

from __future__ import annotations

import socket

import pytest

from harness.host.emulated import HostError
from tests.support.iso_client import Client, sale
from tests.support.iso_client import host_bench as bench_for


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


def test_process_that_cannot_start_says_why(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        bench = bench_for(tmp_path, mode="bench", address=f"127.0.0.1:{port}", options="{process: true}")
        try:
            with pytest.raises(HostError, match=f"cannot listen on 127.0.0.1:{port}"):
                bench.device("host")
        finally:
            assert bench.close() == []
    log = tmp_path / "evidence" / "host-serve.log"
    assert "cannot listen" in log.read_text()

"""The control socket of `posrig printer serve`, in process: one line in, one JSON line out, garbage survived."""

from __future__ import annotations

import json
import socket
import time

import pytest

from harness.printer.control import ControlServer, send_control
from harness.printer.core import PrinterCore


@pytest.fixture
def control():
    core = PrinterCore()
    server = ControlServer(core, socket.create_server(("127.0.0.1", 0)), timeout=1.0)
    server.start()
    yield server
    server.close()
    core.close()


def test_fault_status_and_receipts(control):
    assert send_control(control.address, "fault paper_out")["status"]["faults"] == ["paper_out"]
    control.core.receive(b"HELD 1.00\n\x1dV\x00")
    assert send_control(control.address, "status")["held_bytes"] == 13
    assert send_control(control.address, "discard-held") == {"ok": True, "discarded": 13}
    assert send_control(control.address, "fault none")["status"]["online"] is True
    control.core.receive(b"PRINTED 2.00\n\x1dV\x00")
    assert send_control(control.address, "receipts")["receipts"][0]["lines"] == ["PRINTED 2.00"]


def test_bad_commands_get_an_error_that_says_what_to_use(control):
    assert "known faults" in send_control(control.address, "fault on_fire")["error"]
    assert "use: fault NAME|none" in send_control(control.address, "launch")["error"]
    assert "empty command" in send_control(control.address, " ")["error"]


def test_garbage_gets_answers_and_the_socket_keeps_serving(control):
    host, port = control.address.split(":")
    with socket.create_connection((host, int(port)), timeout=2) as s:
        s.sendall(b"\xff\xfe\x00\x9c garbage\nstatus\n")
        s.shutdown(socket.SHUT_WR)
        answers = [json.loads(line) for line in s.makefile("rb")]
    assert [a["ok"] for a in answers] == [False, True] and "unknown command" in answers[0]["error"]
    assert send_control(control.address, "status")["ok"] is True        # the next client is served


def test_a_silent_client_does_not_block_the_next_one_forever(control):
    host, port = control.address.split(":")
    with socket.create_connection((host, int(port)), timeout=2):
        # one client at a time: this one says nothing and is dropped after the control timeout (1 s here)
        assert send_control(control.address, "status", timeout=5)["ok"] is True
    assert control.connections == 2


def test_close_ends_a_connected_client(control):
    host, port = control.address.split(":")
    with socket.create_connection((host, int(port)), timeout=2) as s:
        deadline = time.monotonic() + 5
        while control.connections < 1:                  # accepted: its handler waits for a line
            assert time.monotonic() < deadline, "the control socket never accepted"
            time.sleep(0.01)
        control.close()
        assert s.recv(16) == b""
    with pytest.raises(OSError):
        send_control(control.address, "status", timeout=1)

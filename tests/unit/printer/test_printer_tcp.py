"""Raw TCP (port 9100 style): clients one after another, partial writes, nothing sent unasked but ASB."""

from __future__ import annotations

import socket
import time

import pytest


def connect(served) -> socket.socket:
    host, port = served.server.address.split(":")
    s = socket.create_connection((host, int(port)), timeout=2)
    s.settimeout(0.3)
    return s


def test_one_byte_writes_make_the_same_receipt(serve):
    served = serve("tcp")
    data = b"\x1b@\x1bE\x01Bold 1.50\n\x1bE\x00plain\n\x1dv0\x00\x01\x00\x02\x00\xf0\x0f\x1dV\x01"
    with connect(served) as s:
        for i in range(len(data)):
            s.sendall(data[i:i + 1])
        r = served.core.wait_for_receipt(5)
    assert r.lines == ["Bold 1.50", "plain"] and r.images[0].bits == b"\xf0\x0f" and r.cut == "partial"
    assert bytes(served.core.stream) == data


def test_clients_are_served_one_after_another(serve):
    served = serve("tcp")
    first, second = connect(served), connect(served)     # the second waits in the listen backlog
    second.sendall(b"SECOND\n\x1dV\x00")
    first.sendall(b"FIRST\n")
    first.sendall(b"\x1dV\x00")
    assert served.core.wait_for_receipt(5).lines == ["FIRST"]
    with pytest.raises(TimeoutError):
        served.core.wait_for_receipt(0.2)                 # not before the first client hangs up
    first.close()
    assert served.core.wait_for_receipt(5).lines == ["SECOND"]
    second.close()


def test_nothing_is_sent_unasked_except_asb(serve):
    served = serve("tcp")
    with connect(served) as s:
        s.sendall(b"text\n")
        served.core.set_fault("cover_open")
        with pytest.raises(TimeoutError):
            s.recv(16)
        served.core.set_fault(None)
        s.sendall(b"\x1da\x0f")                            # enable ASB: current status at once
        assert _recv(s, 4) == bytes([0x10, 0, 0, 0])
        served.core.set_fault("cover_open")                # and on every change
        assert _recv(s, 4) == bytes([0x38, 0, 0, 0])
        s.sendall(b"\x1da\x00")                            # held: not processed while the cover is open
        _until(lambda: served.core.stream.endswith(b"\x1da\x00"))
        served.core.set_fault(None)
        assert _recv(s, 4) == bytes([0x10, 0, 0, 0])       # so this change is still reported, then ASB off
        served.core.set_fault("paper_out")
        with pytest.raises(TimeoutError):
            s.recv(16)


def _until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def _recv(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        assert chunk, "printer closed the connection"
        data += chunk
    return data


def test_garbage_does_not_stop_the_port(serve):
    served = serve("tcp")
    with connect(served) as s:
        s.sendall(b"\xff\x00\x07" + b"\x1b\xf0" + b"\x1d(z\x02\x00ab" + b"\x1d\x01")
        s.sendall(b"\x1b@OK 1.00\n\x1dV\x00")
        r = served.core.wait_for_receipt(5)
    assert r.lines[-1] == "OK 1.00" and r.cut == "full"
    assert {e.kind for e in r.events} >= {"Unknown"}
    with connect(served) as s:                             # and the next client is served
        s.sendall(b"NEXT\n\x1dV\x00")
        assert served.core.wait_for_receipt(5).lines == ["NEXT"]
    assert served.server.connections == 2


def test_close_ends_a_connected_idle_client(serve):
    served = serve("tcp")
    with connect(served) as s:
        s.sendall(b"\x10\x04\x01")
        assert _recv(s, 1) == b"\x12"                      # accepted and served
        served.server.close()
        s.settimeout(2)
        assert s.recv(16) == b""

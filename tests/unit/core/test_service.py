"""The one TCP service base: concurrent or one client at a time, bad handlers do not stop it, close is bounded."""

import socket
import threading

import pytest

from harness.core.service import TcpService


def echo(conn, peer):
    while data := conn.recv(1024):
        conn.sendall(data)


@pytest.fixture
def serve():
    made = []

    def make(handler, **kw):
        service = TcpService(socket.create_server(("127.0.0.1", 0)), handler, name="test", **kw)
        service.start()
        made.append(service)
        return service

    yield make
    for s in made:
        s.close()


def _talk(address, data=b"hi", timeout=2.0):
    with socket.create_connection(address, timeout=timeout) as c:
        c.sendall(data)
        return c.recv(64)


def test_concurrent_clients_are_served_at_once(serve):
    service = serve(echo)
    first = socket.create_connection(service.address, timeout=2)
    assert _talk(service.address, b"second") == b"second"          # while the first is still connected
    first.close()
    assert service.connections == 2


def test_one_at_a_time_serves_in_order_of_arrival(serve):
    service = serve(echo, concurrent=False)
    first = socket.create_connection(service.address, timeout=2)
    first.sendall(b"1")
    assert first.recv(8) == b"1"
    second = socket.create_connection(service.address, timeout=0.3)
    second.sendall(b"2")
    with pytest.raises(TimeoutError):
        second.recv(8)                                              # waits its turn
    first.close()
    second.settimeout(2)
    assert second.recv(8) == b"2"
    second.close()


def test_a_failing_handler_does_not_stop_the_service(serve):
    calls = []

    def flaky(conn, peer):
        calls.append(peer)
        if len(calls) == 1:
            raise ValueError("garbage from this client")
        echo(conn, peer)

    service = serve(flaky)
    with socket.create_connection(service.address, timeout=2) as c:
        c.sendall(b"x")
        assert c.recv(8) == b""                                     # that connection is closed
    assert _talk(service.address) == b"hi"                          # the next one is served


def test_close_shuts_open_connections_and_joins(serve):
    started = threading.Event()

    def holder(conn, peer):
        started.set()
        echo(conn, peer)

    service = serve(holder)
    client = socket.create_connection(service.address, timeout=2)
    assert started.wait(2)
    service.close(timeout=2)
    assert client.recv(8) == b""                                    # shut down from the service side
    with pytest.raises(OSError):
        socket.create_connection(service.address, timeout=0.5)

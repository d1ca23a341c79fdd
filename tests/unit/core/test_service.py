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

    def make(handler, backlog=None, **kw):
        service = TcpService(socket.create_server(("127.0.0.1", 0), backlog=backlog), handler, name="test", **kw)
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


def _raise_fd_limit(need: int) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            pytest.skip(f"needs {need} file descriptors; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def test_over_max_connections_a_client_is_refused_at_once_and_the_service_goes_on(serve):
    said = []
    service = serve(echo, max_connections=2, refuse=lambda conn, why: (said.append(why), conn.sendall(b"busy\n")))
    held = [socket.create_connection(service.address, timeout=2) for _ in range(2)]
    for c in held:                                                  # both are being served (echoed)
        c.sendall(b"x")
        assert c.recv(8) == b"x"
    with socket.create_connection(service.address, timeout=2) as third:
        assert third.recv(64) == b"busy\n" and third.recv(64) == b""   # answered and closed, not left hanging
    assert service.refused == 1 and "2 connections at once" in said[0]
    held.pop().close()
    deadline = threading.Event()
    while service.active > 1 and not deadline.wait(0.01):
        pass
    assert _talk(service.address) == b"hi"                          # a slot freed: served again
    for c in held:
        c.close()


def test_a_silent_connection_is_ended_after_the_idle_timeout(serve):
    service = serve(echo, idle_timeout=0.2)
    with socket.create_connection(service.address, timeout=5) as c:
        assert c.recv(8) == b""                                     # the service hung up on it
    assert _talk(service.address) == b"hi"


def test_900_silent_connections_take_no_thread_and_a_real_client_is_still_served(serve):
    _raise_fd_limit(4096)
    # a backlog for the burst: this test's own connects hold the GIL, the accept thread waits for it
    service = serve(echo, wait_for_data=True, max_waiting=1000, backlog=1024)
    before = threading.active_count()
    idle = [socket.create_connection(service.address, timeout=5) for _ in range(900)]
    try:
        assert _talk(service.address, b"real") == b"real"
        assert threading.active_count() <= before + 2               # not 900 threads: they wait without one
    finally:
        for c in idle:
            c.close()


def test_a_full_waiting_room_closes_its_oldest_connection(serve):
    service = serve(echo, wait_for_data=True, max_waiting=3)
    conns = [socket.create_connection(service.address, timeout=2) for _ in range(4)]
    assert conns[0].recv(8) == b""                                  # the oldest made room for the fourth
    conns[3].sendall(b"4")
    assert conns[3].recv(8) == b"4"
    assert service.dropped == 1
    for c in conns:
        c.close()

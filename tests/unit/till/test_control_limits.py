"""The reference till's HTTP control API has limits: idle connections cost no thread, bodies are bounded, bad
lengths and slow requests are answered in JSON, requests over the cap get 503; the till goes on serving."""

from __future__ import annotations

import json
import resource
import socket
import threading

import pytest

from harness.reference_till import app
from harness.reference_till.journal import Journal
from harness.reference_till.register import Register


@pytest.fixture
def control(tmp_path):
    """The control API of a till (never started: no terminal is needed to be refused) on a free port."""
    journal = Journal(tmp_path / "till.sqlite")
    register = Register(ecr=("127.0.0.1", 1), printer=("127.0.0.1", 1), profile_name="correct", journal=journal)
    made = []

    def make(backlog=None):
        service = app.control_service(socket.create_server(("127.0.0.1", 0), backlog=backlog), register)
        service.start()
        made.append(service)
        return service

    yield make
    for service in made:
        service.close()
    journal.close()


def _ask(address, raw: bytes, timeout: float = 5.0) -> tuple[int, dict]:
    """Send raw request bytes; the status and JSON body of the answer (the connection is then closed)."""
    with socket.create_connection(address, timeout=timeout) as c:
        c.sendall(raw)
        data = b""
        while chunk := c.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


HEALTH = b"GET /health HTTP/1.0\r\n\r\n"


def test_900_idle_connections_take_no_thread_and_health_is_still_answered(control):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:
        if hard != resource.RLIM_INFINITY and hard < 4096:
            pytest.skip(f"needs 4096 file descriptors; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (4096, hard))
    service = control(backlog=1024)
    before = threading.active_count()
    idle = [socket.create_connection(service.address, timeout=5) for _ in range(900)]
    try:
        threads = threading.active_count()
        status, body = _ask(service.address, HEALTH)
        assert status == 200 and body["ok"] is True
        assert threads <= before + 2                                # was one thread per connection: 902
    finally:
        for c in idle:
            c.close()


def test_a_400_mb_body_is_refused_without_being_read(control):
    service = control()
    head = b"POST /sale HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: 419430400\r\n\r\n"
    status, body = _ask(service.address, head + b'{"basket": [')     # the rest never comes: it is not awaited
    assert status == 413 and "419430400 bytes" in body["error"] and str(app.MAX_BODY) in body["error"]
    assert _ask(service.address, HEALTH)[0] == 200


@pytest.mark.parametrize("length", ["-1", "many", "1e9"])
def test_a_bad_content_length_is_answered_400_at_once(control, length):
    service = control()
    raw = f"POST /sale HTTP/1.0\r\nContent-Length: {length}\r\n\r\n".encode()
    status, body = _ask(service.address, raw)
    assert status == 400 and f"Content-Length {length!r}" in body["error"]


def test_a_body_that_stops_coming_is_answered_408(control, monkeypatch):
    monkeypatch.setattr(app.ControlHandler, "timeout", 0.3)
    service = control()
    status, body = _ask(service.address, b"POST /sale HTTP/1.0\r\nContent-Length: 50\r\n\r\n{\"bas")
    assert status == 408 and "50-byte body did not arrive within 0.3 s" in body["error"]


def test_requests_over_the_cap_get_503_and_the_till_serves_again_after(control, monkeypatch):
    monkeypatch.setattr(app, "MAX_CONNECTIONS", 2)
    service = control()
    slow = [socket.create_connection(service.address, timeout=5) for _ in range(2)]
    for c in slow:
        c.sendall(b"GET /health HTTP/1.0\r\n")                       # half a request: each holds a handler
    while service.active < 2:
        threading.Event().wait(0.01)
    status, body = _ask(service.address, HEALTH)
    assert status == 503 and "the till is busy" in body["error"] and "2 connections at once" in body["error"]
    for c in slow:
        c.sendall(b"\r\n")
        assert c.makefile("rb").read().startswith(b"HTTP/1.0 200")  # the held ones are answered too
        c.close()
    while service.active:
        threading.Event().wait(0.01)
    assert _ask(service.address, HEALTH)[0] == 200


def test_an_unknown_method_is_answered_in_json(control):
    status, body = _ask(control().address, b"DELETE /journal HTTP/1.0\r\n\r\n")
    assert status == 501 and "DELETE" in body["error"]



def test_health_says_busy_while_a_sale_or_recovery_holds_the_till(tmp_path):
    """posrig keeps a warm till for the next bench only when it is idle: a sale still running there would refuse
    the next scenario's sale (409)."""
    journal = Journal(tmp_path / "till.sqlite")
    register = Register(ecr=("127.0.0.1", 1), printer=("127.0.0.1", 1), profile_name="correct", journal=journal)
    service = app.control_service(socket.create_server(("127.0.0.1", 0)), register)
    service.start()
    try:
        assert _ask(service.address, HEALTH) == (200, {**_ask(service.address, HEALTH)[1], "busy": False})
        with register._sale_lock:                     # a sale (or the resolution of open ones) is running
            status, body = _ask(service.address, HEALTH)
        assert status == 200 and body["busy"] is True
        assert _ask(service.address, HEALTH)[1]["busy"] is False
    finally:
        service.close()
        journal.close()

"""The terminal's host client after a timeout: the connection is suspect (a stalled stream holds every later message
behind the lost bytes), so it hangs up and the next message (the reversal, a repeat) goes on a fresh connection."""

from __future__ import annotations

import socket
import threading

import pytest

from harness.protocols import iso8583
from harness.terminal.acquirer import AcquirerClient, HostTimeout


def _read_frame(conn: socket.socket) -> dict:
    head = conn.recv(2)
    body = b""
    while len(body) < int.from_bytes(head, "big"):
        body += conn.recv(4096)
    return iso8583.decode(body)


def test_after_a_timeout_the_next_request_goes_on_a_new_connection():
    server = socket.create_server(("127.0.0.1", 0))
    seen: list[str] = []

    def host() -> None:
        silent, _ = server.accept()                  # the first connection: reads, never answers
        seen.append(_read_frame(silent)["t"])
        fresh, _ = server.accept()                   # the second: answers
        request = _read_frame(fresh)
        seen.append(request["t"])
        fresh.sendall(iso8583.encode_frame({**request, "t": "0430", "39": "00"}))
        fresh.close()
        silent.close()

    worker = threading.Thread(target=host, daemon=True)
    worker.start()
    client = AcquirerClient(server.getsockname(), timeout=0.3)
    try:
        sale = {"t": "0200", "3": "000000", "4": "000000000488", "11": "000007", "41": "29001234", "49": "978"}
        with pytest.raises(HostTimeout):
            client.exchange(sale)
        reversal = {**sale, "t": "0420", "39": "68"}
        assert client.exchange(reversal, timeout=3.0)["t"] == "0430"   # a stalled first connection would hold it
    finally:
        client.close()
        worker.join(5)
        server.close()
    assert seen == ["0200", "0420"]

"""How a client reaches the emulated printer. Each transport feeds the same `PrinterCore`:
`tcp` (raw port 9100), `serial` (a pty whose slave path a client opens as a tty), `usbip` (a USB printer-class
device served over USB/IP).

Everything of the printer that listens on TCP (the raw port, USB/IP, the control socket, the real-printer tap)
is a `TcpEndpoint`: a `harness.core.service.TcpService` plus the printer's "HOST:PORT" address form.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

from harness.core.service import Handler, TcpService


class TcpEndpoint:
    """A printer-side TCP listener served by `TcpService` (the one accept loop); `address` is "HOST:PORT"."""

    def __init__(self, listener: socket.socket, handler: Handler, *, name: str, concurrent: bool):
        self.service = TcpService(listener, handler, name=name, concurrent=concurrent)

    @property
    def address(self) -> str:
        host, port = self.service.address
        return f"{host}:{port}"

    @property
    def connections(self) -> int:
        """Clients accepted so far."""
        return self.service.connections

    def start(self) -> None:
        self.service.start()

    def close(self, timeout: float = 2.0) -> None:
        """Stop accepting, shut open connections down, wait for their handlers (bounded)."""
        self.service.close(timeout)


def received(conn: socket.socket, service: TcpService, size: int = 65536) -> Iterator[bytes]:
    """The chunks a client sends on `conn`, until it hangs up, the connection fails or `service` closes."""
    while not service.closing:
        try:
            data = conn.recv(size)
        except OSError:
            return
        if not data:
            return
        yield data

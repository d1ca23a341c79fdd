"""The TCP service base every emulated device serves with (printer ports, acquirer host, terminal ECR port, ...).

A service is given an already-listening socket (made inside the device's network namespace, on a bench NIC or on
loopback) and a function that serves one connection. `socketserver` accepts; each connection gets its own thread
(`concurrent=True`) or waits its turn (`concurrent=False`: one client at a time, in order of arrival, as a raw
TCP printer port does). `close()` stops accepting, shuts every open connection down and waits, bounded.

>>> def echo(conn, peer):
...     while data := conn.recv(1024):
...         conn.sendall(data)
>>> service = TcpService(socket.create_server(("127.0.0.1", 0)), echo, name="echo")    # doctest: +SKIP
>>> service.start(); service.address                                                   # doctest: +SKIP
('127.0.0.1', 40123)
>>> service.close()                                                                    # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

Handler = Callable[[socket.socket, tuple], None]
POLL = 0.05                     # seconds between checks for close() in the accept loop


class _Server(socketserver.TCPServer):
    """A TCPServer around a socket someone else bound (any namespace)."""

    def __init__(self, listener: socket.socket, service: TcpService):
        super().__init__(listener.getsockname()[:2], socketserver.BaseRequestHandler, bind_and_activate=False)
        self.socket.close()
        self.socket = listener
        self.service = service

    def finish_request(self, request: socket.socket, client_address: tuple) -> None:
        self.service._serve(request, client_address)

    def handle_error(self, request: socket.socket, client_address: tuple) -> None:
        log.exception("%s: the connection from %s failed; the service goes on", self.service.name,
                      client_address)


class _ThreadingServer(socketserver.ThreadingMixIn, _Server):
    daemon_threads = True
    block_on_close = False


class TcpService:
    """Serve connections on `listener` with `handler(conn, peer)`; see the module docstring."""

    def __init__(self, listener: socket.socket, handler: Handler, *, name: str = "service",
                 concurrent: bool = True, nodelay: bool = True):
        self.listener = listener
        self.handler = handler
        self.name = name
        self.nodelay = nodelay
        self.connections = 0                                     # accepted so far
        self._open: set[socket.socket] = set()
        self._workers: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = (_ThreadingServer if concurrent else _Server)(listener, self)
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.listener.getsockname()[:2]
        return host, port

    @property
    def closing(self) -> bool:
        """True once `close()` was called: handlers should stop."""
        return self._closing.is_set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": POLL},
                                        name=f"{self.name}-accept", daemon=True)
        self._thread.start()

    def _serve(self, conn: socket.socket, peer: tuple) -> None:
        with self._lock:
            if self._closing.is_set():
                return
            self.connections += 1
            self._open.add(conn)
            self._workers.add(threading.current_thread())
        try:
            conn.settimeout(None)
            if self.nodelay:
                with contextlib.suppress(OSError):
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.handler(conn, peer)
        finally:
            with self._lock:
                self._open.discard(conn)
                self._workers.discard(threading.current_thread())

    def close(self, timeout: float = 2.0) -> None:
        """Stop accepting, shut every open connection down, wait for the handlers (at most `timeout`)."""
        if self._closing.is_set():
            return
        self._closing.set()
        with self._lock:
            open_now, workers = list(self._open), list(self._workers)
        for conn in open_now:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            stopper = threading.Thread(target=self._server.shutdown, daemon=True)
            stopper.start()
            stopper.join(timeout)
            self._thread.join(timeout)
        with contextlib.suppress(OSError):
            self._server.server_close()
        me = threading.current_thread()
        for worker in workers:
            if worker is not me:
                worker.join(timeout)

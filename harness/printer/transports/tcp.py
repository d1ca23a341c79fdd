"""Raw TCP printing (port 9100 style): one client at a time, in order of arrival; nothing sent unasked but ASB."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading

from harness.printer.core import PrinterCore

log = logging.getLogger(__name__)


class TcpPrinterServer:
    """Serve `core` on an already bound listening socket (so it can live in any network namespace).

    >>> srv = TcpPrinterServer(core, socket.create_server(("127.0.0.1", 0))); srv.start(); srv.address
    '127.0.0.1:40123'
    """

    def __init__(self, core: PrinterCore, listener: socket.socket, poll: float = 0.1):
        self.core = core
        self.listener = listener
        self.poll = poll
        self.listener.settimeout(poll)
        self._stop = threading.Event()
        self._client: socket.socket | None = None
        self._send_lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name="printer-tcp", daemon=True)
        self.connections = 0

    @property
    def address(self) -> str:
        host, port = self.listener.getsockname()[:2]
        return f"{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            self.connections += 1
            log.debug("printer: client %s connected", peer)
            self._client = conn
            try:
                self._handle(conn)
            finally:
                self._client = None
                with contextlib.suppress(OSError):
                    conn.close()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(self.poll)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def reply(data: bytes) -> None:
            with self._send_lock:
                conn.sendall(data)

        while not self._stop.is_set():
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            self.core.receive(data, reply)

    def close(self, timeout: float = 2.0) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self.listener.close()
        client = self._client
        if client is not None:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

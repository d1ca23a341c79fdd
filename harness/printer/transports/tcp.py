"""Raw TCP printing (port 9100 style): one client at a time, in order of arrival; nothing sent unasked but
ASB."""

from __future__ import annotations

import logging
import socket
import struct
import threading

from harness.printer.core import PowerOff, PrinterCore
from harness.printer.transports import TcpEndpoint, received

log = logging.getLogger(__name__)


class TcpPrinterServer(TcpEndpoint):
    """Serve `core` on an already bound listening socket (so it can live in any network namespace).

    >>> srv = TcpPrinterServer(core, socket.create_server(("127.0.0.1", 0))); srv.start(); srv.address  # doctest: +SKIP
    '127.0.0.1:40123'
    """

    def __init__(self, core: PrinterCore, listener: socket.socket):
        super().__init__(listener, self._handle, name="printer-tcp", concurrent=False)
        self.core = core

    def _handle(self, conn: socket.socket, peer: tuple) -> None:
        log.debug("printer: client %s connected", peer)
        send_lock = threading.Lock()

        def reply(data: bytes) -> None:
            with send_lock:
                conn.sendall(data)

        for data in received(conn, self.service):
            try:
                self.core.receive(data, reply)
            except PowerOff:                         # switched off: the client's connection is gone (reset)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return

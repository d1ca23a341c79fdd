"""Terminating TLS in the link node (a link's `tls: {mode: terminate}`): the engine sees plaintext stages.

The terminal's connection to the host is redirected (iptables nat REDIRECT in the link namespace) to a front
proxy that completes the TLS handshake as the host, with a certificate of the bench CA the terminal trusts. The
front opens a plaintext hop across the link node's loopback (HOP_CLIENT -> HOP_SERVER, the link's own port) to a
back proxy, which re-originates TLS to the real host. The link engine queues the hop (OUTPUT rules), so faults
hit ISO 8583 stages by MTI and STAN as on a plaintext link, and its capture is the decrypted stream with the faults
marked and card numbers masked.

What happens on the hop reaches the ends: a hop connection that cannot be opened resets the terminal's (it sees
the TLS handshake fail: nothing was sent); a reset hop socket resets its outer connection (SO_LINGER 0); a
closed one closes it. The proxies' TLS contexts are the emulated host's (`harness.host.tls.server_offer`): the
front presents the host's certificate, the back trusts the host's CA and resumes its session.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import struct
import threading
from collections.abc import Callable
from typing import Any

from harness.host.tls import TlsStream

log = logging.getLogger(__name__)

HOP_CLIENT, HOP_SERVER = "127.0.0.2", "127.0.0.3"    # the plaintext hop's ends, on the link node's loopback
FRONT_PORT = 15443                                    # where redirected terminal connections land
HANDSHAKE_TIMEOUT = 5.0

Contexts = Callable[[], "tuple[ssl.SSLContext, ssl.SSLContext] | None"]   # () -> (server side, client side)


def reset(sock: Any) -> None:
    """Close with a RST (SO_LINGER 0), as a crashed peer would."""
    raw = getattr(sock, "sock", sock)
    with contextlib.suppress(OSError):
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        raw.close()


class TlsTerminator:
    """The front and back proxies of one terminating link, in the link namespace `ns`."""

    def __init__(self, ns: Any, host: tuple[str, int], contexts: Contexts, connect_timeout: float = 5.0,
                 notes: Callable[..., None] | None = None):
        self.ns = ns
        self.host = host
        self.contexts = contexts
        self.connect_timeout = connect_timeout
        self.notes = notes or (lambda event, **fields: None)
        self.hop = (HOP_SERVER, host[1])
        self._stop = threading.Event()
        self._open: set[Any] = set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._session: ssl.SSLSession | None = None
        self.front = ns.listen(("0.0.0.0", FRONT_PORT), backlog=64)
        self.back = ns.listen(self.hop, backlog=64)

    def start(self) -> None:
        for listener, serve in ((self.front, self._front), (self.back, self._back)):
            listener.settimeout(0.2)
            self._spawn(self._accept, listener, serve)

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        t = threading.Thread(target=target, args=args, daemon=True, name=f"tls-terminator-{target.__name__}")
        self._threads.append(t)
        t.start()

    def _accept(self, listener: socket.socket, serve: Callable[[socket.socket], None]) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._keep(conn)
            self._spawn(serve, conn)

    def _keep(self, sock: Any) -> None:
        with self._lock:
            self._open.add(sock)

    def _front(self, conn: socket.socket) -> None:
        """The terminal's side: open the hop first (its SYN is the link's `connect` stage), then the handshake."""
        hop = self.ns.socket()
        self._keep(hop)
        try:
            hop.bind((HOP_CLIENT, 0))
            hop.settimeout(self.connect_timeout)
            hop.connect(self.hop)
            hop.settimeout(None)
            hop.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            self.notes("hop_failed", error=str(exc))
            reset(conn)
            reset(hop)
            return
        contexts = self.contexts()
        if contexts is None:
            self.notes("no_tls_context", error="no emulated host offers TLS for " + f"{self.host[0]}:{self.host[1]}")
            reset(conn)
            reset(hop)
            return
        tls = TlsStream(conn, contexts[0], server_side=True)
        try:
            tls.handshake(HANDSHAKE_TIMEOUT)
        except (OSError, ValueError) as exc:
            self.notes("front_handshake_failed", error=str(exc))
            reset(conn)
            reset(hop)
            return
        self._relay(tls, hop)

    def _back(self, hop: socket.socket) -> None:
        """The host's side: TLS to the real host, resuming the last session."""
        contexts = self.contexts()
        try:
            if contexts is None:
                raise ConnectionRefusedError("no emulated host offers TLS for this address")
            raw = self.ns.connect(self.host, self.connect_timeout)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._keep(raw)
            tls = TlsStream(raw, contexts[1], server_side=False, server_hostname=self.host[0],
                            session=self._session)
            tls.handshake(HANDSHAKE_TIMEOUT)
        except (OSError, ValueError) as exc:
            self.notes("back_failed", error=str(exc))
            reset(hop)
            return
        self._relay(hop, tls, on_end=lambda: setattr(self, "_session", tls.session or self._session))

    def _relay(self, a: Any, b: Any, on_end: Callable[[], None] | None = None) -> None:
        """Pump both ways until both directions ended; a reset on either side resets the other."""
        done = threading.Event()

        def pump(src: Any, dst: Any) -> None:
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        with contextlib.suppress(OSError):
                            getattr(dst, "sock", dst).shutdown(socket.SHUT_WR)
                        break
                    dst.sendall(data)
            except OSError:
                reset(dst)
                reset(src)
            finally:
                if done.is_set() and on_end is not None:
                    on_end()
                done.set()

        self._spawn(pump, b, a)
        pump(a, b)

    def close(self) -> None:
        self._stop.set()
        for listener in (self.front, self.back):
            with contextlib.suppress(OSError):
                listener.close()
        with self._lock:
            socks, self._open = list(self._open), set()
        for s in socks:
            reset(s)
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(1.0)

"""The TCP service base every server of posrig runs on (printer ports, acquirer host, terminal ECR port, the
reference till's HTTP control API, ...).

A service is given an already-listening socket (made inside the device's network namespace, on a bench NIC or on
loopback) and a function that serves one connection. One accept thread accepts; each connection gets its own
thread (`concurrent=True`) or waits its turn (`concurrent=False`: one client at a time, in order of arrival, as a
raw TCP printer port does). `close()` stops accepting, shuts every open connection down and waits, bounded.

Limits, so that a misbehaving client cannot exhaust the process:

* `max_connections`: connections served at once (one thread each). Over it a new connection is refused at
  once: `refuse(conn, why)` may answer it (the till says 503), then it is closed.
* `idle_timeout`: a read (or write) that waits longer than this ends the connection (the handler's `recv`
  raises `TimeoutError`, an `OSError`).
* `wait_for_data=True`: a connection gets a thread only once the client has sent something; until then it
  waits in a waiting room of at most `max_waiting` sockets (when full, the oldest is closed) for at most
  `idle_timeout`. Idle connections then cost a file descriptor, never a thread.

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
import selectors
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

log = logging.getLogger(__name__)

Handler = Callable[[socket.socket, tuple], None]
Refusal = Callable[[socket.socket, str], None]
POLL = 0.05                     # seconds between checks for close() in the accept loop
MAX_CONNECTIONS = 128           # connections served at once (a bench drives a few)
IDLE_TIMEOUT = 600.0            # seconds a connection may stay silent before it is ended
MAX_WAITING = 256               # wait_for_data: silent connections kept before the oldest is closed
ACCEPT_BURST = 64               # connections accepted per wake-up of the accept thread
REFUSE_TIMEOUT = 0.5            # seconds a refusal may take to write its answer


class TcpService:
    """Serve connections on `listener` with `handler(conn, peer)`; see the module docstring."""

    def __init__(self, listener: socket.socket, handler: Handler, *, name: str = "service",
                 concurrent: bool = True, nodelay: bool = True, max_connections: int = MAX_CONNECTIONS,
                 idle_timeout: float | None = IDLE_TIMEOUT, wait_for_data: bool = False,
                 max_waiting: int = MAX_WAITING, refuse: Refusal | None = None):
        if max_connections < 1 or max_waiting < 1:
            raise ValueError(f"{name}: max_connections and max_waiting must be at least 1")
        self.listener = listener
        self.handler = handler
        self.name = name
        self.concurrent = concurrent
        self.nodelay = nodelay
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.wait_for_data = wait_for_data
        self.max_waiting = max_waiting
        self.refuse = refuse
        self.connections = 0                                     # served so far
        self.refused = 0                                         # refused over max_connections
        self.dropped = 0                                         # silent ones closed from the waiting room
        self._open: set[socket.socket] = set()
        self._workers: set[threading.Thread] = set()
        self._waiting: OrderedDict[socket.socket, tuple[tuple, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.listener.getsockname()[:2]
        return host, port

    @property
    def closing(self) -> bool:
        """True once `close()` was called: handlers should stop."""
        return self._closing.is_set()

    @property
    def active(self) -> int:
        """Connections being served now."""
        with self._lock:
            return len(self._open)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._accept_loop, name=f"{self.name}-accept", daemon=True)
        self._thread.start()

    # -- the accept thread ---------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.setblocking(False)                      # accept() until none is left
        with selectors.DefaultSelector() as sel:
            sel.register(self.listener, selectors.EVENT_READ)
            while not self._closing.is_set():
                try:
                    events = sel.select(POLL)
                except OSError:                                   # the listener was closed under us
                    break
                for key, _ in events:
                    if key.fileobj is self.listener:
                        self._accept(sel)
                    else:                                         # a waiting client spoke (or hung up)
                        conn = key.fileobj
                        sel.unregister(conn)
                        peer, _ = self._waiting.pop(conn)
                        self._dispatch(conn, peer)
                self._expire(sel)
            for conn in list(self._waiting):
                self._drop(sel, conn)

    def _accept(self, sel: selectors.BaseSelector) -> None:
        """Accept what is there (a burst at once, so the listen backlog does not overflow)."""
        for _ in range(ACCEPT_BURST if self.concurrent else 1):
            try:
                conn, peer = self.listener.accept()
            except OSError:                                       # none left, or the client reset first
                return
            conn.setblocking(True)
            self._admit(sel, conn, peer)
            if self._closing.is_set():
                return

    def _admit(self, sel: selectors.BaseSelector, conn: socket.socket, peer: tuple) -> None:
        if not self.wait_for_data:
            self._dispatch(conn, peer)
            return
        if len(self._waiting) >= self.max_waiting:
            self._drop(sel, next(iter(self._waiting)))
            self.dropped += 1
            log.warning("%s: more than %d silent connections; closed the oldest", self.name, self.max_waiting)
        deadline = time.monotonic() + (self.idle_timeout if self.idle_timeout is not None else float("inf"))
        self._waiting[conn] = (peer, deadline)
        sel.register(conn, selectors.EVENT_READ)

    def _expire(self, sel: selectors.BaseSelector) -> None:
        now = time.monotonic()
        while self._waiting:
            conn, (_, deadline) = next(iter(self._waiting.items()))
            if deadline > now:
                break
            self._drop(sel, conn)

    def _drop(self, sel: selectors.BaseSelector, conn: socket.socket) -> None:
        self._waiting.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(conn)
        _close(conn)

    def _dispatch(self, conn: socket.socket, peer: tuple) -> None:
        if not self.concurrent:
            self._serve(conn, peer)                               # in this thread: the next client waits
            return
        with self._lock:
            full = len(self._workers) >= self.max_connections
            if not full:
                worker = threading.Thread(target=self._serve, args=(conn, peer), name=f"{self.name}-{peer}",
                                          daemon=True)
                self._workers.add(worker)
        if full:
            self._refuse(conn, peer)
            return
        worker.start()

    def _refuse(self, conn: socket.socket, peer: tuple) -> None:
        self.refused += 1
        why = (f"{self.name} serves {self.max_connections} connections at once, the most it takes; "
               "close one or try again later")
        log.warning("%s: refused the connection from %s: %s", self.name, peer, why)
        if self.refuse is not None:
            with contextlib.suppress(OSError):
                conn.settimeout(REFUSE_TIMEOUT)
                self.refuse(conn, why)
        _close(conn)

    # -- one connection ------------------------------------------------------------------------------
    def _serve(self, conn: socket.socket, peer: tuple) -> None:
        with self._lock:
            closing = self._closing.is_set()
            if not closing:
                self.connections += 1
                self._open.add(conn)
        try:
            if closing:
                return
            conn.settimeout(self.idle_timeout)
            if self.nodelay:
                with contextlib.suppress(OSError):
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.handler(conn, peer)
        except Exception:  # noqa: BLE001 - one connection's failure is logged; the service goes on
            log.exception("%s: the connection from %s failed; the service goes on", self.name, peer)
        finally:
            with self._lock:
                self._open.discard(conn)
                self._workers.discard(threading.current_thread())
            _close(conn)

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
        me = threading.current_thread()
        if self._thread is not None and self._thread is not me:
            self._thread.join(timeout)
        with contextlib.suppress(OSError):
            self.listener.close()
        for worker in workers:
            if worker is not me and worker.ident is not None:
                worker.join(timeout)


def _close(conn: socket.socket) -> None:
    """Shut a connection down (the peer sees the end at once, even if another thread holds it) and close it."""
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        conn.close()

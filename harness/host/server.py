"""The acquirer's TCP front end: accepts terminals, frames and decodes ISO 8583, books, then answers.

Connections are accepted by `harness.core.service.TcpService`, one thread per connection, which reads and
decodes; every message is booked through the ledger's single writer
(`Bookkeeper`) and the answer leaves only after the booking committed. Delayed answers are sent by timers, so
a connection keeps reading (a reversal can arrive while its original's answer is still held back).

Bad input never stops the host: a frame that does not decode is booked and answered with response code 30 when
its MTI is readable (else ignored); an impossible length prefix or garbage that cannot be framed is booked and
that connection is closed (its stream cannot be resynchronised). Other connections are untouched.

>>> server = HostServer(socket.create_server(("127.0.0.1", 0)), "ledger.sqlite")  # doctest: +SKIP
>>> server.start(); server.address  # doctest: +SKIP
('127.0.0.1', 40123)
>>> server.close()  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any

from harness.core.evidence import Transcript
from harness.core.masking import printable
from harness.core.service import TcpService
from harness.host.acquirer import Acquirer, Connection
from harness.host.answers import Decision
from harness.host.behaviour import Rule
from harness.host.ledger import Bookkeeper
from harness.host.tls import TlsStream
from harness.protocols import iso8583 as iso

log = logging.getLogger(__name__)


class _Peer:
    """One terminal connection: its socket, a send lock, and whether it was closed."""

    def __init__(self, conn: Connection, sock: socket.socket):
        self.conn = conn
        self.sock = sock
        self.send_lock = threading.Lock()
        self.closed = False

    def shut(self) -> None:
        with self.send_lock:
            if self.closed:
                return
            self.closed = True
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()


class HostServer:
    """ISO 8583 acquirer host on a bound, listening socket (in a namespace, on a bench NIC or loopback)."""

    def __init__(
        self,
        listener: socket.socket,
        ledger_path: str | Path,
        *,
        spec: str = iso.DEFAULT_SPEC,
        framing: str = "2byte",
        rules: list[Rule] | None = None,
        window: float = 600.0,
        timing_scale: float = 1.0,
        transcript: Transcript | None = None,
        synchronous: str = "FULL",
        max_message: int = iso.MAX_MESSAGE,
        tls: ssl.SSLContext | None = None,
    ):
        if spec not in iso.SPECS:
            raise ValueError(f"unknown ISO 8583 spec {spec!r}; expected one of {', '.join(iso.SPECS)}")
        self.listener = listener
        self.ledger_path = Path(ledger_path)
        self.spec = spec
        self.framing = iso.Framing(framing)
        self.timing_scale = timing_scale
        self.transcript = transcript
        self.max_message = max_message
        self.tls = tls                  # serve ISO 8583 over TLS with this context (harness.host.tls)
        self.acquirer = Acquirer(rules, window=window)
        self.synchronous = synchronous
        self.bookkeeper: Bookkeeper | None = None
        self.service = TcpService(listener, self._serve, name="host", concurrent=True)
        self._timers: set[threading.Timer] = set()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._stopping = threading.Event()
        self.stats = {"connections": 0, "received": 0, "answered": 0, "malformed": 0}

    @property
    def address(self) -> tuple[str, int]:
        return self.service.address

    def start(self) -> None:
        self.bookkeeper = Bookkeeper(
            self.ledger_path, self.synchronous, before_batch=self.acquirer.refresh_rules
        )
        self.service.start()
        log.info("acquirer host listening on %s:%d, ledger %s", *self.address, self.ledger_path)

    # -- connections (one TcpService thread each) ------------------------------------------------
    def _serve(self, sock: socket.socket, addr: tuple) -> None:
        peer = _Peer(Connection(next(self._ids), f"{addr[0]}:{addr[1]}"), sock)
        with self._lock:
            self.stats["connections"] += 1
        self._record("connect", peer)
        if self.tls is not None:
            stream = TlsStream(sock, self.tls, server_side=True)
            try:
                stream.handshake()
            except (OSError, ValueError) as exc:
                self._record("tls-failed", peer, error=str(exc))
                peer.shut()
                self._record("disconnect", peer)
                return
            peer.sock = stream
            self._record("tls", peer, version=stream.version, resumed=stream.resumed)
        reader = iso.FrameReader(self.framing, self.max_message)
        try:
            while not peer.closed:
                try:
                    data = peer.sock.recv(65536)
                except OSError:
                    break
                if not data:
                    if reader.pending:
                        self._book_error(
                            peer,
                            reader.pending,
                            "connection closed in the middle of a message "
                            f"({len(reader.pending)} bytes of it received)",
                        )
                    break
                at = time.time()
                try:
                    frames = reader.feed(data)
                    bad = None
                except iso.FramingError as exc:
                    frames, bad = exc.frames, exc
                for raw in frames:
                    if not self._handle_frame(peer, raw, at):
                        return
                if bad is not None:
                    self._book_error(peer, data, f"cannot frame the stream: {bad}; connection closed")
                    break
        except Exception:  # noqa: BLE001 - one connection's failure must not stop the host
            log.exception("acquirer host: connection %d failed; closing it", peer.conn.id)
        finally:
            peer.shut()
            self._record("disconnect", peer)

    def _handle_frame(self, peer: _Peer, raw: bytes, at: float) -> bool:
        """Book and answer one frame. False when the connection was closed on purpose."""
        assert self.bookkeeper is not None
        self.stats["received"] += 1
        try:
            fields = iso.decode(raw, self.spec)
        except iso.MessageError as exc:
            self.stats["malformed"] += 1
            log.warning("acquirer host: connection %d sent a malformed frame: %s", peer.conn.id, exc)
            error = str(exc)
            self._record("rx-malformed", peer, error=error, raw=printable(raw))
            decision = self.bookkeeper.call(
                lambda books: self.acquirer.handle_malformed(books, raw, error, peer.conn, at)
            )
        else:
            self._record("rx", peer, fields=fields)
            decision = self.bookkeeper.call(lambda books: self.acquirer.handle(books, fields, peer.conn, at))
        return self._deliver(peer, decision)

    def _book_error(self, peer: _Peer, raw: bytes, error: str) -> None:
        self.stats["malformed"] += 1
        log.warning("acquirer host: connection %d: %s", peer.conn.id, error)
        self._record("rx-malformed", peer, error=error, raw=printable(raw[:256]))
        assert self.bookkeeper is not None
        with contextlib.suppress(Exception):
            self.bookkeeper.call(
                lambda books: self.acquirer.handle_malformed(
                    books, raw[:256], error, peer.conn, time.time(), respond=False
                )
            )

    # -- answers ---------------------------------------------------------------------------------
    def _deliver(self, peer: _Peer, decision: Decision) -> bool:
        resp = decision.response
        if resp is None:
            return True
        b = decision.behaviour
        if b.delivery == "silent":
            self._record("withheld", peer, fields=resp, reason=decision.reason)
            return True
        if b.delivery == "close":
            self._record("close", peer, fields=resp, reason=decision.reason)
            peer.shut()
            return False
        payload = self.framing.wrap(iso.encode(resp, self.spec))
        copies = 2 if b.delivery == "twice" else 1
        delay = b.delay_seconds(self.timing_scale)
        if delay <= 0:
            self._send(peer, payload, resp, copies, decision.reason)
            return True
        timer = threading.Timer(delay, self._send_later, (peer, payload, resp, copies, decision.reason))
        timer.daemon = True
        timer.name = f"host-delay-{peer.conn.id}"
        with self._lock:
            if self._stopping.is_set():
                return True  # closing: pending answers are dropped
            self._timers.add(timer)
        self._record("delayed", peer, fields=resp, seconds=round(delay, 4))
        timer.start()
        return True

    def _send_later(
        self, peer: _Peer, payload: bytes, resp: dict[str, Any], copies: int, reason: str
    ) -> None:
        try:
            self._send(peer, payload, resp, copies, reason)
        finally:
            with self._lock:
                self._timers.discard(threading.current_thread())  # type: ignore[arg-type]

    def _send(self, peer: _Peer, payload: bytes, resp: dict[str, Any], copies: int, reason: str) -> None:
        for _ in range(copies):
            with peer.send_lock:
                if peer.closed:
                    self._record("send-failed", peer, fields=resp, error="connection already closed")
                    return
                try:
                    peer.sock.sendall(payload)
                except OSError as exc:
                    self._record("send-failed", peer, fields=resp, error=str(exc))
                    return
            self.stats["answered"] += 1
            self._record("tx", peer, fields=resp, reason=reason)

    def _record(self, event: str, peer: _Peer, fields: dict[str, Any] | None = None, **extra: Any) -> None:
        if self.transcript is None:
            return
        record: dict[str, Any] = {"connection": peer.conn.id, "peer": peer.conn.peer}
        if fields is not None:
            mti = str(fields.get("t", ""))
            record.update(mti=mti, name=iso.MTI_NAMES.get(mti, "unknown"), fields=iso.mask_fields(fields))
        record.update(extra)
        self.transcript.write(event, **record)

    # -- shutdown --------------------------------------------------------------------------------
    def close(self, timeout: float = 3.0) -> None:
        """Stop accepting, drop every pending delayed answer and every connection, stop the ledger writer."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        deadline = time.monotonic() + timeout
        with self._lock:
            timers = list(self._timers)
            self._timers.clear()
        for t in timers:
            t.cancel()
        self.service.close(max(0.1, deadline - time.monotonic()))
        for t in timers:
            t.join(max(0.0, deadline - time.monotonic()))
        if self.bookkeeper is not None:
            self.bookkeeper.close(max(0.1, deadline - time.monotonic()))

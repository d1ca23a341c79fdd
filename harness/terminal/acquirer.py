"""The terminal's ISO 8583 client towards the acquirer host: one persistent TCP connection, one request in
flight.

A response is matched to the request waiting for it by MTI and STAN; anything else that arrives (a late 0210
for a request already given up and reversed) is written to the transcript as ignored and otherwise dropped.

Over TLS when the emulated host offers it for the address (`harness.host.tls.client_context`); the last TLS
session is resumed on the next connection, as terminals do.

>>> client = AcquirerClient(("127.0.0.1", 5000), timeout=0.5)      # doctest: +SKIP
>>> client.exchange({"t": "0200", "11": "000001", ...})             # doctest: +SKIP
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

from harness.host.tls import TlsStream, client_context
from harness.protocols import iso8583

log = logging.getLogger(__name__)


class HostUnreachable(ConnectionError):
    """The host could not be reached: the request was certainly not delivered."""


class HostTimeout(TimeoutError):
    """The request was sent (or may have been) and no answer came in time: it must be reversed."""


Connector = Callable[[tuple[str, int], float], socket.socket]


def _plain_connect(address: tuple[str, int], timeout: float) -> socket.socket:
    return socket.create_connection(address, timeout=timeout)


class AcquirerClient:
    """ISO 8583 over TCP (2-byte length framing by default) to one acquirer host."""

    def __init__(
        self,
        address: tuple[str, int],
        *,
        timeout: float = 10.0,
        connect_timeout: float = 5.0,
        connect: Connector | None = None,
        spec: str = iso8583.DEFAULT_SPEC,
        framing: str = "2byte",
        transcript: Any = None,
    ):
        self.address = address
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._connect = connect or _plain_connect
        self.spec = spec
        self.framing = iso8583.Framing(framing)
        self.transcript = transcript
        self._sock: socket.socket | None = None
        self._reader: threading.Thread | None = None
        self._flight = threading.Lock()  # one request in flight
        self._cond = threading.Condition()
        self._waiting: tuple[str, str] | None = None  # (response MTI, STAN)
        self._answer: dict[str, Any] | None = None
        self._closed = False
        self._tls_session: Any = None  # the last TLS session, offered for resumption on the next connection
        self.ignored: list[dict[str, Any]] = []  # late or unmatched messages, for tests and evidence

    # -- connection ------------------------------------------------------------------------------------------
    def _ensure_connected(self) -> socket.socket:
        with self._cond:
            if self._sock is not None:
                return self._sock
        try:
            sock = self._connect(self.address, self.connect_timeout)
        except OSError as exc:
            self._note("connect_failed", address=f"{self.address[0]}:{self.address[1]}", error=str(exc))
            raise HostUnreachable(
                f"acquirer host {self.address[0]}:{self.address[1]} unreachable: {exc}"
            ) from exc
        tls = client_context(self.address)
        if tls is not None:
            sock = self._tls(sock, tls)
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._cond:
            self._sock = sock
        self._note("connected", address=f"{self.address[0]}:{self.address[1]}")
        reader = threading.Thread(
            target=self._read_loop, args=(sock,), name="terminal-iso8583-reader", daemon=True
        )
        self._reader = reader
        reader.start()
        return sock

    def _tls(self, sock: socket.socket, context: Any) -> TlsStream:
        """The TLS handshake on a fresh connection (resuming the last session); HostUnreachable if it fails:
        no request was sent."""
        stream = TlsStream(sock, context, server_side=False, server_hostname=self.address[0],
                           session=self._tls_session)
        try:
            stream.handshake(self.connect_timeout)
        except (OSError, ValueError) as exc:
            sock.close()
            self._note("tls_failed", error=str(exc))
            raise HostUnreachable(f"TLS handshake with acquirer host {self.address[0]}:{self.address[1]} "
                                  f"failed: {exc}") from exc
        self._note("tls", version=stream.version, resumed=stream.resumed)
        return stream

    def _drop(self, sock: socket.socket) -> None:
        if isinstance(sock, TlsStream) and sock.session is not None:
            self._tls_session = sock.session
        with self._cond:
            if self._sock is sock:
                self._sock = None
            self._cond.notify_all()
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    def _read_loop(self, sock: socket.socket) -> None:
        reader = iso8583.FrameReader(self.framing)
        while True:
            try:
                chunk = sock.recv(4096)
            except OSError:
                chunk = b""
            if not chunk:
                if reader.pending:
                    self._note("half_message_dropped", bytes=len(reader.pending))
                self._note("disconnected")
                self._drop(sock)
                return
            try:
                frames = reader.feed(chunk)
            except iso8583.FramingError as exc:
                self._note("framing_error", error=str(exc))
                continue
            for raw in frames:
                try:
                    msg = iso8583.decode(raw, self.spec)
                except iso8583.MessageError as exc:
                    self._note("malformed", error=str(exc), bytes=len(raw))
                    continue
                self._deliver(msg)

    def _deliver(self, msg: dict[str, Any]) -> None:
        key = (msg.get("t", ""), msg.get(iso8583.STAN, ""))
        with self._cond:
            if self._waiting == key and self._answer is None:
                self._answer = msg
                self._cond.notify_all()
                matched = True
            else:
                matched = False
        if matched:
            self._note("rx", summary=iso8583.describe(msg), fields=msg)
        else:
            self.ignored.append(msg)
            self._note("late_response_ignored", summary=iso8583.describe(msg), fields=msg)
            log.info("ignored unmatched host message: %s", iso8583.describe(msg))

    # -- exchange --------------------------------------------------------------------------------------------
    def exchange(self, fields: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Send a request and return its response. Raises HostUnreachable (not sent) or HostTimeout (no
        answer)."""
        if self._closed:
            raise HostUnreachable("acquirer client closed")
        timeout = self.timeout if timeout is None else timeout
        mti = fields["t"]
        key = (iso8583.RESPONSE_MTI[mti], fields[iso8583.STAN])
        raw = iso8583.encode_frame(fields, self.spec, self.framing)
        with self._flight:
            sock = self._ensure_connected()
            with self._cond:
                self._waiting, self._answer = key, None
            try:
                try:
                    sock.sendall(raw)
                except OSError:
                    self._drop(sock)  # stale connection: one fresh attempt
                    sock = self._ensure_connected()
                    sock.sendall(raw)
                self._note("tx", summary=iso8583.describe(fields), fields=fields)
                with self._cond:
                    self._cond.wait_for(lambda: self._answer is not None or self._closed, timeout)
                    answer = self._answer
            except OSError as exc:
                self._note("send_failed", error=str(exc))
                raise HostTimeout(f"sending {mti} STAN {key[1]} failed: {exc}") from exc
            finally:
                with self._cond:
                    self._waiting = None
            if answer is None:
                self._note("timeout", mti=mti, stan=key[1], seconds=round(timeout, 3))
                # The connection is suspect (a stalled stream queues every later message behind the lost bytes):
                # hang up, so the reversal or repeat that follows goes out on a fresh connection.
                self._drop(sock)
                raise HostTimeout(f"no {key[0]} for {mti} STAN {key[1]} within {timeout:.2f}s")
            return answer

    def hang_up(self) -> None:
        """Close the connection to the host now (as after an idle timeout); the next request connects again."""
        with self._cond:
            sock = self._sock
        if sock is not None:
            self._drop(sock)

    def close(self) -> None:
        self._closed = True
        with self._cond:
            sock = self._sock
            self._cond.notify_all()
        if sock is not None:
            self._drop(sock)
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(1.0)

    def _note(self, event: str, **fields: Any) -> None:
        if self.transcript is not None:
            self.transcript.write(event, link="iso8583", **fields)

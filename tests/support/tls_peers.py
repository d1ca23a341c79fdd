"""ISO 8583 over TLS peers for the link tests and benchmark: a TLS acquirer in the host namespace and a TLS
client in the terminal namespace, on Python's ssl with a bench CA (`harness.host.tls`). Both note where in
their TCP stream each message's TLS record starts, so a test can check a fault hit exactly that record, and can
split what they send across TCP segments or hold back the client's last handshake flight to send it in one
segment with the first request.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time

from harness.host.tls import BenchPki, TlsStream
from harness.topology.namespace import Namespace
from tests.support.link_peers import IsoReader, iso_answer

SPLIT_PAUSE = 0.03           # s between the pieces of a split write: each piece its own TCP segment


class CountingTls(TlsStream):
    """A TlsStream that counts the TCP stream bytes it sent and can send each write in pieces."""

    def __init__(self, *args, split: tuple[int, ...] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.sent = 0
        self.split = split
        self.marks: list[int] = []           # stream offsets where each sendall's first record starts

    def _send_raw(self, out: bytes) -> None:
        cuts = [c for c in self.split if 0 < c < len(out)]
        for a, b in zip([0, *cuts], [*cuts, len(out)], strict=True):
            self.sock.sendall(out[a:b])
            if b < len(out):
                time.sleep(SPLIT_PAUSE)
        self.sent += len(out)

    def sendall(self, data: bytes) -> None:
        self.marks.append(self.sent)
        super().sendall(data)


class TlsAcquirer:
    """Answers 0200 -> 0210 (and the rest as `iso_answer`) over TLS; `responses[i]` is where (in its TCP
    stream to the client) the record of the i-th answer starts, per connection in order of arrival."""

    def __init__(self, ns: Namespace, ip: str, port: int, pki: BenchPki, version: str, tickets: int = 2,
                 split: tuple[int, ...] = ()):
        self.context = pki.server_context(version, tickets=tickets)
        self.sock = ns.listen((ip, port))
        self.sock.settimeout(0.2)
        self.split = split
        self.received: list[bytes] = []
        self.streams: list[CountingTls] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c: socket.socket) -> None:
        stream = CountingTls(c, self.context, server_side=True, split=self.split)
        self.streams.append(stream)
        reader = IsoReader()
        try:
            stream.handshake(5.0)
            c.settimeout(0.2)
            while not self._stop.is_set():
                try:
                    data = stream.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    return
                for msg in reader.feed(data):
                    self.received.append(msg)
                    for out in iso_answer(msg):
                        stream.sendall(out)
        except (OSError, ssl.SSLError) as exc:
            self.errors.append(exc)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
        for s in self.streams:
            with contextlib.suppress(OSError):
                s.close()


class TlsTerminal:
    """A TLS client: `coalesce=True` holds its last handshake flight back and sends it in one TCP segment with
    the first request; `split` cuts each write into TCP segments at those byte offsets."""

    def __init__(self, ns: Namespace, addr: tuple[str, int], pki: BenchPki, version: str,
                 session: ssl.SSLSession | None = None, split: tuple[int, ...] = (), coalesce: bool = False):
        self.raw = ns.connect(addr, timeout=5.0)
        self.raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.stream = CountingTls(self.raw, pki.client_context(version), server_side=False,
                                  server_hostname=addr[0], session=session, split=split)
        self.reader = IsoReader()
        self.messages: list[bytes] = []
        self.held = b""
        if coalesce:
            self._handshake_held()
        else:
            self.stream.handshake(5.0)

    def _handshake_held(self) -> None:
        """The handshake, but the client's final flight stays in `held` until the first `send`."""
        s = self.stream
        self.raw.settimeout(5.0)
        while True:
            try:
                s.tls.do_handshake()
                self.held = s.outgoing.read()
                return
            except ssl.SSLWantReadError:
                out = s.outgoing.read()
                if out:
                    s._send_raw(out)
            s.incoming.write(self.raw.recv(65536))

    def send(self, data: bytes) -> None:
        if self.held:
            s = self.stream
            s.tls.write(data)
            s.marks.append(s.sent + len(self.held))
            both, self.held = self.held + s.outgoing.read(), b""
            s._send_raw(both)
            return
        self.stream.sendall(data)

    def recv(self, timeout: float) -> bytes | None:
        deadline = time.monotonic() + timeout
        while not self.messages:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.raw.settimeout(left)
            try:
                data = self.stream.recv(65536)
            except TimeoutError:
                return None
            if not data:
                raise ConnectionError("peer closed the connection")
            self.messages.extend(self.reader.feed(data))
        return self.messages.pop(0)

    @property
    def session(self) -> ssl.SSLSession | None:
        return self.stream.session

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.raw.close()

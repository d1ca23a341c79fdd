"""Real TCP peers for the link tests: an ISO 8583 host and a ZVT terminal answering in their namespaces, and
clients that speak to them through the link.

Written from the protocol specifications on pyiso8583 and `struct` only, not on posrig's codecs or the link's
layers, so the link's framing is checked against a second implementation: ISO 8583 frames carry a 2-byte
big-endian length; a ZVT APDU is CLASS INSTR LEN DATA, LEN = FF LL HH (little-endian) from 255 bytes of data.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from typing import Any

import iso8583
from iso8583.specs import default_ascii as ASCII_SPEC

from harness.topology import Namespace

TCP_INFO_STATE = {1: "ESTABLISHED", 4: "FIN_WAIT1", 7: "CLOSE", 8: "CLOSE_WAIT"}


def tcp_state(sock: socket.socket) -> str:
    """The kernel's TCP state of a socket (CLOSE once a RST was taken)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    return TCP_INFO_STATE.get(info[0], str(info[0]))


class ZvtReader:
    """Splits a ZVT byte stream into whole APDUs."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        out = []
        while len(self.buf) >= 3:
            if self.buf[2] != 0xFF:
                total = 3 + self.buf[2]
            elif len(self.buf) >= 5:
                total = 5 + struct.unpack_from("<H", self.buf, 3)[0]
            else:
                break
            if len(self.buf) < total:
                break
            out.append(self.buf[:total])
            self.buf = self.buf[total:]
        return out


class IsoReader:
    """Splits an ISO 8583 byte stream into messages (2-byte length prefix removed)."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        out = []
        while len(self.buf) >= 2 and len(self.buf) >= 2 + struct.unpack_from(">H", self.buf)[0]:
            n = struct.unpack_from(">H", self.buf)[0]
            out.append(self.buf[2:2 + n])
            self.buf = self.buf[2 + n:]
        return out


def iso_encode(fields: dict[str, Any]) -> bytes:
    """An ISO 8583 message (ascii spec), without its length prefix."""
    raw, _ = iso8583.encode(dict(fields), ASCII_SPEC)
    return bytes(raw)


def iso_frame(fields: dict[str, Any]) -> bytes:
    """An ISO 8583 message as it goes on TCP: 2-byte length, then the message."""
    raw = iso_encode(fields)
    return struct.pack(">H", len(raw)) + raw


def iso_decode(msg: bytes) -> dict[str, Any]:
    """The fields of a message (length prefix removed); raises iso8583.DecodeError for garbage."""
    fields, _ = iso8583.decode(bytes(msg), ASCII_SPEC)
    return fields


def iso_message(mti: str, stan: str, **fields: str) -> bytes:
    return iso_frame({"t": mti, "11": stan, "4": "000000001000", **fields})


def zvt_apdu(cls: int, instr: int, data: bytes = b"") -> bytes:
    n = len(data)
    length = bytes([n]) if n < 0xFF else b"\xff" + struct.pack("<H", n)
    return bytes([cls, instr]) + length + data


# A physical-bench rig whose two NICs are stood in for by a namespace's interfaces (tests of `posrig link`).
BENCH_RIG = """
name: bench-in-namespaces
network: {mode: bench}
devices:
  terminal: {kind: terminal, mode: real, transport: tcp, address: "198.19.100.3:20007"}
  till: {kind: till, mode: real, driver: operator, transport: operator}
links:
  till-terminal: {ends: [till, terminal], faultable: true, driver: bench, interfaces: [to-till, to-terminal],
                  ports: {zvt: 20007}}
"""

AUTHORIZE = zvt_apdu(0x06, 0x01, bytes.fromhex("04000000001000"))     # 06 01, BMP 04 amount 10.00
STATUS_INFO = zvt_apdu(0x04, 0x0F, bytes.fromhex("2700") + bytes.fromhex("0B000123"))
COMPLETION = zvt_apdu(0x06, 0x0F)
ACK = bytes.fromhex("800000")


class Server:
    """A TCP server in a namespace: answers each whole message with `answer(msg) -> [bytes]`, keeps them.

    It keeps its own accept loop (not harness.core.service.TcpService) on purpose: every server-side socket stays
    open and unclosed in `conns` until `close()`, so tests can read its TCP state after a forged reset; a service
    would close (and FIN) a connection as soon as its handler returns."""

    def __init__(self, ns: Namespace, ip: str, port: int, kind: str, answer=None):
        self.sock = ns.listen((ip, port))
        self.sock.settimeout(0.2)
        self.kind = kind
        self.answer = answer or (lambda msg: [])
        self.received: list[bytes] = []
        self.conns: list[socket.socket] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c: socket.socket) -> None:
        reader = IsoReader() if self.kind == "iso" else ZvtReader()
        c.settimeout(0.2)
        while not self._stop.is_set():
            try:
                data = c.recv(65536)
            except TimeoutError:
                continue
            except OSError as exc:
                self.errors.append(exc)
                return
            if not data:
                return
            for msg in reader.feed(data):
                with self._cond:
                    self.received.append(msg)
                    self._cond.notify_all()
                for out in self.answer(msg):
                    with contextlib.suppress(OSError):
                        c.sendall(out)

    def wait_received(self, n: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.received) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
        for c in self.conns:
            with contextlib.suppress(OSError):
                c.close()


def response_mti(mti: str) -> str | None:
    """The MTI answering a request or advice (third digit 0 -> 1, 2 -> 3; a repeat is answered like the
    original): 0200 -> 0210, 0421 -> 0430; None for what is not a request."""
    if len(mti) != 4 or not mti.isdigit() or mti[2] not in "02":
        return None
    return f"{mti[:2]}{int(mti[2]) + 1}0"


def iso_answer(msg: bytes) -> list[bytes]:
    """The emulated acquirer: 0200 -> 0210 approved, 0800 -> 0810, 0420 -> 0430, same STAN."""
    try:
        fields = iso_decode(msg)
    except (iso8583.DecodeError, ValueError):
        return []                                   # garbage (e.g. a corrupted message): keep serving
    reply = response_mti(fields["t"])
    return [iso_frame({"t": reply, "11": fields.get("11", "000000"), "39": "00"})] if reply else []


class ZvtTerminal:
    """The emulated terminal's answers: 06 01 -> 80 00 ack + 04 0F status information; the till's ack of the
    status information -> 06 0F completion."""

    def __init__(self) -> None:
        self.awaiting_ack = False

    def __call__(self, msg: bytes) -> list[bytes]:
        if msg[:2] == b"\x06\x01":
            self.awaiting_ack = True
            return [ACK, STATUS_INFO]
        if msg == ACK and self.awaiting_ack:
            self.awaiting_ack = False
            return [COMPLETION]
        return []


class Client:
    """A TCP client in a namespace reading whole messages."""

    def __init__(self, ns: Namespace, addr: tuple[str, int], kind: str, timeout: float = 2.0):
        self.sock = ns.connect(addr, timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = IsoReader() if kind == "iso" else ZvtReader()
        self.messages: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self, timeout: float) -> bytes | None:
        """The next whole message, or None if none arrives within `timeout`."""
        deadline = time.monotonic() + timeout
        while not self.messages:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return None
            if not data:
                raise ConnectionError("peer closed the connection")
            self.messages.extend(self.reader.feed(data))
        return self.messages.pop(0)

    def close(self) -> None:
        self.sock.close()

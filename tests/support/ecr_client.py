"""A minimal ZVT ECR (cash register) for the tests, written from the specification's byte layouts, and the
emulated-terminal fixtures it drives: `make_terminal`, `terminal`, `ecr` (timers x0.05, on loopback).

Deliberately independent of `harness.protocols.zvt`: every APDU is assembled by hand here, so a bug in the
terminal's codec cannot hide behind the same bug in the test's encoder.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

SCALE = 0.05            # the terminal fixtures' timing scale: every nominal timer x0.05

# BMP number -> length: an int = fixed bytes, "LL" / "LLL" = F-digit length prefix, "TLV" = BER length.
BMP_LENGTHS: dict[int, object] = {
    0x01: 1,
    0x02: 1,
    0x03: 1,
    0x04: 6,
    0x05: 1,
    0x06: "TLV",
    0x0B: 3,
    0x0C: 3,
    0x0D: 2,
    0x0E: 2,
    0x17: 2,
    0x19: 1,
    0x22: "LL",
    0x23: "LL",
    0x27: 1,
    0x29: 4,
    0x2A: 15,
    0x37: 3,
    0x3B: 8,
    0x3C: "LLL",
    0x49: 2,
    0x60: "LLL",
    0x87: 2,
    0x88: 3,
    0x8A: 1,
    0x8B: "LL",
    0x8C: 1,
    0xA0: 1,
    0xBA: 5,
}


def bcd(value: int, size: int) -> bytes:
    """Packed BCD by hand: 1999 in 6 bytes = 00 00 00 00 19 99."""
    digits = f"{value:0{size * 2}d}"
    return bytes(int(digits[i]) << 4 | int(digits[i + 1]) for i in range(0, len(digits), 2))


def unbcd(raw: bytes) -> int:
    return int("".join(f"{b >> 4}{b & 0xF}" for b in raw))


def apdu(cls: int, ins: int, data: bytes = b"") -> bytes:
    n = len(data)
    length = bytes([n]) if n < 255 else bytes([0xFF, n & 0xFF, n >> 8])
    return bytes([cls, ins]) + length + data


def parse_bmps(data: bytes) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    i = 0
    while i < len(data):
        number = data[i]
        kind = BMP_LENGTHS[number]
        i += 1
        if kind == "LL":
            n = (data[i] & 0xF) * 10 + (data[i + 1] & 0xF)
            i += 2
        elif kind == "LLL":
            n = (data[i] & 0xF) * 100 + (data[i + 1] & 0xF) * 10 + (data[i + 2] & 0xF)
            i += 3
        elif kind == "TLV":
            n = data[i]
            i += 1
        else:
            n = kind
        out[number] = data[i : i + n]
        i += n
    return out


@dataclass
class Received:
    cls: int
    ins: int
    data: bytes

    @property
    def control(self) -> tuple[int, int]:
        return (self.cls, self.ins)


@dataclass
class StatusInfo:
    """04 0F decoded by hand."""

    bmps: dict[int, bytes]

    @property
    def result_code(self) -> int:
        return self.bmps[0x27][0]

    @property
    def amount(self) -> int:
        return unbcd(self.bmps[0x04])

    @property
    def trace(self) -> int:
        return unbcd(self.bmps[0x0B])

    @property
    def receipt_no(self) -> int:
        return unbcd(self.bmps[0x87])

    @property
    def aid(self) -> str:
        """The authorisation attribute: 8 ASCII bytes, padded with 00 (blanks tolerated)."""
        return self.bmps[0x3B].decode("ascii").rstrip("\x00 ")

    @property
    def pan(self) -> str:
        """Card number with masked digits (nibble E) shown as '*', F padding dropped."""
        nibbles = "".join(f"{b:02X}" for b in self.bmps[0x22]).rstrip("F")
        return nibbles.replace("E", "*")

    @property
    def time(self) -> str:
        return self.bmps[0x0C].hex()

    @property
    def date(self) -> str:
        return self.bmps[0x0D].hex()


@dataclass
class Dialogue:
    """Everything the terminal sent during one command."""

    messages: list[Received] = field(default_factory=list)

    def of(self, cls: int, ins: int) -> list[Received]:
        return [m for m in self.messages if m.control == (cls, ins)]

    @property
    def status(self) -> StatusInfo | None:
        found = self.of(0x04, 0x0F)
        return StatusInfo(parse_bmps(found[-1].data)) if found else None

    @property
    def statuses(self) -> list[StatusInfo]:
        return [StatusInfo(parse_bmps(m.data)) for m in self.of(0x04, 0x0F)]

    @property
    def end(self) -> Received:
        return self.messages[-1]

    @property
    def completed(self) -> bool:
        return self.end.control == (0x06, 0x0F)

    @property
    def abort_code(self) -> int | None:
        return self.end.data[0] if self.end.control == (0x06, 0x1E) else None

    @property
    def intermediate(self) -> list[int]:
        return [m.data[0] for m in self.of(0x04, 0xFF)]

    @property
    def print_lines(self) -> list[tuple[int, str]]:
        return [(m.data[0], m.data[1:].decode("latin-1")) for m in self.of(0x06, 0xD1)]


class Ecr:
    """The till's side of ZVT over TCP."""

    def __init__(self, address: tuple[str, int], timeout: float = 5.0, sock: socket.socket | None = None):
        self.sock = sock or socket.create_connection(address, timeout=timeout)
        self.sock.settimeout(timeout)
        self.timeout = timeout
        self._buf = b""

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Ecr:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- raw I/O ---------------------------------------------------------------------------------------------
    def send(self, raw: bytes) -> None:
        self.sock.sendall(raw)

    def _read(self, n: int, deadline: float) -> bytes:
        while len(self._buf) < n:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("terminal closed the connection")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def receive(self, timeout: float | None = None) -> Received:
        deadline = time.monotonic() + (timeout or self.timeout)
        cls, ins, n = self._read(3, deadline)
        if n == 0xFF:
            lo, hi = self._read(2, deadline)
            n = lo | hi << 8
        return Received(cls, ins, self._read(n, deadline))

    def ack(self) -> None:
        self.send(b"\x80\x00\x00")

    # -- commands --------------------------------------------------------------------------------------------
    def authorization(
        self, amount: int, currency: int | None = 978, timeout_s: int | None = None, extra: bytes = b""
    ) -> bytes:
        data = b"\x04" + bcd(amount, 6)
        if currency is not None:
            data += b"\x49" + bcd(currency, 2)
        if timeout_s is not None:
            data += b"\x01" + bytes([timeout_s])
        return apdu(0x06, 0x01, data + extra)

    @staticmethod
    def registration(config_byte: int = 0x08, currency: int | None = 978) -> bytes:
        data = b"\x00\x00\x00" + bytes([config_byte]) + (bcd(currency, 2) if currency is not None else b"")
        return apdu(0x06, 0x00, data)

    def expect_ack(self, timeout: float | None = None) -> Received:
        got = self.receive(timeout)
        assert got.control == (0x80, 0x00), f"expected 80 00 acknowledgement, got {got}"
        return got

    def converse(
        self,
        command: bytes,
        status_answer: bytes | list[bytes] = b"\x80\x00\x00",
        timeout: float | None = None,
        on_message=None,
    ) -> Dialogue:
        """Send a command, expect 80 00, then acknowledge everything until 06 0F / 06 1E.
        `status_answer` answers the 04 0F (a list = successive answers, for 84 9C)."""
        answers = list(status_answer) if isinstance(status_answer, list) else [status_answer]
        self.send(command)
        self.expect_ack(timeout)
        dialogue = Dialogue()
        while True:
            msg = self.receive(timeout)
            dialogue.messages.append(msg)
            if on_message is not None:
                on_message(msg)
            if msg.control == (0x04, 0x0F):
                answer = answers.pop(0) if len(answers) > 1 else answers[0]
                if answer:
                    self.send(answer)
            else:
                self.ack()
            if msg.control in ((0x06, 0x0F), (0x06, 0x1E)):
                return dialogue


# -- fixtures: the emulated terminal on loopback -----------------------------------------------------------------
@pytest.fixture
def make_terminal(tmp_path, acquirer) -> Iterator:
    """Start an EmulatedTerminal on loopback talking to `acquirer` (or `host=`), options as in a rig file:
    make_terminal(name="terminal", host=None, transport="tcp"|"serial", **options)."""
    from harness.core.device import DeviceContext
    from harness.core.evidence import Evidence
    from harness.core.rig import DeviceSpec, Timing
    from harness.terminal.emulated import EmulatedTerminal

    started: list[EmulatedTerminal] = []

    def make(name: str = "terminal", host: tuple[str, int] | None = None, transport: str = "tcp",
             **options) -> EmulatedTerminal:
        address = host or acquirer.address
        options.setdefault("host", f"{address[0]}:{address[1]}")
        options.setdefault("journal", str(tmp_path / f"{name}-journal.sqlite"))
        spec = DeviceSpec(name=name, kind="terminal", mode="emulated", driver="emulated", transport=transport,
                          address="pty" if transport == "serial" else "terminal:20007", node="terminal",
                          options=options)
        ctx = DeviceContext(rig=None, evidence=Evidence(tmp_path / "evidence"), timing=Timing(SCALE))
        term = EmulatedTerminal(spec, ctx)
        term.start()
        started.append(term)
        return term

    yield make
    for term in started:
        term.close()


@pytest.fixture
def terminal(make_terminal):
    return make_terminal()


@pytest.fixture
def ecr(terminal) -> Iterator[Ecr]:
    with Ecr(terminal.ecr_address) as client:
        yield client

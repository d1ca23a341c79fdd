"""Test peers for the till: a scripted ZVT terminal and a minimal ESC/POS printer on real loopback sockets, and
the fixtures built on them: `rig_emulated` (the shipped emulated rig) and `make_till` (the reference till as a
real subprocess wired to these peers).

The peers speak the wire protocols byte for byte (their own framing, not the till's), hold a ledger and a print
log the tests can check, and misbehave on request. The bench tests (tests/netns/till) use the real emulators.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from harness.core.rig import DeviceSpec
from harness.core.service import TcpService

ACK = bytes.fromhex("800000")
BASKET = [{"sku": "milk", "name": "Milk 1l", "price": "1.19", "qty": 2}, {"sku": "bread", "price": "2.50"}]
TOTAL = 488


def till_spec(profile: str) -> DeviceSpec:
    """The rig entry of a reference till with this profile."""
    return DeviceSpec(name="till", kind="till", mode="emulated", driver="reference", transport="process",
                      address=None, node="till", profile=profile)


def frame(cls_instr: str, data: bytes = b"") -> bytes:
    head = bytes.fromhex(cls_instr)
    if len(data) < 0xFF:
        return head + bytes([len(data)]) + data
    return head + b"\xff" + len(data).to_bytes(2, "little") + data


def read_apdu(sock: socket.socket) -> bytes:
    def exact(n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("closed")
            out += chunk
        return out

    head = exact(3)
    if head[2] == 0xFF:
        ext = exact(2)
        return head + ext + exact(int.from_bytes(ext, "little"))
    return head + exact(head[2])


@dataclass
class Charge:
    trace: int
    amount: int
    state: str                  # approved | reversed | declined | failed
    receipt_no: int = 0


def status_information(result: int, amount: int, trace: int, receipt_no: int, *,
                       online: bool = True) -> bytes:
    """A 04 0F as a terminal sends it after a card payment (spec BMP layout)."""
    pan = bytes.fromhex("4111111111111111")
    tlv = bytes.fromhex("1f1101") + (b"\x01" if online else b"\x00")
    data = (b"\x27" + bytes([result]) + b"\x04" + bytes.fromhex(f"{amount:012d}")
            + b"\x0b" + bytes.fromhex(f"{trace:06d}") + b"\x0c" + bytes.fromhex("142530")
            + b"\x0d" + bytes.fromhex("1122") + b"\x22\xf0\xf8" + pan
            + b"\x29" + bytes.fromhex("52500038") + b"\x3b" + b"A1B2C3\x00\x00"
            + b"\x87" + bytes.fromhex(f"{receipt_no:04d}") + b"\x8a\x0a" + b"\x8b\xf0\xf4VISA"
            + b"\x06" + bytes([len(tlv)]) + tlv)
    return frame("040f", data)


class ScriptedTerminal:
    """A ZVT terminal (PT side). behaviour: approve | decline | silent | host-down | reject-after-status |
    drop-after-booking | slow-approve. `reverses` False = a terminal that keeps a charge it could not
    report."""

    def __init__(self, behaviour: str = "approve", *, delay: float = 0.0, reverses: bool = True):
        self.behaviour = behaviour
        self.delay = delay
        self.reverses = reverses
        self.registered: bytes | None = None    # the data of the ECR's 06 00
        self.refuse_queries = 0                 # NAK (84 A0) this many 05 01 / 06 20 requests
        self.ledger: list[Charge] = []
        self.received: list[bytes] = []
        self._busy = threading.Lock()
        self._trace = 100
        self._stop = threading.Event()
        self._service = TcpService(socket.create_server(("127.0.0.1", 0)), lambda conn, _: self._session(conn),
                                   name="scripted-terminal")
        self.address = self._service.address
        self._service.start()

    def commands(self, cls_instr: str) -> int:
        """How many requests of this command (e.g. '0601') the ECR sent."""
        return sum(1 for r in self.received if r[:2] == bytes.fromhex(cls_instr))

    @property
    def charged(self) -> list[Charge]:
        return [c for c in self.ledger if c.state == "approved"]

    def close(self) -> None:
        self._stop.set()
        self._service.close()

    def _exchange(self, conn: socket.socket, apdu: bytes) -> bytes | None:
        """Send as master, return the ECR's answer (None when the ECR is gone)."""
        try:
            conn.sendall(apdu)
            conn.settimeout(1.0)
            return read_apdu(conn)
        except OSError:
            return None

    def _session(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(2.0)
                while not self._stop.is_set():
                    req = read_apdu(conn)
                    self.received.append(req)
                    if req[:2] == b"\x06\xb0":
                        conn.sendall(ACK)          # abort while nothing runs on this connection
                        continue
                    with self._busy:               # one transaction at a time, like a real terminal
                        self._command(conn, req)
            except OSError:
                return

    def _command(self, conn: socket.socket, req: bytes) -> None:
        cmd = req[:2].hex()
        if cmd in ("0501", "0620") and self.refuse_queries > 0:
            self.refuse_queries -= 1
            conn.sendall(bytes.fromhex("84a000"))
            return
        conn.sendall(ACK)
        if cmd == "0600":
            self.registered = req[3:]
            self._exchange(conn, frame("060f"))
        elif cmd == "0601":
            self._authorization(conn, int(req[4:10].hex()))
        elif cmd == "0501":
            self._exchange(conn, frame("040f", b"\x27\x00"))
            self._exchange(conn, frame("060f"))
        elif cmd == "0620":
            last = self.ledger[-1] if self.ledger else None
            if last is None or last.state != "approved":
                self._exchange(conn, frame("061e", b"\x6c" if last else b"\x83"))
            else:
                self._exchange(conn, status_information(0, last.amount, last.trace, last.receipt_no))
                self._exchange(conn, frame("060f"))
        else:
            self._exchange(conn, frame("061e", b"\x83"))

    def _authorization(self, conn: socket.socket, amount: int) -> None:
        self._trace += 1
        charge = Charge(self._trace, amount, "failed", receipt_no=self._trace - 99)
        self.ledger.append(charge)
        if self._exchange(conn, frame("04ff", b"\x01")) is None and self.behaviour != "slow-approve":
            return
        if self.behaviour == "silent":
            time.sleep(self.delay or 30)           # the result never comes (the till closes the connection)
            return
        if self.behaviour == "slow-approve":
            time.sleep(self.delay)
        if self.behaviour == "decline":
            charge.state = "declined"
            self._exchange(conn, status_information(0x05, amount, charge.trace, charge.receipt_no))
            self._exchange(conn, frame("061e", b"\x05"))
            return
        if self.behaviour == "host-down":
            self._exchange(conn, frame("040f", b"\x27\x9b"))
            self._exchange(conn, frame("061e", b"\x9b"))
            return
        charge.state = "approved"                   # the host approved
        answer = self._exchange(conn, status_information(0, amount, charge.trace, charge.receipt_no))
        while answer is not None and answer[:2] == b"\x06\xb0":   # an abort racing the approval
            answer = self._read(conn)
        if answer is None:
            if self.reverses:
                charge.state = "reversed"           # issue of goods not confirmed: reverse
            return
        if answer[:2] == b"\x84\x66":
            charge.state = "reversed"
            self._exchange(conn, frame("061e", b"\x66"))
            return
        if self.behaviour == "reject-after-status":
            charge.state = "reversed"               # card refused the 2nd GenAC: auto-reversal
            self._exchange(conn, frame("061e", b"\x66"))
            return
        if self.behaviour == "drop-after-booking":
            conn.shutdown(socket.SHUT_RDWR)         # the link dies before 06 0F; the payment stands
            return
        self._exchange(conn, frame("060f", b"\x19\x40"))

    @staticmethod
    def _read(conn: socket.socket) -> bytes | None:
        try:
            return read_apdu(conn)
        except OSError:
            return None


@dataclass
class MiniPrinter:
    """An ESC/POS printer on TCP that records bytes and answers DLE EOT 1 / DLE EOT 4."""

    online: bool = True
    paper: bool = True
    received: bytearray = field(default_factory=bytearray)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        # One till connection at a time, in order of arrival, as a raw TCP printer port.
        self._service = TcpService(socket.create_server(("127.0.0.1", 0)), lambda conn, _: self._serve(conn),
                                   name="mini-printer", concurrent=False)
        self.address = self._service.address
        self._service.start()

    def close(self) -> None:
        self._stop.set()
        self._service.close()

    @property
    def text(self) -> str:
        with self._lock:
            return bytes(self.received).decode("latin-1")

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(0.5)
            pending = b""
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    break
                if not chunk:
                    break
                pending += chunk
                while b"\x10\x04" in pending and len(pending) >= pending.index(b"\x10\x04") + 3:
                    i = pending.index(b"\x10\x04")
                    n = pending[i + 2]
                    with self._lock:
                        self.received += pending[:i]
                    pending = pending[i + 3:]
                    if n == 1:
                        conn.sendall(b"\x12" if self.online else b"\x1a")
                    elif n == 4:
                        conn.sendall(b"\x12" if self.paper else b"\x72")
                if b"\x10" not in pending:
                    with self._lock:
                        self.received += pending
                    pending = b""
            with self._lock:
                self.received += pending


# -- fixtures ----------------------------------------------------------------------------------------------------
@pytest.fixture
def rig_emulated():
    """The shipped emulated rig (rigs/emulated.yaml), for its timing scale."""
    from harness.core.rig import load_rig
    from tests.support import RIGS

    return load_rig(RIGS / "emulated.yaml")


@pytest.fixture
def make_till(tmp_path, rig_emulated, monkeypatch) -> Iterator:
    """make_till(profile, terminal=ScriptedTerminal(...), printer=MiniPrinter(...)) -> (till, terminal, printer):
    the reference till as its own process (ReferenceTill driver), everything closed after the test."""
    from harness.core.device import DeviceContext
    from harness.core.evidence import Evidence
    from harness.till.reference import ReferenceTill

    monkeypatch.delenv("POSRIG_TILL_PROFILE", raising=False)
    made: list = []

    def make(profile: str = "correct", terminal: ScriptedTerminal | None = None,
             printer: MiniPrinter | None = None):
        terminal = terminal or ScriptedTerminal("approve")
        printer = printer or MiniPrinter()
        made.extend([terminal, printer])
        ctx = DeviceContext(rig=rig_emulated, evidence=Evidence(tmp_path / f"ev-{len(made)}"),
                            timing=rig_emulated.timing)
        till = ReferenceTill(till_spec(profile), ctx,
                             printer=SimpleNamespace(address={"tcp": "{}:{}".format(*printer.address)}),
                             terminal=SimpleNamespace(ecr_address=terminal.address))
        made.insert(0, till)
        till.start()
        return till, terminal, printer

    yield make
    for thing in made:
        thing.close()

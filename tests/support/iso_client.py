"""Acquirer host test support: an independent ISO 8583 client, a host on loopback (fixtures `make_host`, `srv`),
the host as the bench starts it (`host_bench`) and as a child process (`serve_host`, component tier).

The client is written here on pyiso8583 and `struct` only (not the harness's own encoder), so the host is
checked against a second implementation of the wire format.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import iso8583
import pytest
from iso8583.specs import default as BINARY_SPEC
from iso8583.specs import default_ascii as ASCII_SPEC

from harness.core.bench import Bench
from harness.core.evidence import Evidence, Transcript
from harness.core.process import Child, posrig_command
from harness.core.rig import parse_rig
from harness.host.ledger import Ledger
from harness.host.server import HostServer

PAN = "4111111111111111"
TERMINAL = "TERM0001"


class Client:
    """A terminal-side ISO 8583 client: pyiso8583 encoding, 2-byte / 4-ASCII / no length framing."""

    def __init__(
        self,
        address: tuple[str, int] | socket.socket,
        spec: dict = ASCII_SPEC,
        framing: str = "2byte",
        timeout: float = 5.0,
    ):
        if isinstance(address, socket.socket):
            self.sock = address  # already connected (e.g. from inside a namespace)
        else:
            self.sock = socket.create_connection(address, timeout=timeout)
        self.spec, self.framing, self.timeout = spec, framing, timeout
        self.buf = b""

    def send(self, fields: dict[str, Any]) -> None:
        raw, _ = iso8583.encode(dict(fields), self.spec)
        self.send_raw(bytes(raw))

    def send_raw(self, payload: bytes) -> None:
        if self.framing == "2byte":
            payload = struct.pack(">H", len(payload)) + payload
        elif self.framing == "4ascii":
            payload = b"%04d" % len(payload) + payload
        self.sock.sendall(payload)

    def _fill(self, n: int, timeout: float) -> bool:
        self.sock.settimeout(timeout)
        while len(self.buf) < n:
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return False
            if not chunk:
                raise EOFError("host closed the connection")
            self.buf += chunk
        return True

    def recv(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next message, or None when nothing arrives within `timeout`."""
        timeout = self.timeout if timeout is None else timeout
        if self.framing == "none":
            if not self._fill(1, timeout):
                return None
            raw, self.buf = self.buf, b""
        else:
            head = 2 if self.framing == "2byte" else 4
            if not self._fill(head, timeout):
                return None
            n = struct.unpack(">H", self.buf[:2])[0] if head == 2 else int(self.buf[:4])
            if not self._fill(head + n, timeout):
                return None
            raw, self.buf = self.buf[head : head + n], self.buf[head + n :]
        fields, _ = iso8583.decode(bytearray(raw), self.spec)
        return fields

    def exchange(self, fields: dict[str, Any]) -> dict[str, Any]:
        self.send(fields)
        answer = self.recv()
        assert answer is not None, f"no answer to {fields['t']} STAN {fields.get('11')}"
        return answer

    def closed_by_peer(self, timeout: float = 2.0) -> bool:
        try:
            self._fill(len(self.buf) + 1, timeout)
        except (EOFError, ConnectionResetError):
            return True
        return False

    def close(self) -> None:
        self.sock.close()


def sale(
    stan: int, amount: int = 1000, mti: str = "0200", pan: str = PAN, terminal: str = TERMINAL, **extra: str
) -> dict[str, Any]:
    """A purchase request as a terminal sends it."""
    return {
        "t": mti,
        "2": pan,
        "3": "000000",
        "4": f"{amount:012d}",
        "7": "1122030405",
        "11": f"{stan:06d}",
        "41": terminal,
        "42": "MERCHANT0000001",
        "49": "978",
        **extra,
    }


def reversal(
    stan: int,
    original_stan: int,
    amount: int = 1000,
    mti: str = "0400",
    original_mti: str = "0200",
    terminal: str = TERMINAL,
    with_90: bool = True,
) -> dict[str, Any]:
    fields = {
        "t": mti,
        "2": PAN,
        "3": "000000",
        "4": f"{amount:012d}",
        "11": f"{stan:06d}",
        "41": terminal,
        "49": "978",
    }
    if with_90:
        fields["90"] = f"{original_mti}{original_stan:06d}1122030405".ljust(42, "0")
    return fields


class RunningHost:
    """A HostServer on 127.0.0.1 with its ledger; `client()` connects an independent client."""

    def __init__(self, tmp: Path, **kwargs: Any):
        self.ledger_path = tmp / "host-ledger.sqlite"
        self.transcript_path = tmp / "host.jsonl"
        self.transcript = Transcript(self.transcript_path)
        self.server = HostServer(
            socket.create_server(("127.0.0.1", 0)), self.ledger_path, transcript=self.transcript, **kwargs
        )
        self.server.start()
        self.ledger = Ledger(self.ledger_path)
        self.clients: list[Client] = []
        self.spec = BINARY_SPEC if kwargs.get("spec") == "binary" else ASCII_SPEC
        self.framing = kwargs.get("framing", "2byte")

    @property
    def address(self) -> tuple[str, int]:
        return self.server.address

    def client(self, **kwargs: Any) -> Client:
        kwargs.setdefault("spec", self.spec)
        kwargs.setdefault("framing", self.framing)
        c = Client(self.address, **kwargs)
        self.clients.append(c)
        return c

    def close(self) -> None:
        for c in self.clients:
            c.close()
        self.server.close()
        self.transcript.close()
        self.ledger.close()


@pytest.fixture
def make_host(tmp_path: Path) -> Iterator:
    """Factory: make_host(spec=, framing=, rules=, timing_scale=) -> RunningHost; all closed after."""
    made: list[RunningHost] = []

    def make(**kwargs: Any) -> RunningHost:
        sub = tmp_path / f"host{len(made)}"
        sub.mkdir()
        h = RunningHost(sub, **kwargs)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


@pytest.fixture
def srv(make_host) -> RunningHost:
    """A host with default settings (ascii spec, 2-byte framing, timing scale 0.01)."""
    return make_host(timing_scale=0.01)


HOST_RIG = """
name: host-test
timing: {{scale: 0.01}}
network: {{mode: {mode}}}
devices:
  host:
    kind: host
    mode: emulated
    transport: tcp
    address: "{address}"
    options: {options}
"""


def host_bench(tmp_path: Path, mode: str = "namespaces", address: str = "host:5000", options: str = "{}") -> Bench:
    """A bench whose rig has only the emulated host (no topology: it runs on loopback unless mode is bench)."""
    rig = parse_rig(HOST_RIG.format(mode=mode, address=address, options=options), tmp_path / "rig.yaml")
    return Bench(rig, Evidence(tmp_path / "evidence"), None)


def serve_host(ledger: Path, log: Path, port: int = 0, *extra: str) -> tuple[Child, tuple[str, int]]:
    """`posrig host serve` on 127.0.0.1 as a supervised child process; returns it, ready, and its address."""
    child = Child(
        "posrig host serve",
        [*posrig_command(), "host", "serve", "--listen", f"127.0.0.1:{port}", "--ledger", str(ledger), *extra],
        log=log,
    )
    ready = child.start(timeout=20)
    host, port_text = ready["listen"].rsplit(":", 1)
    return child, (host, int(port_text))

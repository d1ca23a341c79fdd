"""Fixtures for the terminal's tests: a scripted acquirer and emulated terminals on loopback, timers x0.05."""

from __future__ import annotations

import pytest

from harness.core.device import DeviceContext
from harness.core.evidence import Evidence
from harness.core.rig import DeviceSpec, Timing
from harness.terminal.emulated import EmulatedTerminal
from tests.support.ecr_client import Ecr
from tests.support.scripted_host import ScriptedHost

SCALE = 0.05


@pytest.fixture
def acquirer():
    host = ScriptedHost()
    yield host
    host.close()


@pytest.fixture
def make_terminal(tmp_path, acquirer):
    """Start an EmulatedTerminal on loopback talking to `acquirer` (or `host=`), options as in a rig file."""
    started: list[EmulatedTerminal] = []

    def make(
        name: str = "terminal", host: tuple[str, int] | None = None, transport: str = "tcp", **options
    ) -> EmulatedTerminal:
        address = host or acquirer.address
        options.setdefault("host", f"{address[0]}:{address[1]}")
        options.setdefault("journal", str(tmp_path / f"{name}-journal.sqlite"))
        spec = DeviceSpec(
            name=name,
            kind="terminal",
            mode="emulated",
            driver="emulated",
            transport=transport,
            address="pty" if transport == "serial" else "terminal:20007",
            node="terminal",
            options=options,
        )
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
def ecr(terminal):
    with Ecr(terminal.ecr_address) as client:
        yield client


@pytest.fixture
def dead_host():
    """An address where nobody listens, kept bound (not listening) so no other socket takes the port:
    connecting is refused. `.release()` frees the port for a host that comes up later.
    """
    import socket

    class Dead:
        def __init__(self):
            self.sock = socket.socket()
            self.sock.bind(("127.0.0.1", 0))
            self.address = self.sock.getsockname()[:2]

        def release(self):
            self.sock.close()

    dead = Dead()
    yield dead
    dead.release()

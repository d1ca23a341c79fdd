"""Fixtures for the link tests: the two links of the emulated rig and real protocol peers at their ends."""

from __future__ import annotations

import pytest

from harness.link.emulated import EmulatedLink
from tests.support.link_peers import Client, Server, ZvtTerminal, iso_answer

ISO_PORT = 5000
ZVT_PORT = 20007


@pytest.fixture
def th(bench, topology) -> EmulatedLink:
    """The terminal-host link (ISO 8583 on 5000), started alone."""
    if topology is None:
        pytest.skip("needs network namespaces")
    return bench.device("terminal-host")


@pytest.fixture
def tt(bench, topology) -> EmulatedLink:
    """The till-terminal link (ZVT on 20007), started alone."""
    if topology is None:
        pytest.skip("needs network namespaces")
    return bench.device("till-terminal")


@pytest.fixture
def acquirer(topology):
    """An ISO 8583 acquirer host listening in the host namespace (0200 -> 0210 etc.)."""
    srv = Server(topology.nodes["host"], topology.ip("host"), ISO_PORT, "iso", iso_answer)
    yield srv
    srv.close()


@pytest.fixture
def zvt_terminal(topology):
    """A ZVT terminal listening in the terminal namespace (06 01 -> 80 00, 04 0F, 06 0F)."""
    srv = Server(topology.nodes["terminal"], topology.ip("terminal"), ZVT_PORT, "zvt", ZvtTerminal())
    yield srv
    srv.close()


def _clients(topology, node: str, peer: str, port: int, protocol: str):
    """connect(timeout) -> a Client from `node` to `peer`:`port`; all closed after the test."""
    clients: list[Client] = []

    def connect(timeout: float = 2.0) -> Client:
        c = Client(topology.nodes[node], (topology.ip(peer), port), protocol, timeout)
        clients.append(c)
        return c

    yield connect
    for c in clients:
        c.close()


@pytest.fixture
def terminal_client(topology, acquirer):
    """The terminal's connection to the acquirer, through the link."""
    yield from _clients(topology, "terminal", "host", ISO_PORT, "iso")


@pytest.fixture
def till_client(topology, zvt_terminal):
    """The till's ZVT connection to the terminal, through the link."""
    yield from _clients(topology, "till", "terminal", ZVT_PORT, "zvt")

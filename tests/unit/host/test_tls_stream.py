"""ISO 8583 over TLS on loopback: the host's TLS serving and the terminal's client (bench CA, resumption), and
TlsStream used by a reading and a writing thread at once (which an ssl.SSLSocket does not allow)."""

from __future__ import annotations

import socket
import threading

import pytest

from harness.host.server import HostServer
from harness.host.tls import BenchPki, TlsStream, client_context, offer, withdraw
from harness.terminal.acquirer import AcquirerClient, HostUnreachable


class Notes:
    def __init__(self):
        self.events = []

    def write(self, event, **fields):
        self.events.append((event, fields))


def sale(stan: str) -> dict:
    return {"t": "0200", "2": "4761739001010010", "3": "000000", "4": "000000000119", "11": stan,
            "41": "29001234", "49": "978"}


@pytest.fixture
def pki():
    p = BenchPki("host", "127.0.0.1")
    yield p
    p.close()
    assert not p.keys.exists()                                      # the key never outlives the bench


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_terminal_and_host_over_tls_resume_the_session(tmp_path, pki, version):
    srv = HostServer(socket.create_server(("127.0.0.1", 0)), tmp_path / "ledger.sqlite",
                     tls=pki.server_context(version))
    srv.start()
    address = srv.address
    offer(address, pki.client_context(version))
    notes = Notes()
    client = AcquirerClient(address, timeout=3.0, transcript=notes)
    try:
        assert client.exchange(sale("000001"))["39"] == "00"
        client._drop(client._sock)                                  # the connection is lost; the next resumes
        assert client.exchange(sale("000002"))["39"] == "00"
    finally:
        client.close()
        srv.close()
        withdraw(address)
    tls = [f for e, f in notes.events if e == "tls"]
    assert [t["version"] for t in tls] == [f"TLSv{version}"] * 2
    assert [t["resumed"] for t in tls] == [False, True]
    assert client_context(address) is None


def test_a_terminal_that_does_not_trust_the_host_never_sends(tmp_path, pki):
    other = BenchPki("host", "127.0.0.1")                           # another bench's CA
    srv = HostServer(socket.create_server(("127.0.0.1", 0)), tmp_path / "ledger.sqlite",
                     tls=pki.server_context("1.3"))
    srv.start()
    address = srv.address
    offer(address, other.client_context("1.3"))
    client = AcquirerClient(address, timeout=1.0)
    try:
        with pytest.raises(HostUnreachable, match="TLS handshake .* failed: .*certificate verify failed"):
            client.exchange(sale("000003"))
    finally:
        client.close()
        srv.close()
        withdraw(address)
        other.close()
    assert srv.stats["received"] == 0


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_one_thread_reads_while_another_writes(pki, version):
    a, b = socket.socketpair()
    server = TlsStream(a, pki.server_context(version), server_side=True)
    client = TlsStream(b, pki.client_context(version), server_side=False, server_hostname="127.0.0.1")
    t = threading.Thread(target=server.handshake)
    t.start()
    client.handshake()
    t.join()
    n, size = 300, 700
    got = {"client": bytearray(), "server": bytearray()}

    def read(stream, key):
        while len(got[key]) < n * size:
            data = stream.recv(65536)
            if not data:
                return
            got[key] += data

    def write(stream, byte):
        for _ in range(n):
            stream.sendall(bytes([byte]) * size)

    threads = [threading.Thread(target=read, args=(client, "client")),
               threading.Thread(target=read, args=(server, "server")),
               threading.Thread(target=write, args=(client, 1)), threading.Thread(target=write, args=(server, 2))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(20)
    assert got["server"] == b"\x01" * n * size and got["client"] == b"\x02" * n * size
    a.close()
    b.close()

"""ISO 8583 over TLS between the emulated terminal and host: a bench CA, the host's certificate, the contexts,
and a thread-safe TLS stream for a socket one thread reads while another writes.

When a rig's link carries `tls:` (`harness.core.rig.LinkTls`), the emulated host makes a `BenchPki` (a CA and a
leaf for its address, made with `cryptography`, valid one day), serves TLS with it, and `offer`s the client side
(a context trusting that CA, pinned to the rig's version) for its address; the terminal's acquirer client asks
`client_context(address)` when it connects. Certificates are written to the scenario's evidence, keys to a
temporary folder removed at close: never into the repository.

`TlsStream` drives an `ssl.SSLObject` over memory BIOs under a lock, so a reader blocked in `recv` and a
writer in `sendall` (the host answers from timers, the terminal sends while its reader waits) never use the
TLS state at once, which an `ssl.SSLSocket` does not allow.

>>> pki = BenchPki("host", "127.0.0.1")                                          # doctest: +SKIP
>>> server = pki.server_context("1.3"); client = pki.client_context("1.3")       # doctest: +SKIP
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import socket
import ssl
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
HANDSHAKE_TIMEOUT = 5.0


class TlsSetupError(RuntimeError):
    """The bench PKI or a TLS context could not be made; the message says what is missing."""


class BenchPki:
    """A bench CA and one server certificate for `name` at `ip`; certificates at `ca_path` and `cert_path` (the
    evidence; default: beside the keys), keys under a temporary folder removed by `close`."""

    def __init__(self, name: str, ip: str, ca_path: Path | None = None, cert_path: Path | None = None):
        try:
            from cryptography import x509
            from cryptography.hazmat.primitives import hashes, serialization
            from cryptography.hazmat.primitives.asymmetric import ec
            from cryptography.x509.oid import NameOID
        except ImportError:
            raise TlsSetupError("TLS on a link needs the 'cryptography' package: pip install cryptography") \
                from None
        self.keys = Path(tempfile.mkdtemp(prefix=f"posrig-{os.getpid()}-tls-"))   # named like the run's other files
        self._clients: dict[str, ssl.SSLContext] = {}
        now = datetime.datetime.now(datetime.UTC)
        start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1)

        def build(subject: str, issuer: Any, key: Any, signer: Any, ca: bool) -> Any:
            b = (x509.CertificateBuilder()
                 .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                 .issuer_name(issuer).public_key(key.public_key()).serial_number(x509.random_serial_number())
                 .not_valid_before(start).not_valid_after(end)
                 .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
            if ca:
                b = b.add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                                  key_encipherment=False, data_encipherment=False,
                                                  key_agreement=False, key_cert_sign=True, crl_sign=True,
                                                  encipher_only=False, decipher_only=False), critical=True)
            else:
                sans: list[Any] = [x509.DNSName(name), x509.DNSName("localhost")]
                for addr in {ip, "127.0.0.1"}:
                    try:
                        sans.append(x509.IPAddress(ipaddress.ip_address(addr)))
                    except ValueError:
                        sans.append(x509.DNSName(addr))
                b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
                b = b.add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                                    critical=False)
            return b.sign(signer, hashes.SHA256())

        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "posrig bench CA")])
        ca = build("posrig bench CA", ca_name, ca_key, ca_key, True)
        leaf_key = ec.generate_private_key(ec.SECP256R1())
        leaf = build(name, ca_name, leaf_key, ca_key, False)
        pem = serialization.Encoding.PEM
        self.ca_cert = ca_path or self.keys / "bench-ca.pem"
        self.ca_cert.write_bytes(ca.public_bytes(pem))
        self.cert = cert_path or self.keys / f"{name}-cert.pem"
        self.cert.write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
        self.key = self.keys / f"{name}-key.pem"
        self.key.write_bytes(leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))

    def server_context(self, version: str, tickets: int = 2) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ctx.maximum_version = VERSIONS[version]
        ctx.load_cert_chain(self.cert, self.key)
        ctx.num_tickets = tickets
        return ctx

    def client_context(self, version: str) -> ssl.SSLContext:
        """The client side (one per version: a session resumes only with the context that made it)."""
        if version in self._clients:
            return self._clients[version]
        ctx = self._clients[version] = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ctx.maximum_version = VERSIONS[version]
        ctx.load_verify_locations(self.ca_cert)
        return ctx

    def close(self) -> None:
        shutil.rmtree(self.keys, ignore_errors=True)


# -- where the emulated terminal finds the client side of an emulated host's TLS ------------------------------
_offers: dict[tuple[str, int], ssl.SSLContext] = {}
_servers: dict[tuple[str, int], ssl.SSLContext] = {}
_offers_lock = threading.Lock()


def offer(address: tuple[str, int], context: ssl.SSLContext, server: ssl.SSLContext | None = None) -> None:
    """Clients connecting to `address` speak TLS with `context` (the emulated host calls this when it starts);
    `server`: the host's own side, which a terminating link presents in its place (`harness.link.terminate`)."""
    key = (str(address[0]), int(address[1]))
    with _offers_lock:
        _offers[key] = context
        if server is not None:
            _servers[key] = server


def withdraw(address: tuple[str, int]) -> None:
    key = (str(address[0]), int(address[1]))
    with _offers_lock:
        _offers.pop(key, None)
        _servers.pop(key, None)


def client_context(address: tuple[str, int]) -> ssl.SSLContext | None:
    """The TLS context to reach `address` with, or None: plain TCP."""
    with _offers_lock:
        return _offers.get((str(address[0]), int(address[1])))


def server_offer(address: tuple[str, int]) -> tuple[ssl.SSLContext, ssl.SSLContext] | None:
    """(the host's server side, a client side trusting it) for `address`, or None when no host offers TLS."""
    key = (str(address[0]), int(address[1]))
    with _offers_lock:
        if key in _servers and key in _offers:
            return _servers[key], _offers[key]
    return None


class TlsStream:
    """A TLS connection over a connected socket, usable by one reading and one writing thread at once.

    Socket methods it does not define (settimeout, setsockopt, getpeername, fileno) go to the TCP socket.
    """

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, *, server_side: bool,
                 server_hostname: str | None = None, session: ssl.SSLSession | None = None):
        self.sock = sock
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_side=server_side,
                                    server_hostname=server_hostname, session=session)
        self._state = threading.Lock()       # the SSLObject and its BIOs
        self._wire = threading.Lock()        # TLS bytes leave in the order they were made

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)

    @property
    def version(self) -> str | None:
        return self.tls.version()

    @property
    def session(self) -> ssl.SSLSession | None:
        return self.tls.session

    @property
    def resumed(self) -> bool:
        return self.tls.session_reused

    def handshake(self, timeout: float = HANDSHAKE_TIMEOUT) -> None:
        """Complete the handshake within `timeout` seconds; raises OSError (ssl.SSLError, TimeoutError, ...)."""
        deadline = time.monotonic() + timeout
        previous = self.sock.gettimeout()
        try:
            while True:
                with self._wire, self._state:
                    try:
                        self.tls.do_handshake()
                        done = True
                    except ssl.SSLWantReadError:
                        done = False
                    out = self.outgoing.read()
                    if out:
                        self._send_raw(out)
                if done:
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("TLS handshake timed out")
                self.sock.settimeout(left)
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionResetError("connection closed during the TLS handshake")
                with self._state:
                    self.incoming.write(data)
        finally:
            self.sock.settimeout(previous)

    def recv(self, size: int) -> bytes:
        """Up to `size` bytes of plaintext; b"" when the peer closed (or the TLS stream ended)."""
        while True:
            with self._state:
                try:
                    data: bytes | None = self.tls.read(size)
                except ssl.SSLWantReadError:
                    data = None
                except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                    return b""
                pending = self.outgoing.pending
            if pending:
                self._flush()
            if data:
                return data
            raw = self.sock.recv(65536)
            if not raw:
                return b""
            with self._state:
                self.incoming.write(raw)

    def _flush(self) -> None:
        with self._wire:
            with self._state:
                out = self.outgoing.read()
            if out:
                self._send_raw(out)

    def _send_raw(self, out: bytes) -> None:
        """TLS bytes onto the TCP connection (called in order, under the wire lock)."""
        self.sock.sendall(out)

    def sendall(self, data: bytes) -> None:
        with self._wire:
            with self._state:
                self.tls.write(data)
                out = self.outgoing.read()
            self._send_raw(out)

    def send(self, data: bytes) -> int:
        self.sendall(data)
        return len(data)

    def shutdown(self, how: int) -> None:
        self.sock.shutdown(how)

    def close(self) -> None:
        self.sock.close()

"""TLS record structure, read without keys: where each record starts and ends in a TCP byte stream, and which
payment stage (`harness.protocols.stages`: handshake, request#N, response#N) a connection's records make.

Only the 5-byte record headers and the plaintext ServerHello are read. A record split across TCP segments or
several records in one segment are both fine (`RecordReader`). `TlsSession` turns one connection's records, in
the order the link sees them, into stages:

* TLS 1.2: application_data (type 23) only ever follows the handshake; the handshake is done with the second
  Finished (the record after each side's ChangeCipherSpec).
* TLS 1.3 (ServerHello with supported_versions 0x0304): the encrypted handshake tail is application_data too.
  The server's records before the client's Finished are its flight; the client's first application_data
  records up to the one exactly the size of a Finished for the negotiated hash (53 or 69 bytes: SHA-256 or
  SHA-384, AEAD tag 16) are its flight; after it the handshake is done. The server's first `tickets`
  application_data records after that are NewSessionTickets, never a response (OpenSSL: 2 after a full
  handshake, 1 after a resumption, which the ServerHello's pre_shared_key extension shows).
* Requests and responses are bursts: consecutive client application_data records are one request (its first
  record carries the stage), the server's answer to it one response. A server record can only answer a
  request when the server's TCP acknowledged that request's first record (a causal rule: tickets or other
  unsolicited records sent before the request arrived are never taken for the response).

>>> s, up, down = TlsSession(tickets=(0, 0)), RecordReader(), RecordReader()
>>> s.classify(down.feed(server_hello(0x1301))[0], False), s.version
(None, '1.3')
>>> s.classify(up.feed(record(APPLICATION_DATA, bytes(53)))[0], True)      # the client's Finished
'handshake'
>>> s.classify(up.feed(record(APPLICATION_DATA, bytes(90)))[0], True)
'request#1'
>>> s.classify(down.feed(record(APPLICATION_DATA, bytes(120)))[0], False, acked=up.offset)
'response#1'
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA, HEARTBEAT = 20, 21, 22, 23, 24
CONTENT_TYPES = {CHANGE_CIPHER_SPEC: "change_cipher_spec", ALERT: "alert", HANDSHAKE: "handshake",
                 APPLICATION_DATA: "application_data", HEARTBEAT: "heartbeat"}
HEADER = 5
MAX_RECORD = (1 << 14) + 2048          # the largest ciphertext a record may carry (RFC 8446 5.2)
HEAD_KEEP = 512                        # bytes of a handshake record kept (enough for any ServerHello we read)
CLIENT_HELLO, SERVER_HELLO = 1, 2
SUPPORTED_VERSIONS, PRE_SHARED_KEY = 0x002B, 0x0029
HRR_RANDOM = bytes.fromhex("CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C")
SHA384_SUITES = {0x1302}               # TLS_AES_256_GCM_SHA384; the other TLS 1.3 suites hash with SHA-256
AEAD_TAG = 16
DEFAULT_TICKETS = (2, 1)               # NewSessionTickets an OpenSSL server sends after a full / resumed TLS 1.3
                                       # handshake (its default num_tickets; one on resumption)


class RecordError(ValueError):
    """Bytes that cannot start a TLS record: the stream is not TLS (or was joined mid-record)."""


@dataclass(slots=True)
class Record:
    """One TLS record as the link saw it: type, where it sits in its direction's stream, its first bytes."""

    type: int
    version: int
    length: int                        # of the body (after the 5-byte header)
    start: int                         # stream offset of its first header byte
    head: bytearray = field(default_factory=bytearray)    # header + body, up to HEAD_KEEP bytes (handshake)

    @property
    def end(self) -> int:
        return self.start + HEADER + self.length

    @property
    def type_name(self) -> str:
        return CONTENT_TYPES.get(self.type, str(self.type))


def header(head: bytes) -> tuple[int, int, int] | None:
    """(type, version, body length) from a record's first 5 bytes; None while fewer have arrived.
    Raises RecordError for bytes no TLS record starts with.

    >>> header(bytes.fromhex("1703030035"))
    (23, 771, 53)
    """
    if len(head) < 1:
        return None
    if head[0] not in CONTENT_TYPES:
        raise RecordError(f"TLS record type expected, got byte 0x{head[0]:02x}")
    if len(head) >= 2 and head[1] != 3:
        raise RecordError(f"TLS record version 3.x expected, got major {head[1]}")
    if len(head) < HEADER:
        return None
    ctype, version, length = struct.unpack_from("!BHH", head)
    if length > MAX_RECORD:
        raise RecordError(f"TLS record length {length} exceeds the maximum {MAX_RECORD}")
    return ctype, version, length


class RecordReader:
    """One direction's byte stream, in order, into records (`feed` returns those whose header completed)."""

    def __init__(self) -> None:
        self.offset = 0                    # stream offset of the next byte fed
        self.pending = b""                 # an incomplete header
        self.current: Record | None = None
        self.left = 0                      # body bytes of `current` still to come
        self.broken: str | None = None

    def feed(self, data: bytes) -> list[Record]:
        found: list[Record] = []
        if self.broken:
            self.offset += len(data)
            return found
        buf = self.pending + data if self.pending else data
        base = self.offset - len(self.pending)
        self.pending = b""
        i, n = 0, len(buf)
        while i < n:
            if self.left:
                k = min(self.left, n - i)
                rec = self.current
                if rec is not None and rec.type == HANDSHAKE and len(rec.head) < HEAD_KEEP:
                    rec.head += buf[i:i + min(k, HEAD_KEEP - len(rec.head))]
                self.left -= k
                i += k
                continue
            try:
                parsed = header(buf[i:i + HEADER])
            except RecordError as exc:
                self.broken = str(exc)
                break
            if parsed is None:
                self.pending = bytes(buf[i:])
                break
            ctype, version, length = parsed
            rec = Record(ctype, version, length, base + i, bytearray(buf[i:i + HEADER]))
            found.append(rec)
            self.current, self.left = rec, length
            i += HEADER
        self.offset += len(data)
        return found


@dataclass(frozen=True)
class ServerHello:
    version: str                       # "1.2" | "1.3"
    suite: int
    retry: bool                        # a HelloRetryRequest: another ClientHello and ServerHello follow
    resumed: bool = False              # TLS 1.3: the server accepted a pre-shared key (a resumption ticket)

    @property
    def finished_record(self) -> int:
        """Body length of an encrypted TLS 1.3 Finished record for this suite (verify data + headers + tag)."""
        return 4 + (48 if self.suite in SHA384_SUITES else 32) + 1 + AEAD_TAG


def parse_server_hello(head: bytes) -> ServerHello | None:
    """The negotiated version and suite from a ServerHello record's first bytes (None: not one, or too short)."""
    try:
        body = head[HEADER:]
        if len(body) < 4 + 2 + 32 + 1 or body[0] != SERVER_HELLO:
            return None
        at = 4
        legacy = struct.unpack_from("!H", body, at)[0]
        random = body[at + 2:at + 34]
        at += 34
        at += 1 + body[at]                             # session id
        suite = struct.unpack_from("!H", body, at)[0]
        at += 3                                        # suite, compression
        version = {0x0301: "1.0", 0x0302: "1.1"}.get(legacy, "1.2")
        resumed = False
        if at + 2 <= len(body):
            end = at + 2 + struct.unpack_from("!H", body, at)[0]
            at += 2
            while at + 4 <= min(end, len(body)):
                ext, size = struct.unpack_from("!HH", body, at)
                if ext == SUPPORTED_VERSIONS and size == 2 and at + 6 <= len(body):
                    if struct.unpack_from("!H", body, at + 4)[0] == 0x0304:
                        version = "1.3"
                resumed = resumed or ext == PRE_SHARED_KEY
                at += 4 + size
        return ServerHello(version, suite, retry=bytes(random) == HRR_RANDOM, resumed=resumed)
    except (struct.error, IndexError):
        return None


class TlsSession:
    """One connection's TLS records, in link order, into stages (see the module docstring)."""

    def __init__(self, tickets: tuple[int, int] = DEFAULT_TICKETS):
        self.tickets = tickets                     # TLS 1.3 NewSessionTickets after a full, a resumed handshake
        self.resumed = False
        self.hello: Record | None = None           # the ServerHello record (its head may still be growing)
        self.client_hello = False                  # the client's first handshake record was seen
        self.version: str | None = None
        self.finished_len: int | None = None
        self.done = False                          # handshake done
        self.ccs = {True: False, False: False}     # TLS 1.2: ChangeCipherSpec seen, per side (True: client)
        self.finished = {True: False, False: False}
        self.tickets_left = 0
        self.requests = 0
        self.responses = 0
        self.phase = "idle"                        # idle | request | response
        self.request_first_end = 0                 # client stream offset after the current request's 1st record
        self.skipped: list[tuple[int, str]] = []   # (server record offset, why it is no response) for evidence

    def _server_hello(self) -> ServerHello | None:
        if self.hello is None:
            return None
        sh = parse_server_hello(bytes(self.hello.head))
        if sh is not None and sh.retry:
            self.hello = None                     # HelloRetryRequest: the real ServerHello comes later
            return None
        if sh is not None and self.version is None:
            self.version = sh.version
            self.finished_len = sh.finished_record if sh.version == "1.3" else None
            self.resumed = sh.resumed
        return sh

    def classify(self, rec: Record, from_client: bool, acked: int | None = None) -> str | None:
        """The stage `rec` starts ('handshake', 'request#N', 'response#N') or None (no stage: a handshake
        record, the rest of a burst, a ticket, an alert). `acked`: for a server record, how much of the client's
        stream (offset) the server's TCP had acknowledged in the segment carrying the record's header."""
        if rec.type == HANDSHAKE and not from_client and self.hello is None and rec.head[HEADER:HEADER + 1] == \
                bytes([SERVER_HELLO]):
            self.hello = rec
            self._server_hello()
            return None
        if from_client and rec.type == HANDSHAKE:
            self.client_hello = True
        if self.version is None and self.hello is not None:
            self._server_hello()
        if not self.done:
            return self._handshake(rec, from_client)
        if rec.type != APPLICATION_DATA:
            return None
        if from_client:
            if self.phase == "request":
                return None
            self.requests += 1
            self.phase = "request"
            self.request_first_end = rec.end
            return f"request#{self.requests}"
        if self.tickets_left:
            self.tickets_left -= 1
            self.skipped.append((rec.start, "NewSessionTicket"))
            return None
        if self.phase == "response":
            return None
        if self.phase == "request" and (acked is None or acked >= self.request_first_end):
            self.responses = self.requests
            self.phase = "response"
            return f"response#{self.responses}"
        self.skipped.append((rec.start, "server data before any request reached the server"))
        return None

    def _handshake(self, rec: Record, from_client: bool) -> str | None:
        if self.version == "1.3":
            if from_client and rec.type == APPLICATION_DATA and rec.length == self.finished_len:
                self.done = True
                self.tickets_left = self.tickets[1 if self.resumed else 0]
                return "handshake"
            return None
        if rec.type == CHANGE_CIPHER_SPEC:
            self.ccs[from_client] = True
            return None
        if rec.type == HANDSHAKE and self.ccs[from_client] and not self.finished[from_client]:
            self.finished[from_client] = True
            if self.finished[not from_client]:
                self.done = True
                return "handshake"
            return None
        if rec.type == APPLICATION_DATA and self.version is None and self.hello is None and not self.client_hello:
            # No hello seen at all (the link joined mid-connection): take application data at face value.
            # After a ClientHello, application data before the ServerHello is 0-RTT early data: no stage.
            self.done = True
            return self.classify(rec, from_client)
        return None


def record(ctype: int, body: bytes, version: int = 0x0303) -> bytes:
    """A record's bytes (for tests and examples)."""
    return struct.pack("!BHH", ctype, version, len(body)) + body


def server_hello(suite: int = 0x1301, tls13: bool = True, retry: bool = False, resumed: bool = False) -> bytes:
    """A minimal ServerHello record (for tests and examples); `resumed`: with a pre_shared_key extension."""
    exts = struct.pack("!HHH", SUPPORTED_VERSIONS, 2, 0x0304) if tls13 else b""
    exts += struct.pack("!HHH", PRE_SHARED_KEY, 2, 0) if resumed else b""
    body = (struct.pack("!H", 0x0303) + (HRR_RANDOM if retry else bytes(32)) + b"\x00"
            + struct.pack("!HB", suite, 0) + struct.pack("!H", len(exts)) + exts)
    return record(HANDSHAKE, bytes([SERVER_HELLO]) + len(body).to_bytes(3, "big") + body)

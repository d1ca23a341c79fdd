"""The reference till's own ZVT client (ECR side), written from the ZVT ECR-interface specification (13.x).

Wire format: an APDU is `CLASS INSTR LEN DATA`; LEN 0xFF means two more bytes follow with the length,
little-endian (extended form). Data of most commands is a run of bitmaps (BMP): one tag byte, then a value of
a fixed length or with an `Fx Fy` (LL) / `Fx Fy Fz` (LLL) length prefix; BMP 06 holds a BER-TLV container.

    >>> encode_apdu(AUTHORIZATION, bmp(0x04, 1999))       # pay 19.99
    b'\\x06\\x01\\x07\\x04\\x00\\x00\\x00\\x00\\x19\\x99'

The flow of an authorization (the terminal, "PT", is master once it has acked the request):

    ECR 06 01 (04 amount)      ->  PT 80 00 00
    PT 04 FF intermediate      ->  ECR 80 00 00      (any number, also 06 D1 / 06 D3 print lines)
    PT 04 0F status information ->  ECR 80 00 00 book | 84 9C 00 wait | 84 66 00 cannot hand over goods
    PT 06 0F completion        ->  ECR 80 00 00      or   PT 06 1E abort (result code) -> ECR 80 00 00

The client never decides what a result means for the sale: `authorization()` reports what arrived and raises
`NotStarted` (no ack: the terminal never took the request) or `ResultLost` (acked, then silence or a dropped
connection: the outcome is unknown and must be asked for with `repeat_receipt()`).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.core.masking import mask_pan

# -- commands (class, instruction), declared once -----------------------------------------------------------
ACK = (0x80, 0x00)
REGISTRATION = (0x06, 0x00)
AUTHORIZATION = (0x06, 0x01)
STATUS_INFORMATION = (0x04, 0x0F)
INTERMEDIATE_STATUS = (0x04, 0xFF)
COMPLETION = (0x06, 0x0F)
ABORT = (0x06, 0x1E)                  # PT -> ECR: the command failed, first data byte is the result code
ECR_ABORT = (0x06, 0xB0)              # ECR -> PT: stop the running transaction
STATUS_ENQUIRY = (0x05, 0x01)
REPEAT_RECEIPT = (0x06, 0x20)
REVERSAL = (0x06, 0x30)
PRINT_LINE = (0x06, 0xD1)
PRINT_TEXT_BLOCK = (0x06, 0xD3)

COMMAND_NAMES = {
    ACK: "ack", REGISTRATION: "registration", AUTHORIZATION: "authorization",
    STATUS_INFORMATION: "status-information",
    INTERMEDIATE_STATUS: "intermediate-status", COMPLETION: "completion", ABORT: "abort",
    ECR_ABORT: "ecr-abort", STATUS_ENQUIRY: "status-enquiry", REPEAT_RECEIPT: "repeat-receipt",
    REVERSAL: "reversal", PRINT_LINE: "print-line", PRINT_TEXT_BLOCK: "print-text-block",
}

# Registration config byte (06 00): what the ECR wants from the PT
CONFIG_INTERMEDIATE_STATUS = 0x08    # PT sends 04 FF intermediate status
CONFIG_ECR_CONTROLS_PAYMENT = 0x10   # payments are started from the ECR only (no amount input on the PT)
ECR_CONFIG = CONFIG_INTERMEDIATE_STATUS | CONFIG_ECR_CONTROLS_PAYMENT

# ECR answers to the terminal
ANSWER_BOOK = bytes([0x80, 0x00, 0x00])          # "80 00": booked, goods handed over
ANSWER_WAIT = bytes([0x84, 0x9C, 0x00])          # "84 9C": repeat status information later
ANSWER_NO_GOODS = bytes([0x84, 0x66, 0x00])      # "84 66": cannot hand over goods; PT reverses automatically

# -- result codes (BMP 27 and 06 1E), the subset the till reasons about --------------------------------------
RESULT_SUCCESS = 0x00
RESULT_ABORT_TIMEOUT = 0x6C          # abort via timeout or abort key
RESULT_COMMUNICATION_ERROR = 0x7D
RESULT_DIALUP_ERROR = 0x9B           # error from dial-up / communication fault (host unreachable)
RESULT_PLEASE_WAIT = 0x9C
RESULT_REMOTE_NO_RESPONSE = 0xA1     # remote station (host) does not respond
RESULT_NO_CONNECTION = 0xA3          # no connection to the host
RESULT_SYSTEM_ERROR = 0xFF
COMMUNICATION_FAILURES = frozenset({RESULT_COMMUNICATION_ERROR, RESULT_DIALUP_ERROR,
                                    RESULT_REMOTE_NO_RESPONSE, RESULT_NO_CONNECTION})
RESULT_TEXT = {
    0x00: "no error", 0x05: "declined (do not honour)", 0x51: "declined (insufficient funds)",
    0x64: "card not readable", 0x66: "processing error", 0x6C: "abort via timeout or abort key",
    0x78: "card expired", 0x7D: "communication error", 0x83: "function not possible",
    0x9A: "ZVT protocol error", 0x9B: "error from dial-up/communication fault", 0x9C: "please wait",
    0xA0: "receiver not ready", 0xA1: "remote station does not respond", 0xA3: "no connection",
    0x37: "wrong PIN", 0xFF: "system error",
}


def result_text(code: int | None) -> str:
    if code is None:
        return "no result"
    return RESULT_TEXT.get(code, "declined by host" if 0x01 <= code <= 0x63 else "error")


# -- bitmaps: tag -> (name, length, format); length is a byte count, "LL", "LLL" or "TLV" --------------------
@dataclass(frozen=True)
class Bmp:
    name: str
    length: int | str
    format: str                      # bcd | binary | ascii | pan | tlv


BMPS: dict[int, Bmp] = {
    0x01: Bmp("timeout", 1, "binary"),
    0x02: Bmp("max_status_infos", 1, "binary"),
    0x03: Bmp("service_byte", 1, "binary"),
    0x04: Bmp("amount", 6, "bcd"),
    0x05: Bmp("pump_number", 1, "binary"),
    0x06: Bmp("tlv", "TLV", "tlv"),
    0x0B: Bmp("trace", 3, "bcd"),
    0x0C: Bmp("time", 3, "bcd"),
    0x0D: Bmp("date", 2, "bcd"),
    0x0E: Bmp("expiry", 2, "bcd"),
    0x17: Bmp("card_sequence", 2, "bcd"),
    0x19: Bmp("payment_type", 1, "binary"),
    0x22: Bmp("pan", "LL", "pan"),
    0x23: Bmp("track2", "LL", "binary"),
    0x24: Bmp("track3", "LLL", "binary"),
    0x27: Bmp("result", 1, "binary"),
    0x29: Bmp("terminal_id", 4, "bcd"),
    0x2A: Bmp("vu_number", 15, "ascii"),
    0x2D: Bmp("track1", "LL", "binary"),
    0x2E: Bmp("chip_data", "LLL", "binary"),
    0x37: Bmp("original_trace", 3, "bcd"),
    0x3A: Bmp("cvv", 2, "bcd"),
    0x3B: Bmp("auth_code", 8, "ascii"),          # "AID": authorisation attribute
    0x3C: Bmp("additional_text", "LLL", "ascii"),
    0x3D: Bmp("password", 3, "bcd"),
    0x49: Bmp("currency", 2, "bcd"),
    0x60: Bmp("totals", "LLL", "binary"),
    0x87: Bmp("receipt_no", 2, "bcd"),
    0x88: Bmp("turnover_no", 3, "bcd"),
    0x8A: Bmp("card_type", 1, "binary"),
    0x8B: Bmp("card_name", "LL", "ascii"),
    0x8C: Bmp("card_type_id", 1, "binary"),
    0x9A: Bmp("geldkarte", "LLL", "binary"),
    0xA0: Bmp("result_as", 1, "binary"),
    0xA7: Bmp("chip_ef_id", "LL", "binary"),
    0xAA: Bmp("date_full", 3, "bcd"),
    0xAF: Bmp("ef_info", "LLL", "binary"),
    0xBA: Bmp("aid_parameter", 5, "binary"),
}
BMP_TAGS = {b.name: tag for tag, b in BMPS.items()}

TLV_ONLINE_FLAG = 0x1F11             # 0 = offline transaction, 1 = online
TLV_NAMES = {0x1F11: "online_flag", 0x07: "text_lines", 0x42: "application_name", 0x43: "application_id",
             0x41: "card_type_id", 0x1F10: "cardholder_auth", 0x1F12: "card_technology",
             0xC4: "ecr_transaction"}


class ZvtError(Exception):
    """A ZVT exchange failed; the message says what arrived and what was expected."""


class MalformedApdu(ZvtError):
    """Bytes that are not a valid APDU (bad length, truncated bitmap)."""


class NotStarted(ZvtError):
    """The terminal never acknowledged the request (no connection, no 80 00 within T3, or a NAK)."""


class AckTimeout(NotStarted):
    """No 80 00 within T3: the request may still be on its way to the terminal."""


class ResultLost(ZvtError):
    """The terminal took the request, then the result never arrived (timeout or the connection dropped)."""

    def __init__(self, message: str, *, last: Apdu | None = None, status_info: dict | None = None,
                 answered: bytes | None = None):
        super().__init__(message)
        self.last = last
        self.status_info = status_info      # a 04 0F that did arrive before the loss, if any
        self.answered = answered            # what the till answered to it


# -- encoding ------------------------------------------------------------------------------------------------
def bcd(value: int | str, size: int) -> bytes:
    """`value` as packed BCD, right-aligned in `size` bytes."""
    digits = str(value).rjust(size * 2, "0")
    if len(digits) > size * 2 or not digits.isdigit():
        raise ValueError(f"{value!r} does not fit {size} BCD bytes")
    return bytes.fromhex(digits)


def ll_prefix(length: int, digits: int) -> bytes:
    """ZVT variable-length prefix: each decimal digit of the length in the low nibble of an Fx byte."""
    text = str(length).rjust(digits, "0")
    if len(text) > digits:
        raise ValueError(f"length {length} does not fit {digits} digits")
    return bytes(0xF0 | int(d) for d in text)


def bmp(tag: int, value: Any) -> bytes:
    """One bitmap: tag byte + value encoded per `BMPS`."""
    spec = BMPS[tag]
    if spec.format == "bcd":
        body = bcd(value, int(spec.length))
    elif spec.format == "binary" and isinstance(spec.length, int):
        body = bytes([value]) if isinstance(value, int) else bytes(value)
    elif spec.format == "ascii" and isinstance(spec.length, int):
        body = str(value).encode("ascii").ljust(spec.length, b"\x00")[: spec.length]
    elif spec.format == "tlv":
        return bytes([tag]) + tlv_length(len(value)) + bytes(value)
    else:
        body = value.encode("ascii") if isinstance(value, str) else bytes(value)
    if spec.length in ("LL", "LLL"):
        body = ll_prefix(len(body), len(str(spec.length))) + body
    return bytes([tag]) + body


def tlv_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    if n < 0x100:
        return bytes([0x81, n])
    return bytes([0x82, n >> 8, n & 0xFF])


def encode_apdu(command: tuple[int, int], data: bytes = b"") -> bytes:
    """`CLASS INSTR LEN DATA`, with the extended `FF lo hi` length when data is 255 bytes or more."""
    if len(data) < 0xFF:
        return bytes([*command, len(data)]) + data
    if len(data) > 0xFFFF:
        raise ValueError(f"APDU data of {len(data)} bytes exceeds the ZVT maximum of 65535")
    return bytes([*command, 0xFF, len(data) & 0xFF, len(data) >> 8]) + data


def authorization(amount_cents: int, currency: int = 978) -> bytes:
    """06 01: pay `amount_cents` (BMP 04) in `currency` (BMP 49, ISO 4217 numeric)."""
    return encode_apdu(AUTHORIZATION, bmp(0x04, amount_cents) + bmp(0x49, currency))


def registration(password: str = "000000", config: int = ECR_CONFIG, currency: int = 978) -> bytes:
    """06 00: password (3 BCD), config byte, currency (2 BCD, no BMP tag)."""
    return encode_apdu(REGISTRATION, bcd(password, 3) + bytes([config]) + bcd(currency, 2))


def status_enquiry(password: str = "000000") -> bytes:
    return encode_apdu(STATUS_ENQUIRY, bcd(password, 3))


def repeat_receipt(password: str = "000000") -> bytes:
    return encode_apdu(REPEAT_RECEIPT, bcd(password, 3))


def reversal(receipt_no: int, password: str = "000000") -> bytes:
    return encode_apdu(REVERSAL, bcd(password, 3) + bmp(0x87, receipt_no))


def ecr_abort() -> bytes:
    return encode_apdu(ECR_ABORT)


# -- decoding ------------------------------------------------------------------------------------------------
@dataclass
class Apdu:
    """One decoded APDU."""

    cls: int
    instr: int
    data: bytes

    @property
    def command(self) -> tuple[int, int]:
        return (self.cls, self.instr)

    @property
    def name(self) -> str:
        if self.cls == 0x84:
            return f"nak-{self.instr:02x}"
        return COMMAND_NAMES.get(self.command, f"unknown-{self.cls:02x}{self.instr:02x}")

    def encode(self) -> bytes:
        return encode_apdu(self.command, self.data)

    def fields(self) -> dict[str, Any]:
        """Bitmaps of commands that carry them (status information, completion); else the raw shape."""
        if self.command == ABORT:
            return {"result": self.data[0] if self.data else None}
        if self.command == INTERMEDIATE_STATUS:
            return {"intermediate_status": self.data[0] if self.data else None}
        if self.command in (STATUS_INFORMATION, COMPLETION):
            return parse_bmps(self.data)
        if self.command == PRINT_LINE:
            return {"text": self.data[1:].decode("latin-1", "replace") if self.data else ""}
        return {}

    def summary(self) -> dict[str, Any]:
        """A masked, JSON-able description for the journal (never the clear PAN)."""
        out: dict[str, Any] = {"apdu": self.name, "class": f"{self.cls:02x}", "instr": f"{self.instr:02x}",
                               "length": len(self.data)}
        try:
            out.update(self.fields())
        except MalformedApdu as exc:
            out["error"] = str(exc)
        return out


def read_length(buf: bytes) -> tuple[int, int] | None:
    """(header size, data length) of the APDU at the start of `buf`, or None when more bytes are needed."""
    if len(buf) < 3:
        return None
    if buf[2] != 0xFF:
        return 3, buf[2]
    if len(buf) < 5:
        return None
    return 5, buf[3] | buf[4] << 8


def decode_apdu(raw: bytes) -> Apdu:
    """Decode exactly one APDU; raise MalformedApdu when `raw` is truncated or has trailing bytes."""
    head = read_length(raw)
    if head is None:
        raise MalformedApdu(f"truncated APDU header: {raw.hex(' ')}")
    size, length = head
    if len(raw) != size + length:
        raise MalformedApdu(f"APDU {raw[:2].hex(' ')} declares {length} data bytes but carries "
                            f"{len(raw) - size}: {raw[:24].hex(' ')}")
    return Apdu(raw[0], raw[1], bytes(raw[size:]))


def _digits(body: bytes) -> str:
    return body.hex().upper()


def _ll(data: bytes, pos: int, digits: int) -> tuple[int, int]:
    if pos + digits > len(data):
        raise MalformedApdu(f"truncated length prefix at byte {pos}")
    n = 0
    for b in data[pos:pos + digits]:
        if b >> 4 != 0xF:
            raise MalformedApdu(f"bad LL length byte {b:02x} at byte {pos} (expected Fx)")
        n = n * 10 + (b & 0x0F)
    return n, pos + digits


def parse_tlv(data: bytes) -> dict[str, Any]:
    """A BER-TLV container: tag -> hex value (named tags by name, the online flag as int)."""
    out: dict[str, Any] = {}
    pos = 0
    while pos < len(data):
        tag = data[pos]
        pos += 1
        if tag & 0x1F == 0x1F:
            while pos < len(data):
                tag = tag << 8 | data[pos]
                pos += 1
                if not tag & 0x80:
                    break
        if pos >= len(data):
            raise MalformedApdu(f"TLV tag {tag:x} without a length")
        n = data[pos]
        pos += 1
        if n & 0x80:
            k = n & 0x7F
            n = int.from_bytes(data[pos:pos + k], "big")
            pos += k
        value = data[pos:pos + n]
        if len(value) != n:
            raise MalformedApdu(f"TLV tag {tag:x} declares {n} bytes, {len(value)} present")
        pos += n
        name = TLV_NAMES.get(tag, f"tag_{tag:x}")
        if tag == TLV_ONLINE_FLAG:
            out[name] = value[0] if value else None
        elif tag & 0x20 and tag < 0x100:            # constructed: nested container
            out[name] = parse_tlv(value)
        else:
            out[name] = value.decode("latin-1") if tag in (0x07, 0x42) else value.hex()
    return out


def parse_bmps(data: bytes) -> dict[str, Any]:
    """Bitmaps -> {name: value}. The PAN is returned masked. An unknown tag ends parsing (kept as
    `unparsed`)."""
    out: dict[str, Any] = {}
    pos = 0
    while pos < len(data):
        tag = data[pos]
        spec = BMPS.get(tag)
        if spec is None:
            out["unparsed"] = data[pos:].hex()
            break
        pos += 1
        if spec.length == "TLV":
            if pos >= len(data):
                raise MalformedApdu("BMP 06 without a length")
            n = data[pos]
            pos += 1
            if n & 0x80:
                k = n & 0x7F
                n = int.from_bytes(data[pos:pos + k], "big")
                pos += k
        elif spec.length in ("LL", "LLL"):
            n, pos = _ll(data, pos, len(str(spec.length)))
        else:
            n = int(spec.length)
        body = data[pos:pos + n]
        if len(body) != n:
            raise MalformedApdu(f"BMP {tag:02x} ({spec.name}) needs {n} bytes, {len(body)} present")
        pos += n
        if spec.format == "bcd":
            text = _digits(body)
            out[spec.name] = int(text) if text.isdigit() and spec.name in ("amount", "trace", "receipt_no",
                                                                             "turnover_no", "original_trace",
                                                                             "currency") else text
        elif spec.format == "pan":
            digits = _digits(body).rstrip("F").replace("E", "*")
            out["pan"] = mask_pan(digits) if "*" not in digits else digits
        elif spec.format == "ascii":
            out[spec.name] = body.rstrip(b"\x00 ").decode("latin-1")
        elif spec.format == "tlv":
            out.update(parse_tlv(body))
        elif spec.length == 1:
            out[spec.name] = body[0]
        else:
            out[spec.name] = body.hex()
    return out


# -- transport -----------------------------------------------------------------------------------------------
Transcript = Callable[[str, dict[str, Any]], None]      # (direction "tx"/"rx", masked summary) -> None


class EcrLink:
    """One TCP connection to the terminal's ECR port, framing APDUs both ways."""

    def __init__(self, sock: socket.socket, transcript: Transcript | None = None):
        self.sock = sock
        self._buf = b""
        self._transcript = transcript

    @classmethod
    def open(cls, address: tuple[str, int], timeout: float, transcript: Transcript | None = None) -> EcrLink:
        try:
            sock = socket.create_connection(address, timeout=timeout)
        except OSError as exc:
            raise NotStarted(f"cannot connect to the terminal's ECR port {address[0]}:{address[1]}: "
                             f"{exc}") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(sock, transcript)

    def _log(self, direction: str, apdu: Apdu) -> None:
        if self._transcript:
            self._transcript(direction, apdu.summary())

    def send(self, raw: bytes) -> None:
        self._log("tx", decode_apdu(raw))
        self.sock.sendall(raw)

    def unread(self, apdu: Apdu) -> None:
        """Put an APDU back in front of the receive buffer."""
        self._buf = apdu.encode() + self._buf

    def receive(self, timeout: float) -> Apdu:
        """The next APDU; TimeoutError after `timeout` s of nothing, ConnectionError when the peer closed."""
        deadline = time.monotonic() + timeout
        while True:
            head = read_length(self._buf)
            if head and len(self._buf) >= sum(head):
                size, length = head
                raw, self._buf = self._buf[:size + length], self._buf[size + length:]
                apdu = decode_apdu(raw)
                self._log("rx", apdu)
                return apdu
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no complete APDU within {timeout:.2f}s (have {self._buf[:16].hex(' ')})")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(4096)
            except TimeoutError:
                continue
            if not chunk:
                raise ConnectionError("the terminal closed the connection"
                                      + (f" mid-APDU ({self._buf[:16].hex(' ')})" if self._buf else ""))
            self._buf += chunk

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


# -- the ECR client ------------------------------------------------------------------------------------------
@dataclass
class Timers:
    """Seconds, already scaled. `ack` is T3; `result` is how long the till waits in silence for the
    terminal."""

    ack: float = 5.0
    result: float = 40.0
    overall: float = 180.0          # T4


@dataclass
class PaymentResult:
    """What the terminal reported for one command, in order of arrival."""

    status_info: dict[str, Any] | None = None      # the 04 0F fields (PAN masked)
    answered: str | None = None                    # what the till answered to the 04 0F: book, wait, no-goods
    completed: bool = False                        # 06 0F arrived
    completion: dict[str, Any] = field(default_factory=dict)
    abort_code: int | None = None                  # 06 1E arrived with this result code
    intermediate: list[int] = field(default_factory=list)
    print_lines: list[str] = field(default_factory=list)

    @property
    def result_code(self) -> int | None:
        if self.abort_code is not None:
            return self.abort_code
        return (self.status_info or {}).get("result")

    @property
    def approved(self) -> bool:
        """Approved and completed: 04 0F with result 00, booked by the till, then 06 0F."""
        return self.completed and self.abort_code is None and self.result_code == RESULT_SUCCESS \
            and self.answered == "book"

    @property
    def offline(self) -> bool:
        return is_offline(self.status_info or {})


def is_offline(info: dict[str, Any]) -> bool:
    """The terminal approved without the host: TLV 1F11 online flag 0, or BMP 3C text starting 'OFFLINE'."""
    text = str(info.get("additional_text") or "")
    return info.get("online_flag") == 0 or text.upper().startswith("OFFLINE")


# 04 0F fields -> ANSWER_BOOK / ANSWER_NO_GOODS / ANSWER_WAIT
StatusInfoHandler = Callable[[dict[str, Any]], bytes]


class EcrClient:
    """The till's ZVT client. One connection per command, so a cut link never poisons the next command."""

    def __init__(self, address: tuple[str, int], timers: Timers, password: str = "000000",
                 transcript: Transcript | None = None):
        self.address = address
        self.timers = timers
        self.password = password
        self.transcript = transcript

    def _open(self) -> EcrLink:
        return EcrLink.open(self.address, self.timers.ack, self.transcript)

    def _await_ack(self, link: EcrLink, what: str) -> None:
        try:
            reply = link.receive(self.timers.ack)
        except TimeoutError as exc:
            raise AckTimeout(f"{what}: no acknowledgement from the terminal within T3 "
                             f"({self.timers.ack:.2f}s): {exc}") from exc
        except (ConnectionError, OSError) as exc:
            raise NotStarted(f"{what}: no acknowledgement from the terminal ({exc})") from exc
        if reply.cls == 0x84:
            raise NotStarted(f"{what}: the terminal refused it with NAK 84 {reply.instr:02x}")
        if reply.command != ACK:
            raise NotStarted(f"{what}: expected 80 00 00, got {reply.encode()[:16].hex(' ')}")

    def authorization(self, amount_cents: int, on_status_info: StatusInfoHandler,
                      abort: threading.Event | None = None,
                      on_abort_sent: Callable[[], bool] | None = None) -> PaymentResult:
        """Run 06 01 to its end. `on_status_info` answers the 04 0F (issue of goods). When `abort` is set
        mid-transaction, 06 B0 is sent; `on_abort_sent()` returning True stops waiting at once (the caller
        trusts the abort) and raises ResultLost."""
        link = self._open()
        try:
            try:
                link.send(authorization(amount_cents))
            except OSError as exc:
                raise NotStarted(f"06 01 could not be sent: {exc}") from exc
            try:
                self._await_ack(link, "06 01 authorization")
            except AckTimeout as exc:
                return self._withdraw(link, exc, on_status_info)
            return self._until_end(link, on_status_info, abort, on_abort_sent)
        finally:
            link.close()

    def _withdraw(self, link: EcrLink, exc: AckTimeout, on_status_info: StatusInfoHandler) -> PaymentResult:
        """No ack within T3, yet the 06 01 may only be delayed: send 06 B0 on the same connection, right behind
        it, so a late request is aborted the moment it arrives instead of starting a payment behind the till's
        back. If the terminal answers after all, serve it to the end (it reports how it stopped)."""
        try:
            link.send(ecr_abort())
            first = link.receive(2 * self.timers.ack)
        except (TimeoutError, ConnectionError, OSError):
            raise exc from None
        if first.command != ACK:                 # not the late ack: leave it for the loop to handle
            link.unread(first)
        return self._until_end(link, on_status_info)

    def _until_end(self, link: EcrLink, on_status_info: StatusInfoHandler | None,
                   abort: threading.Event | None = None,
                   on_abort_sent: Callable[[], bool] | None = None) -> PaymentResult:
        """Serve the terminal (ack intermediates, answer 04 0F) until 06 0F or 06 1E."""
        result = PaymentResult()
        started = time.monotonic()
        last_activity = started
        abort_sent = False
        while True:
            now = time.monotonic()
            if now - last_activity >= self.timers.result or now - started >= self.timers.overall:
                raise ResultLost(f"no result from the terminal for {now - last_activity:.2f}s "
                                 f"(till result timeout {self.timers.result:.2f}s)",
                                 status_info=result.status_info, answered=result.answered)
            if abort is not None and abort.is_set() and not abort_sent:
                abort_sent = True
                try:
                    link.send(ecr_abort())
                except OSError:
                    pass
                if on_abort_sent is not None and on_abort_sent():
                    raise ResultLost("abort sent; the outcome was not awaited",
                                     status_info=result.status_info, answered=result.answered)
            try:
                apdu = link.receive(min(0.05, self.timers.result) if abort is not None and not abort_sent
                                    else self.timers.result)
            except TimeoutError:
                continue
            except (ConnectionError, OSError) as exc:
                raise ResultLost(f"connection to the terminal lost before the result: {exc}",
                                 status_info=result.status_info, answered=result.answered) from exc
            last_activity = time.monotonic()
            try:
                if apdu.command == STATUS_INFORMATION:
                    result.status_info = apdu.fields()
                    answer = on_status_info(result.status_info) if on_status_info else ANSWER_BOOK
                    result.answered = {ANSWER_BOOK: "book", ANSWER_WAIT: "wait",
                                       ANSWER_NO_GOODS: "no-goods"}.get(answer, answer.hex())
                    link.send(answer)
                elif apdu.command == COMPLETION:
                    result.completed = True
                    result.completion = apdu.fields() if apdu.data else {}
                    link.send(ANSWER_BOOK)
                    return result
                elif apdu.command == ABORT:
                    result.abort_code = apdu.data[0] if apdu.data else RESULT_SYSTEM_ERROR
                    link.send(ANSWER_BOOK)
                    return result
                elif apdu.command == INTERMEDIATE_STATUS:
                    result.intermediate.append(apdu.data[0] if apdu.data else 0)
                    link.send(ANSWER_BOOK)
                elif apdu.command in (PRINT_LINE, PRINT_TEXT_BLOCK):
                    result.print_lines.append(apdu.fields().get("text", ""))
                    link.send(ANSWER_BOOK)
                elif apdu.command == ACK:
                    continue                     # the ack of our 06 B0
                else:
                    link.send(ANSWER_BOOK)       # tolerate commands we do not use
            except OSError as exc:
                raise ResultLost(f"connection to the terminal lost while answering {apdu.name}: {exc}",
                                 status_info=result.status_info, answered=result.answered) from exc

    def _simple(self, request: bytes, what: str) -> PaymentResult:
        link = self._open()
        try:
            try:
                link.send(request)
            except OSError as exc:
                raise NotStarted(f"{what} could not be sent: {exc}") from exc
            self._await_ack(link, what)
            return self._until_end(link, None)
        finally:
            link.close()

    def register(self) -> PaymentResult:
        """06 00: tell the terminal how this ECR works (intermediate status, payments started by the ECR)."""
        return self._simple(registration(self.password), "06 00 registration")

    def status_enquiry(self) -> PaymentResult:
        """05 01: is the terminal ready? (Its 04 0F carries the terminal status in BMP 27.)"""
        return self._simple(status_enquiry(self.password), "05 01 status enquiry")

    def repeat_receipt(self) -> PaymentResult:
        """06 20: the terminal repeats the status information of its last transaction (or aborts: none)."""
        return self._simple(repeat_receipt(self.password), "06 20 repeat receipt")

    def reversal(self, receipt_no: int) -> PaymentResult:
        """06 30: reverse the transaction with this receipt number."""
        return self._simple(reversal(receipt_no, self.password), "06 30 reversal")

    def abort(self) -> None:
        """06 B0 on a fresh connection (best effort, for when the transaction's own connection is gone)."""
        link = self._open()
        try:
            link.send(ecr_abort())
            try:
                link.receive(self.timers.ack)
            except (TimeoutError, ConnectionError, OSError):
                pass
        finally:
            link.close()

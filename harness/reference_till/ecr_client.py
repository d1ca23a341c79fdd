"""The reference till's ZVT client (the ECR side of the ZVT ECR interface, 13.x), on posrig's one ZVT codec.

The flow of an authorization (the terminal, "PT", is master once it has acked the request):

    ECR 06 01 (04 amount)       ->  PT 80 00 00
    PT 04 FF intermediate       ->  ECR 80 00 00      (any number, also 06 D1 / 06 D3 print lines)
    PT 04 0F status information ->  ECR 80 00 00 book | 84 9C 00 wait | 84 66 00 cannot hand over goods
    PT 06 0F completion         ->  ECR 80 00 00      or   PT 06 1E abort (result code) -> ECR 80 00 00

The client never decides what a result means for the sale: `authorization()` reports what arrived and raises
`NotStarted` (no ack: the terminal never took the request) or `ResultLost` (acked, then silence or a dropped
connection: the outcome is unknown and must be asked for with `repeat_receipt()`).

    >>> client = EcrClient(("192.0.2.40", 20007), Timers(ack=5, result=40))           # doctest: +SKIP
    >>> client.authorization(1999, on_status_info=lambda info: zvt.ANSWER_BOOK).approved  # doctest: +SKIP
    True
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.protocols import zvt

CURRENCY_EUR = 978
# Registration config byte (06 00) = 0x1A: intermediate status wanted, payments started from the ECR only, and the
# ECR prints the payment receipt (02), compiling it itself from the status information (print-type bit 80 clear:
# no 06 D1 lines), as receipt.py does. Was 0x18, which tells a real terminal to print the slip on its own printer.
ECR_CONFIG = zvt.CONFIG_INTERMEDIATE_STATUS | zvt.CONFIG_ECR_CONTROLS_PAYMENT | zvt.CONFIG_ECR_PRINTS_PAYMENT
# How the till answered a status information, in its own words.
ANSWERS = {zvt.ANSWER_BOOK: "book", zvt.ANSWER_WAIT: "wait", zvt.ANSWER_NO_GOODS: "no-goods"}


class EcrError(Exception):
    """A ZVT exchange failed; the message says what arrived and what was expected."""


class MalformedApdu(EcrError):
    """The terminal sent bytes that are not valid ZVT (a BMP cut short, a bad length prefix, ...)."""


class NotStarted(EcrError):
    """The terminal never acknowledged the request (no connection, no 80 00 within T3, or a NAK)."""


class AckTimeout(NotStarted):
    """No 80 00 within T3: the request may still be on its way to the terminal."""


class ResultLost(EcrError):
    """The terminal took the request, then the result never arrived (timeout or the connection dropped)."""

    def __init__(self, message: str, *, last: zvt.Apdu | None = None, status_info: dict | None = None,
                 answered: str | None = None):
        super().__init__(message)
        self.last = last
        self.status_info = status_info      # a 04 0F that did arrive before the loss, if any
        self.answered = answered            # what the till answered to it


# -- what the till keeps of an APDU ----------------------------------------------------------------------------------
def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def fields(apdu: zvt.Apdu) -> dict[str, Any]:
    """The APDU's fields as the till keeps them: card number masked, bytes as hex, a terminal's BMPs the codec
    does not know kept as 'unparsed'. Raises MalformedApdu for bytes that are not ZVT."""
    try:
        decoded = zvt.decode_apdu(apdu, lenient=True).fields
    except zvt.ZvtError as exc:
        raise MalformedApdu(f"{apdu.name}: {exc}") from exc
    return _jsonable(zvt.masked(decoded))


def summary(apdu: zvt.Apdu) -> dict[str, Any]:
    """A masked, JSON-able description for the journal (never the clear card number)."""
    out: dict[str, Any] = {"apdu": apdu.name, "class": f"{apdu.cls:02x}", "instr": f"{apdu.ins:02x}",
                           "length": len(apdu.data)}
    try:
        out.update(fields(apdu))
    except MalformedApdu as exc:
        out["error"] = str(exc)
    return out


# -- transport -------------------------------------------------------------------------------------------------------
Transcript = Callable[[str, dict[str, Any]], None]      # (direction "tx"/"rx", masked summary) -> None


class EcrLink:
    """One TCP connection to the terminal's ECR port, framing APDUs both ways."""

    def __init__(self, sock: socket.socket, transcript: Transcript | None = None):
        self.sock = sock
        self._reader = zvt.ApduReader(max_data=zvt.MAX_EXTENDED_DATA, classes=None)    # take whatever arrives
        self._pending: list[zvt.Apdu] = []
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

    def _log(self, direction: str, apdu: zvt.Apdu) -> None:
        if self._transcript:
            self._transcript(direction, summary(apdu))

    def send(self, raw: bytes) -> None:
        self._log("tx", zvt.Apdu.from_bytes(raw))
        self.sock.sendall(raw)

    def unread(self, apdu: zvt.Apdu) -> None:
        """Put an APDU back in front of what was received."""
        self._pending.insert(0, apdu)

    def receive(self, timeout: float) -> zvt.Apdu:
        """The next APDU; TimeoutError after `timeout` s of nothing, ConnectionError when the peer closed."""
        deadline = time.monotonic() + timeout
        while not self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no complete APDU within {timeout:.2f}s "
                                   f"(have {self._reader.pending[:16].hex(' ')})")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(4096)
            except TimeoutError:
                continue
            if not chunk:
                half = self._reader.pending
                raise ConnectionError("the terminal closed the connection"
                                      + (f" mid-APDU ({half[:16].hex(' ')})" if half else ""))
            self._pending += self._reader.feed(chunk)
        apdu = self._pending.pop(0)
        self._log("rx", apdu)
        return apdu

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


# -- the ECR client --------------------------------------------------------------------------------------------------
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

    status_info: dict[str, Any] | None = None      # the 04 0F fields (card number masked)
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
        return (self.status_info or {}).get("result_code")

    @property
    def approved(self) -> bool:
        """Approved and completed: 04 0F with result 00, booked by the till, then 06 0F."""
        return self.completed and self.abort_code is None and self.result_code == zvt.RESULT_SUCCESS \
            and self.answered == "book"

    @property
    def offline(self) -> bool:
        return is_offline(self.status_info or {})


def is_offline(info: dict[str, Any]) -> bool:
    """The terminal approved without the host: TLV 1F11 online flag 0, or BMP 3C text starting 'OFFLINE'."""
    text = str(info.get("additional_text") or "")
    return (info.get("tlv") or {}).get("online_flag") == 0 or text.upper().startswith("OFFLINE")


# 04 0F fields -> zvt.ANSWER_BOOK / ANSWER_NO_GOODS / ANSWER_WAIT
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
        if reply.cls == zvt.NACK_CLASS:
            raise NotStarted(f"{what}: the terminal refused it with NAK 84 {reply.ins:02x}")
        if reply.name != "ack":
            raise NotStarted(f"{what}: expected 80 00 00, got {reply.to_bytes()[:16].hex(' ')}")

    def authorization(self, amount_cents: int, on_status_info: StatusInfoHandler,
                      abort: threading.Event | None = None,
                      on_abort_sent: Callable[[], bool] | None = None) -> PaymentResult:
        """Run 06 01 to its end. `on_status_info` answers the 04 0F (issue of goods). When `abort` is set
        mid-transaction, 06 B0 is sent; `on_abort_sent()` returning True stops waiting at once (the caller
        trusts the abort) and raises ResultLost."""
        request = zvt.encode("authorization", amount=amount_cents, currency=CURRENCY_EUR)
        link = self._open()
        try:
            try:
                link.send(request)
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
            link.send(zvt.encode("ecr_abort"))
            first = link.receive(2 * self.timers.ack)
        except (TimeoutError, ConnectionError, OSError):
            raise exc from None
        if first.name != "ack":                  # not the late ack: leave it for the loop to handle
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
                    link.send(zvt.encode("ecr_abort"))
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
                if apdu.name == "status_information":
                    result.status_info = fields(apdu)
                    answer = on_status_info(result.status_info) if on_status_info else zvt.ANSWER_BOOK
                    result.answered = ANSWERS.get(answer, answer.hex())
                    link.send(answer)
                elif apdu.name == "completion":
                    result.completed = True
                    result.completion = fields(apdu) if apdu.data else {}
                    link.send(zvt.ANSWER_BOOK)
                    return result
                elif apdu.name == "abort":
                    result.abort_code = apdu.data[0] if apdu.data else zvt.RESULT_SYSTEM_ERROR
                    link.send(zvt.ANSWER_BOOK)
                    return result
                elif apdu.name == "intermediate_status":
                    result.intermediate.append(apdu.data[0] if apdu.data else 0)
                    link.send(zvt.ANSWER_BOOK)
                elif apdu.name in ("print_line", "print_text_block"):
                    result.print_lines.append(fields(apdu).get("text", "") if apdu.name == "print_line" else "")
                    link.send(zvt.ANSWER_BOOK)
                elif apdu.name == "ack":
                    continue                     # the ack of our 06 B0
                else:
                    link.send(zvt.ANSWER_BOOK)   # tolerate commands we do not use
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
        request = zvt.encode("registration", password=self.password, config_byte=ECR_CONFIG,
                             currency=CURRENCY_EUR)
        return self._simple(request, "06 00 registration")

    def status_enquiry(self) -> PaymentResult:
        """05 01: is the terminal ready? (Its 04 0F carries the terminal status in BMP 27.)"""
        return self._simple(zvt.encode("status_enquiry", password=self.password), "05 01 status enquiry")

    def repeat_receipt(self) -> PaymentResult:
        """06 20: the terminal repeats the status information of its last transaction (or aborts: none)."""
        return self._simple(zvt.encode("repeat_receipt", password=self.password), "06 20 repeat receipt")

    def reversal(self, receipt_no: int) -> PaymentResult:
        """06 30: reverse the transaction with this receipt number."""
        return self._simple(zvt.encode("reversal", password=self.password, receipt_no=receipt_no),
                            "06 30 reversal")

    def abort(self) -> None:
        """06 B0 on a fresh connection (best effort, for when the transaction's own connection is gone)."""
        link = self._open()
        try:
            link.send(zvt.encode("ecr_abort"))
            try:
                link.receive(self.timers.ack)
            except (TimeoutError, ConnectionError, OSError):
                pass
        finally:
            link.close()

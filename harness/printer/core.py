"""The emulated printer's core, the same behind every transport (TCP, pty, USB/IP).

Bytes arrive with a `reply` callable (how to answer the sender). On arrival, before anything else, the receive
layer scans for real-time commands (DLE EOT n) and answers each at once with one byte, also when the bytes lie
inside image data and also when the printer is offline. Everything else goes, in order, to the decoder: GS
r, GS I and ESC u/v are answered in stream order, GS a switches automatic status back (ASB) on, cuts finish
receipts.

What happens to bytes while the printer is not ready (paper out, cover open, switched offline, error), as on a
real TM printer: they are *held* in the receive buffer, unprinted (no receipt can complete); real-time
status is still answered. When the fault clears the held bytes are printed in order. Bytes beyond the
profile's receive buffer (64 KiB) are lost and counted in `lost_bytes` (a real printer raises BUSY; over TCP
the client sees a stalled write). `discard_held()` models the operator switching the printer off and on:
held bytes are dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from harness.printer.profiles import Profile, get_profile
from harness.printer.status import PrinterStatus
from harness.protocols.escpos import commands as C
from harness.protocols.escpos.decoder import Decoder
from harness.protocols.escpos.events import Event, StatusRequest
from harness.protocols.escpos.receipt import DrawerEvent, Receipt, ReceiptBuilder

log = logging.getLogger(__name__)

Reply = Callable[[bytes], None]


def _drop(_: bytes) -> None:
    pass


class ReceiptLog:
    """Decoder + receipt builder + the receipts so far, with a blocking `wait_for_receipt`. Thread-safe.

    The emulated printer (`PrinterCore`) and the real-printer tap both keep their receipts in one of these. No
    input stops it: a failure inside the decoder is recorded as a decode fault of the receipt in progress (the
    bytes it held kept as an `Unknown` event) and decoding goes on with the next bytes.
    """

    def __init__(self, profile: Profile | str | None = None,
                 on_receipt: Callable[[Receipt], None] | None = None):
        self.profile = profile if isinstance(profile, Profile) else get_profile(profile)
        self.decoder = Decoder(self.profile.codepage, self.profile.chinese, self.profile.chinese_codec)
        self.builder = ReceiptBuilder(self.profile.name)
        self.receipts: list[Receipt] = []
        self.stream = bytearray()             # every byte received, in order (evidence)
        self._on_receipt = [on_receipt] if on_receipt else []
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._waited = 0

    def feed(self, data: bytes) -> list[Event]:
        """Decode `data` (already recorded in `stream` by the caller or not: see `record`)."""
        with self._lock:
            events = self._decode(data)
            if events:
                self._add(events)
            self._changed.notify_all()
            return events

    def _decode(self, data: bytes, final: bool = False) -> list[Event]:
        """The decoder's events for `data` (or its last ones, `final`); never raises (see the class docstring)."""
        try:
            return self.decoder.finish() if final else self.decoder.feed(data)
        except Exception as exc:  # noqa: BLE001 - no input may stop the journal
            log.exception("ESC/POS decoder failed")
            why = f"decoder failed: {type(exc).__name__}: {exc}"
            self.builder.fault(f"{why} (bytes kept undecoded)")
            return [self.decoder.salvage(why)]

    def record(self, data: bytes) -> None:
        with self._lock:
            self.stream += data

    def _add(self, events: list[Event]) -> None:
        for receipt in self.builder.add(events):
            self._complete(receipt)

    def _complete(self, receipt: Receipt) -> None:
        """Hand the receipt to the listeners (the journal sets `receipt.files`), then publish it: whoever sees
        it in `receipts` or gets it from `wait_for_receipt` sees it with its evidence files."""
        for cb in self._on_receipt:
            try:
                cb(receipt)
            except Exception:  # noqa: BLE001 - a journal failure must not stop the printer
                log.exception("receipt callback failed")
        self.receipts.append(receipt)

    @property
    def drawer_events(self) -> list[DrawerEvent]:
        """Every drawer pulse executed so far, in order, with its time: those inside a completed receipt (its
        index and cut) and those still in the uncut buffer (`receipt` None). A pulse the till sent on its own
        (no receipt around it) stays `receipt` None until something is cut after it, and at close (`flush`)
        lands in the uncut receipt (`cut` None): either way it is not `inside_receipt`."""
        with self._lock:
            return [*(d for r in self.receipts for d in r.drawer_events), *self.builder.pending_drawer]

    def add_receipt_listener(self, cb: Callable[[Receipt], None]) -> None:
        self._on_receipt.append(cb)

    def wait_for_receipt(self, timeout: float) -> Receipt:
        """The next receipt not yet handed out by this method, waiting up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.receipts) <= self._waited:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no receipt within {timeout:.2f}s; instead: "
                                       f"{self.describe_pending()}")
                self._changed.wait(left)
            r = self.receipts[self._waited]
            self._waited += 1
            return r

    def describe_pending(self) -> str:
        """What was received since the last cut, for error messages."""
        with self._lock:
            pending = self.builder.pending_events
            text = [e.text for e in pending if e.kind == "Text"][:8]
            parts = [f"{len(self.receipts)} receipt(s) so far", f"{len(self.stream)} bytes received",
                     f"{len(pending)} event(s) since the last cut"]
            if self.builder.pending_drawer:
                parts.append(f"{len(self.builder.pending_drawer)} drawer pulse(s) outside any receipt")
            if text:
                parts.append(f"uncut text {text!r}")
            parts += self._pending_notes()
            if self.decoder.pending:
                parts.append(f"{self.decoder.pending} bytes of an unfinished command")
            return "; ".join(parts)

    def _pending_notes(self) -> list[str]:
        return []

    def flush(self) -> Receipt | None:
        """End of stream: the uncut receipt in progress (if any), also added to `receipts` with cut=None."""
        with self._lock:
            events = self._decode(b"", final=True)
            if events:
                self._add(events)
            r = self.builder.flush()
            if r is not None:
                self._complete(r)
            self._changed.notify_all()
            return r


class PrinterCore(ReceiptLog):
    """One emulated printer: state machine + decoder + receipts. Thread-safe; transports call `receive`."""

    def __init__(self, profile: Profile | str | None = None, slow_delay: float = 1.0,
                 on_receipt: Callable[[Receipt], None] | None = None):
        super().__init__(profile, on_receipt)
        self.status = PrinterStatus()
        self.slow_delay = slow_delay
        self.replies: list[tuple[float, bytes]] = []
        self.held = bytearray()
        self.lost_bytes = 0
        self.asb_mask = 0
        self._tail = b""
        self._last_reply: Reply = _drop
        self._timers: set[threading.Timer] = set()
        self._closed = False
        self._armed: tuple[int, str] | None = None     # (stream length at which to fail, fault)

    def fault_after(self, nbytes: int, fault: str) -> None:
        """Fail with `fault` once `nbytes` more bytes have arrived: a fault in the middle of a receipt, at an exact
        byte (e.g. paper running out while the till prints)."""
        with self._lock:
            self._armed = (len(self.stream) + nbytes, fault)

    # -- input -----------------------------------------------------------------------------------
    def receive(self, data: bytes, reply: Reply = _drop) -> None:
        """Bytes from a client; `reply` sends bytes back to it."""
        if not data:
            return
        with self._lock:
            if self._armed is not None and len(self.stream) + len(data) >= self._armed[0]:
                at, fault = self._armed
                self._armed = None
                cut = max(0, at - len(self.stream))
                self.receive(data[:cut], reply)
                self.set_fault(fault)
                self.receive(data[cut:], reply)
                return
            self._last_reply = reply
            self.stream += data
            for n in self._realtime_requests(data):
                self._answer(self.status.dle_eot(n), reply)
            if self.status.ready and not self.held:
                self._print(data, reply)
            else:
                room = self.profile.receive_buffer - len(self.held)
                self.held += data[:max(0, room)]
                self.lost_bytes += max(0, len(data) - max(0, room))
            self._changed.notify_all()

    def _realtime_requests(self, data: bytes) -> list[int]:
        """DLE EOT n sequences whose last byte is in `data` (one may straddle the previous chunk)."""
        tail = self._tail
        buf = tail + data if tail else data
        self._tail = buf[-2:]
        found = []
        i = buf.find(C.DLE_EOT)
        while i >= 0:
            if i + 2 < len(buf) and i + 2 >= len(tail) and 1 <= buf[i + 2] <= 4:
                found.append(buf[i + 2])
            i = buf.find(C.DLE_EOT, i + 1)
        return found

    def _print(self, data: bytes, reply: Reply) -> None:
        events = self._decode(data)
        if events:
            self._handle(events, reply)

    def _handle(self, events: list[Event], reply: Reply) -> None:
        for e in events:
            if isinstance(e, StatusRequest):
                try:
                    self._request(e, reply)
                except Exception as exc:  # noqa: BLE001 - a status request must not stop the printer
                    log.exception("answering %s failed", e.request)
                    self.builder.fault(f"{e.request} at byte {e.offset} not answered: {type(exc).__name__}: {exc}")
        self._add(events)

    def _request(self, e: StatusRequest, reply: Reply) -> None:
        if e.request == "gs_r":
            self._answer(self.status.gs_r(e.n), reply)
        elif e.request == "gs_i":
            answer = self.profile.gs_i(e.n)
            if answer:
                self._answer(answer, reply)
        elif e.request == "esc_v":
            self._answer(self.status.esc_v(), reply)
        elif e.request == "esc_u":
            self._answer(self.status.esc_u(), reply)
        elif e.request == "asb":
            self.asb_mask = e.n & C.ASB_GROUPS
            if self.asb_mask:
                self._answer(self.status.asb(), reply)
        # dle_eot was answered on arrival; dle_enq / dle_dc4 need no answer

    def _answer(self, data: bytes, reply: Reply) -> None:
        if self.status.silent or self._closed:
            return
        self.replies.append((time.time(), data))
        if self.status.slow:
            t = threading.Timer(self.slow_delay, self._late, (data, reply))
            t.daemon = True
            self._timers.add(t)
            t.start()
            return
        _safe(reply, data)

    def _late(self, data: bytes, reply: Reply) -> None:
        with self._lock:
            self._timers = {t for t in self._timers if t.is_alive() and t is not threading.current_thread()}
            if self._closed:
                return
        _safe(reply, data)

    # -- faults ----------------------------------------------------------------------------------
    def set_fault(self, fault: str | None) -> None:
        """Put the printer in fault mode(s) (see `status.FAULTS`), None to clear. Held bytes print on
        recovery; with ASB enabled the new status is sent to the last client."""
        with self._lock:
            if fault is None:
                self._armed = None                 # a fault still waiting for its byte is cleared too
            before = self.status.asb()
            self.status.apply_fault(fault)
            if self.asb_mask and self.status.asb() != before:
                self._answer(self.status.asb(), self._last_reply)
            if self.status.ready and self.held:
                held, self.held = bytes(self.held), bytearray()
                self._print(held, self._last_reply)
            self._changed.notify_all()

    def discard_held(self) -> int:
        """Drop the bytes held while not ready (printer switched off and on); returns how many."""
        with self._lock:
            n = len(self.held)
            self.held.clear()
            return n

    def _pending_notes(self) -> list[str]:
        if self.held:
            return [f"{len(self.held)} bytes held unprinted while {'/'.join(self.status.faults)}"]
        return []

    def close(self) -> None:
        with self._lock:
            self._closed = True
            timers, self._timers = list(self._timers), set()
            self._changed.notify_all()
        for t in timers:
            t.cancel()


def _safe(reply: Reply, data: bytes) -> None:
    try:
        reply(data)
    except OSError as exc:
        log.debug("reply of %s lost: %s", data.hex(), exc)

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

Crash points (the crash scenarios, `harness.acceptance.crash`): `crash_after(n, action)` runs `action` once `n` more
receipt bytes (real-time status requests not counted) have arrived, `crash_at_cut(action)` right after the next
cut; the rest of that client's bytes are then ignored (it lost power exactly there). `power_cycle_after(n, off)`
switches the printer itself off at that byte: what was printed stays on the paper, the receive buffer and any
half-received command are lost, every client is reset (`PowerOff`) and nothing is answered for `off` seconds.
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


class PowerOff(ConnectionError):
    """The printer is switched off: the transport resets the client's connection."""


def receipt_bytes(data: bytes) -> int:
    """Bytes of `data` that go to the paper: all but real-time status requests (DLE EOT n).

    >>> receipt_bytes(b"\x10\x04\x01Hello\x10\x04\x04")
    5
    """
    return len(data) - 3 * sum(1 for i in range(len(data) - 2) if data[i:i + 2] == C.DLE_EOT and 1 <= data[i + 2] <= 4)


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
        self._crash: dict | None = None                # a crash point waiting for its byte or cut
        self._dead: list[Reply] = []                   # `reply` of clients that lost power (held: ids get reused)
        self.powered = True
        self.crashes: list[dict] = []                  # crash points reached: {"t", "at", "byte"}

    def crash_after(self, nbytes: int, action: Callable[[], None]) -> None:
        """Run `action` once `nbytes` more receipt bytes have arrived (not counting DLE EOT status requests);
        that client's later bytes are ignored (see the module docstring)."""
        with self._lock:
            self._crash = {"at": "bytes", "left": nbytes, "action": action}

    def crash_at_cut(self, action: Callable[[], None]) -> None:
        """Run `action` right after the next cut is received; that client's later bytes are ignored."""
        with self._lock:
            self._crash = {"at": "cut", "action": action}

    def cancel_crash(self) -> None:
        """Disarm a crash point that never came."""
        with self._lock:
            self._crash = None

    def power_cycle_after(self, nbytes: int, off_seconds: float) -> None:
        """Switch the printer off once `nbytes` more receipt bytes have arrived, and on after `off_seconds`."""
        self.crash_after(nbytes, lambda: self.power_off(off_seconds))

    def power_off(self, off_seconds: float | None = None) -> None:
        """Power lost: the receive buffer and a half-received command are gone, the paper keeps what was printed,
        clients are reset, nothing is answered; back on after `off_seconds` (None: until `power_on()`)."""
        with self._lock:
            self.powered = False
            self.lost_bytes += len(self.held)
            self.held.clear()
            self._armed = None
            self.decoder = Decoder(self.profile.codepage, self.profile.chinese, self.profile.chinese_codec)
            self.builder._reset_style()
            self.status = PrinterStatus()
            self._changed.notify_all()
        if off_seconds is not None:
            t = threading.Timer(off_seconds, self.power_on)
            t.daemon = True
            self._timers.add(t)
            t.start()

    def power_on(self) -> None:
        with self._lock:
            if not self._closed:
                self.powered = True
                self._dead.clear()
                self._changed.notify_all()

    def _crash_point(self, data: bytes, reply: Reply) -> bool:
        """Feed `data` (all of it, or up to a waiting crash point, whose action then runs there: the rest is
        ignored); True when the point was reached."""
        crash = self._crash
        if crash["at"] == "bytes":
            n = receipt_bytes(data)
            if n < crash["left"]:
                crash["left"] -= n
                self._receive(data, reply)
                return False
            end = 0                                      # the byte at which the count is reached
            need = crash["left"]
            while need > 0 and end < len(data):
                step = 3 if data[end:end + 2] == C.DLE_EOT and end + 2 < len(data) and 1 <= data[end + 2] <= 4 else 1
                need -= 0 if step == 3 else 1
                end += step
            self._crash = None
            self._receive(data[:end], reply)
        else:
            before = len(self.receipts)
            self._receive(data, reply)
            if len(self.receipts) == before:
                return False
            self._crash = None
        self._dead.append(reply)
        self.crashes.append({"t": time.time(), "at": crash["at"], "byte": len(self.stream)})
        crash["action"]()
        return True

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
            if not self.powered:
                self.lost_bytes += len(data)
                raise PowerOff("the printer is switched off")
            if any(reply is dead for dead in self._dead):
                return                                   # a client that lost power: its last bytes never came
            if self._crash is None:
                self._receive(data, reply)
            elif self._crash_point(data, reply) and not self.powered:
                raise PowerOff("the printer was switched off")

    def _receive(self, data: bytes, reply: Reply) -> None:
        with self._lock:
            if self._armed is not None and len(self.stream) + len(data) >= self._armed[0]:
                at, fault = self._armed
                self._armed = None
                cut = max(0, at - len(self.stream))
                self._receive(data[:cut], reply)
                self.set_fault(fault)
                self._receive(data[cut:], reply)
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

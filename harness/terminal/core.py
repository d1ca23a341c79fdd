"""The emulated terminal's payment logic: card presentation, the online authorisation, reversals owed to the
host (stored and repeated until acknowledged), offline approval within a floor limit, and the journal.

The ZVT side (`harness.terminal.ecr`) calls `authorize`, `void`, `end_of_day`; tests call `present_card`,
`abort`, `set_timer`. Every timer is nominal seconds scaled by the rig's timing factor.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from harness.core.cards import DEFAULT_CARD, TestCard, card
from harness.core.rig import Timing
from harness.protocols import iso8583, zvt
from harness.terminal.acquirer import AcquirerClient, HostTimeout, HostUnreachable
from harness.terminal.journal import Journal

log = logging.getLogger(__name__)

# Nominal protocol timers (seconds at timing scale 1.0).
TIMERS: dict[str, float] = {
    "t3": 5.0,  # ZVT: wait for the ECR's acknowledgement
    "t4": 180.0,  # ZVT: longest the ECR may hold the result with 84 9C (issue of goods)
    "goods_retry": 2.0,  # ZVT: repeat the Status-Information this long after 84 9C
    "card": 60.0,  # wait for a card (the ECR's BMP 01 overrides it)
    "host": 10.0,  # ISO 8583: wait for the host's response (Visa POS limit)
    "host_connect": 5.0,  # ISO 8583: TCP connect to the host
    "reversal_retry": 5.0,  # ISO 8583: repeat a stored reversal/advice (0421 / 0221) this often
}

# Reversal reasons (ISO 8583 field 39 in the 0420).
REASON_TIMEOUT = "68"  # response received too late / not at all
REASON_CANCELLED = "17"  # customer cancellation: ECR or cashier abort after approval, goods not issued
REASON_CARD = "06"  # card removed / rejected after the host approved


class TransactionAborted(Exception):
    """The cashier or the ECR aborted the running transaction."""


@dataclass
class Outcome:
    """What the ZVT side reports for one payment."""

    txn_id: int
    result_code: int  # 00 = approved
    status: dict[str, Any] = field(default_factory=dict)  # Status-Information fields (None = no card data)
    approved: bool = False
    offline: bool = False

    @property
    def has_card_data(self) -> bool:
        return bool(self.status)


class TerminalCore:
    """Payment logic shared by the emulated terminal driver and `posrig terminal serve`."""

    def __init__(
        self,
        *,
        journal: Journal,
        host_address: tuple[str, int],
        timing: Timing | None = None,
        connect: Any = None,
        transcript: Any = None,
        terminal_id: str = "29001234",
        merchant_id: str = "POSRIG000000001",
        currency: int = 978,
        auto_present: bool = True,
        offline: bool = False,
        floor_limit: int = 0,
        spec: str = iso8583.DEFAULT_SPEC,
        framing: str = "2byte",
        timers: dict[str, float] | None = None,
        unconfirmed: str = "book",
        default_card: TestCard = DEFAULT_CARD,
    ):
        self.journal = journal
        self.timing = timing or Timing()
        self.transcript = transcript
        self.terminal_id = terminal_id
        self.merchant_id = merchant_id
        self.currency = currency
        self.auto_present = auto_present
        self.default_card = default_card
        self.offline = offline
        self.floor_limit = floor_limit
        if unconfirmed not in ("book", "reverse"):
            raise ValueError(f"unconfirmed must be 'book' or 'reverse', not {unconfirmed!r}")
        self.unconfirmed = unconfirmed
        self.timers = dict(TIMERS)
        for name, value in (timers or {}).items():
            self.set_timer(name, value)
        self.host = AcquirerClient(
            host_address,
            timeout=self.seconds("host"),
            connect_timeout=self.seconds("host_connect"),
            connect=connect,
            spec=spec,
            framing=framing,
            transcript=transcript,
        )
        self._cards: queue.Queue[tuple[TestCard, float]] = queue.Queue()
        self._abort = threading.Event()
        self.busy = threading.Lock()  # one ZVT command at a time
        self._saf_lock = threading.Lock()
        self._saf_kick = threading.Event()
        self._closing = threading.Event()
        self._in_progress = False
        self._requests: dict[int, dict[str, Any]] = {}  # txn -> its 0200, to build an exact reversal
        self._saf_thread = threading.Thread(target=self._saf_loop, name="terminal-saf", daemon=True)
        self._saf_thread.start()

    # -- timers ----------------------------------------------------------------------------------------------
    def set_timer(self, name: str, nominal: float) -> None:
        """Set a protocol timer in nominal seconds (scaled by the rig's timing factor when used)."""
        if name not in TIMERS:
            raise KeyError(f"unknown timer {name!r}; timers: {', '.join(TIMERS)}")
        self.timers[name] = float(nominal)
        if hasattr(self, "host"):
            self.host.timeout = self.seconds("host")
            self.host.connect_timeout = self.seconds("host_connect")

    def seconds(self, name: str) -> float:
        return self.timing.seconds(self.timers[name])

    @property
    def saf_budget(self) -> float:
        """How long a payment or end-of-day tries to settle stored reversals/advices before going online."""
        return 2 * self.seconds("host") + self.seconds("host_connect")

    # -- test controls ---------------------------------------------------------------------------------------
    def present_card(self, which: str | TestCard = DEFAULT_CARD, delay: float = 0.0) -> TestCard:
        """Queue a card for the running or next payment, presented `delay` real seconds after it asks for
        one."""
        c = card(which)
        self._cards.put((c, float(delay)))
        self._note("card_queued", card=c.name, pan=c.masked_pan, delay=delay)
        return c

    def abort(self, source: str = "cashier") -> bool:
        """Press abort: the running payment ends with 06 1E 6C (reversing it if the host already approved).
        Returns False when no payment is running."""
        if not self._in_progress:
            return False
        self._note("abort_requested", source=source)
        self._abort.set()
        return True

    def clear_cards(self) -> None:
        while not self._cards.empty():
            self._cards.get_nowait()

    # -- the payment -----------------------------------------------------------------------------------------
    def begin(self) -> None:
        self._abort.clear()
        self._in_progress = True

    def end(self) -> None:
        self._in_progress = False
        self._abort.clear()
        if self.journal.saf_pending():
            self._saf_kick.set()  # send what is owed now that the payment is over

    @property
    def aborted(self) -> bool:
        return self._abort.is_set()

    def wait_abort(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True as soon as the running payment is aborted."""
        return self._abort.wait(seconds)

    def wait_for_card(self, timeout: float) -> TestCard:
        """The next presented card; raises TransactionAborted on abort, TimeoutError when none comes."""
        deadline = time.monotonic() + timeout
        while True:
            if self._abort.is_set():
                raise TransactionAborted("aborted while waiting for a card")
            try:
                c, delay = self._cards.get_nowait()
            except queue.Empty:
                if self.auto_present:
                    c, delay = self.default_card, 0.0
                else:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError("no card presented") from None
                    self._abort.wait(min(0.01, left))
                    continue
            if delay and self._abort.wait(delay):
                raise TransactionAborted("aborted before the card was presented")
            self._note("card_presented", card=c.name, pan=c.masked_pan)
            return c

    def authorize(
        self, amount: int, currency: int | None = None, card_timeout: float | None = None, status: Any = None
    ) -> Outcome:
        """Run one sale up to the host's decision. `status(code)` sends an intermediate status to the ECR."""
        status = status or (lambda code: None)
        currency = currency or self.currency
        trace = self.journal.next_number("trace")
        txn = self.journal.open("sale", amount=amount, currency=currency, trace=trace, state="started")
        self._note("sale_started", txn=txn, amount=amount, trace=trace)
        try:
            status(0x0A)  # insert card
            c = self.wait_for_card(card_timeout if card_timeout is not None else self.seconds("card"))
        except TransactionAborted:
            return self._fail(txn, 0x6C, "aborted")
        except TimeoutError:
            return self._fail(txn, 0x6C, "aborted")
        base = self._status_fields(txn, c)
        self.journal.update(txn, masked_pan=c.masked_pan, card_name=c.card_name, card_type=c.card_type)
        if c.removed == "before_online":
            status(0x0C)
            return self._fail(txn, 0x64, "failed", base)
        if not c.pin_ok:
            status(0x15)  # incorrect PIN
            return self._fail(txn, 0x37, "declined", base)
        if self._abort.is_set():
            return self._fail(txn, 0x6C, "aborted", base)
        if c.offline_only:
            if self.offline and amount <= self.floor_limit:
                return self._approve_offline(txn, c, amount, currency, base, "Y1")
            return self._fail(txn, 0x05, "declined", base)
        # Online: settle what is owed to the host first.
        status(0x04)  # waiting for the host
        if not self.flush_saf(self.saf_budget):
            self._note("saf_pending_blocks_sale", txn=txn)
            return self._unreachable(txn, c, amount, currency, base)
        stan = f"{self.journal.next_number('stan'):06d}"
        request = self._financial_request("0200", c, amount, currency, stan)
        self.journal.update(txn, stan=stan, state="online")
        self._requests[txn] = request
        for old in list(self._requests)[:-64]:  # only recent sales can still be reversed by the ECR
            self._requests.pop(old, None)
        try:
            answer = self.host.exchange(request)
        except HostUnreachable:
            return self._unreachable(txn, c, amount, currency, base)
        except HostTimeout:
            self._queue_reversal(txn, request, REASON_TIMEOUT)
            return self._fail(
                txn, 0xA1, "reversal_pending", base, reversal="pending", reversal_reason=REASON_TIMEOUT
            )
        rc = str(answer.get(iso8583.RESPONSE_CODE, "96"))
        auth = answer.get(iso8583.AUTH_CODE)
        self.journal.update(txn, host_rc=rc, auth_code=auth, rrn=answer.get(iso8583.RRN))
        if rc != "00":
            status(0x1D)
            return self._fail(txn, zvt.result_from_iso(rc), "declined", base)
        if self._abort.is_set():
            self._queue_reversal(txn, request, REASON_CANCELLED)
            return self._fail(
                txn, 0x6C, "reversal_pending", base, reversal="pending", reversal_reason=REASON_CANCELLED
            )
        if c.removed == "after_online":
            status(0x05)  # sending auto-reversal
            self._queue_reversal(txn, request, REASON_CARD)
            return self._fail(
                txn, 0x64, "reversal_pending", base, reversal="pending", reversal_reason=REASON_CARD
            )
        self.journal.update(txn, state="approved", result_code=0)
        base.update(result_code=0, aid=(auth or "")[:8] or None)
        self._note("sale_approved", txn=txn, stan=stan, auth_code=auth)
        return Outcome(txn, 0, base, approved=True)

    def reverse(self, txn: int, reason: str, result_code: int) -> None:
        """Reverse an approved sale (issue of goods refused, unconfirmed): queue the 0420 and send it now."""
        row = self.journal.get(txn)
        if row is None or row["state"] not in ("approved",):
            return
        withdrawn = False
        if row["offline"]:
            with self._saf_lock:  # not while the advice is on its way
                for item in self.journal.saf_pending():
                    if item["txn_id"] == txn and item["kind"] == "advice":
                        self.journal.saf_acknowledged(item["id"])
                        withdrawn = True
        if withdrawn:
            # The offline approval never reached the host: its advice is withdrawn, nothing to reverse there.
            self.journal.update(
                txn,
                state="reversed",
                result_code=result_code,
                reversal="acknowledged",
                reversal_reason=reason,
            )
            return
        request = self._requests.get(txn) or {
            "t": "0220" if row["offline"] else "0200",
            iso8583.PROCESSING_CODE: "000000",
            iso8583.AMOUNT: f"{row['amount']:012d}",
            iso8583.STAN: row["stan"],
            iso8583.TRANSMISSION_TIME: self._stamp(row["created"]),
            iso8583.TERMINAL_ID: self.terminal_id,
            iso8583.MERCHANT_ID: self.merchant_id,
            iso8583.CURRENCY: f"{row['currency']:03d}",
        }
        self._queue_reversal(txn, request, reason)
        self.journal.update(
            txn, state="reversal_pending", result_code=result_code, reversal="pending", reversal_reason=reason
        )
        self.flush_saf(self.saf_budget)

    def _fail(
        self, txn: int, code: int, state: str, base: dict[str, Any] | None = None, **extra: Any
    ) -> Outcome:
        self.journal.update(txn, state=state, result_code=code, **extra)
        self._note(
            "sale_failed",
            txn=txn,
            state=state,
            result_code=f"{code:02X}",
            meaning=zvt.RESULT_CODES.get(code, "authorisation system"),
        )
        status = dict(base or {})
        if status:
            status["result_code"] = code
        return Outcome(txn, code, status)

    def _unreachable(
        self, txn: int, c: TestCard, amount: int, currency: int, base: dict[str, Any]
    ) -> Outcome:
        if self.offline and amount <= self.floor_limit:
            return self._approve_offline(txn, c, amount, currency, base, "Y3")
        return self._fail(txn, 0xA3, "failed", base)

    def _approve_offline(
        self, txn: int, c: TestCard, amount: int, currency: int, base: dict[str, Any], code: str
    ) -> Outcome:
        stan = f"{self.journal.next_number('stan'):06d}"
        advice = self._financial_request("0220", c, amount, currency, stan)
        advice[iso8583.RESPONSE_CODE] = code
        self.journal.update(txn, state="approved", result_code=0, offline=1, stan=stan, host_rc=code)
        self.journal.saf_add(txn, "advice", "0220", advice)
        self._requests[txn] = advice
        self._saf_kick.set()
        base.update(result_code=0, additional_text=f"OFFLINE {code}")
        self._note("sale_approved_offline", txn=txn, stan=stan, emv=code)
        return Outcome(txn, 0, base, approved=True, offline=True)

    def _financial_request(
        self, mti: str, c: TestCard, amount: int, currency: int, stan: str
    ) -> dict[str, Any]:
        now = datetime.now()
        return {
            "t": mti,
            iso8583.PAN: c.pan,
            iso8583.PROCESSING_CODE: "000000",
            iso8583.AMOUNT: f"{amount:012d}",
            iso8583.TRANSMISSION_TIME: now.strftime("%m%d%H%M%S"),
            iso8583.STAN: stan,
            iso8583.LOCAL_TIME: now.strftime("%H%M%S"),
            iso8583.LOCAL_DATE: now.strftime("%m%d"),
            "14": c.expiry,
            "22": "051",
            iso8583.TERMINAL_ID: self.terminal_id,
            iso8583.MERCHANT_ID: self.merchant_id,
            iso8583.CURRENCY: f"{currency:03d}",
        }

    @staticmethod
    def _stamp(t: float) -> str:
        return datetime.fromtimestamp(t).strftime("%m%d%H%M%S")

    def _status_fields(self, txn: int, c: TestCard) -> dict[str, Any]:
        row = self.journal.get(txn)
        now = datetime.fromtimestamp(row["created"])
        return {
            "amount": row["amount"],
            "currency": row["currency"],
            "trace": row["trace"],
            "time": now.strftime("%H%M%S"),
            "date": now.strftime("%m%d"),
            "pan": c.zvt_pan,
            "card_name": c.card_name,
            "card_type": c.card_type,
            "terminal_id": self.terminal_id,
        }

    # -- voids and end of day --------------------------------------------------------------------------------
    def void(self, receipt_no: int) -> Outcome:
        """ZVT Reversal (06 30) of the sale with `receipt_no`: a 0400 to the host; stored and repeated if
        unanswered."""
        original = self.journal.by_receipt(receipt_no)
        trace = self.journal.next_number("trace")
        txn = self.journal.open(
            "void", trace=trace, state="started", original_id=original["id"] if original else None
        )
        if original is None:
            return self._fail(txn, 0x83, "failed")
        base = {
            "amount": original["amount"],
            "currency": original["currency"],
            "trace": trace,
            "original_trace": original["trace"],
            "pan": original["masked_pan"],
            "card_name": original["card_name"],
            "terminal_id": self.terminal_id,
            "time": datetime.now().strftime("%H%M%S"),
            "date": datetime.now().strftime("%m%d"),
        }
        self.journal.update(
            txn,
            amount=original["amount"],
            currency=original["currency"],
            masked_pan=original["masked_pan"],
            card_name=original["card_name"],
        )
        if original["state"] in ("reversed", "reversal_pending", "voided"):
            return self._fail(txn, 0xB4, "failed", base)
        if original["state"] != "approved":
            return self._fail(txn, 0xB5, "failed", base)
        if original["offline"]:
            self.reverse(original["id"], REASON_CANCELLED, 0)
            self.journal.update(original["id"], state="voided")
            self.journal.update(txn, state="approved", result_code=0)
            return Outcome(txn, 0, {**base, "result_code": 0}, approved=True)
        if not self.flush_saf(self.saf_budget):
            return self._fail(txn, 0xA3, "failed", base)
        request = {
            "t": "0400",
            iso8583.PROCESSING_CODE: "000000",
            iso8583.AMOUNT: f"{original['amount']:012d}",
            iso8583.STAN: original["stan"],
            iso8583.TRANSMISSION_TIME: self._stamp(time.time()),
            iso8583.TERMINAL_ID: self.terminal_id,
            iso8583.MERCHANT_ID: self.merchant_id,
            iso8583.CURRENCY: f"{original['currency']:03d}",
            iso8583.RESPONSE_CODE: REASON_CANCELLED,
            iso8583.ORIGINAL_DATA: self._original_data(
                "0200", original["stan"], self._stamp(original["created"])
            ),
        }
        try:
            answer = self.host.exchange(request)
        except HostUnreachable:
            return self._fail(txn, 0xA3, "failed", base)
        except HostTimeout:
            advice = dict(request, t="0420")
            self.journal.saf_add(original["id"], "reversal", "0420", advice)
            self.journal.update(
                original["id"], state="voided", reversal="pending", reversal_reason=REASON_CANCELLED
            )
            self.journal.update(txn, state="approved", result_code=0, stan=original["stan"])
            self._saf_kick.set()
            return Outcome(txn, 0, {**base, "result_code": 0}, approved=True)
        rc = str(answer.get(iso8583.RESPONSE_CODE, "96"))
        if rc != "00":
            return self._fail(txn, zvt.result_from_iso(rc), "declined", base)
        self.journal.update(
            original["id"], state="voided", reversal="acknowledged", reversal_reason=REASON_CANCELLED
        )
        self.journal.update(txn, state="approved", result_code=0, stan=original["stan"], host_rc=rc)
        return Outcome(txn, 0, {**base, "result_code": 0}, approved=True)

    def end_of_day(self) -> Outcome:
        """Settle the batch with a 0500 after every owed reversal/advice is acknowledged."""
        trace = self.journal.next_number("trace")
        sales = self.batch()
        total = sum(s["amount"] for s in sales)
        txn = self.journal.open(
            "end_of_day", trace=trace, amount=total, currency=self.currency, state="started"
        )
        now = datetime.now()
        base = {
            "trace": trace,
            "amount": total,
            "currency": self.currency,
            "time": now.strftime("%H%M%S"),
            "date": now.strftime("%m%d"),
            "terminal_id": self.terminal_id,
            "totals": self._totals(sales),
        }
        if not self.flush_saf(self.saf_budget):
            return self._fail(txn, 0xA3, "failed", base)
        stan = f"{self.journal.next_number('stan'):06d}"
        request = {
            "t": "0500",
            iso8583.STAN: stan,
            iso8583.TRANSMISSION_TIME: now.strftime("%m%d%H%M%S"),
            iso8583.TERMINAL_ID: self.terminal_id,
            iso8583.MERCHANT_ID: self.merchant_id,
            iso8583.CURRENCY: f"{self.currency:03d}",
            "76": f"{len(sales):010d}",
            "88": f"{total:016d}",
        }
        self.journal.update(txn, stan=stan)
        try:
            answer = self.host.exchange(request)
        except (HostUnreachable, HostTimeout):
            return self._fail(txn, 0xA3, "failed", base)
        rc = str(answer.get(iso8583.RESPONSE_CODE, "96"))
        if rc != "00":
            return self._fail(txn, zvt.result_from_iso(rc), "declined", base)
        self.journal.update(txn, state="approved", result_code=0, host_rc=rc)
        return Outcome(txn, 0, {**base, "result_code": 0}, approved=True)

    def batch(self) -> list[dict[str, Any]]:
        """Approved sales since the last settled end-of-day."""
        rows = self.journal.transactions()
        last_eod = max(
            (r["id"] for r in rows if r["kind"] == "end_of_day" and r["state"] == "approved"), default=0
        )
        return [r for r in rows if r["kind"] == "sale" and r["state"] == "approved" and r["id"] > last_eod]

    @staticmethod
    def _totals(sales: list[dict[str, Any]]) -> bytes:
        """BMP 60 single totals: receipt-no from/to, then count + amount per card group (girocard ..
        others)."""
        receipts = [s["receipt_no"] or 0 for s in sales] or [0]
        groups = {
            "girocard": [],
            "jcb": [],
            "eurocard": [],
            "amex": [],
            "visa": [],
            "diners": [],
            "others": [],
        }
        for s in sales:
            name = (s["card_name"] or "").lower()
            key = "visa" if "visa" in name else "eurocard" if "master" in name else "others"
            groups[key].append(s["amount"])
        out = zvt.bcd_encode(min(receipts), 2) + zvt.bcd_encode(max(receipts), 2)
        for amounts in groups.values():
            out += bytes([min(len(amounts), 255)]) + zvt.bcd_encode(sum(amounts), 6)
        return out

    # -- store and forward -----------------------------------------------------------------------------------
    @staticmethod
    def _original_data(mti: str, stan: str, stamp: str) -> str:
        return f"{mti}{stan}{stamp}".ljust(42, "0")

    def _queue_reversal(self, txn: int, request: dict[str, Any], reason: str) -> None:
        reversal = {k: v for k, v in request.items() if k not in ("t", iso8583.PAN, "14", "22")}
        reversal.update(
            {
                "t": "0420",
                iso8583.RESPONSE_CODE: reason,
                iso8583.ORIGINAL_DATA: self._original_data(
                    request["t"], request[iso8583.STAN], request[iso8583.TRANSMISSION_TIME]
                ),
            }
        )
        saf_id = self.journal.saf_add(txn, "reversal", "0420", reversal)
        self._note("reversal_stored", txn=txn, saf=saf_id, stan=request[iso8583.STAN], reason=reason)
        self._saf_kick.set()

    def flush_saf(self, budget: float) -> bool:
        """Send every stored reversal/advice once, within `budget` seconds. True when nothing is owed any
        more."""
        if not self._saf_lock.acquire(timeout=budget):
            return False
        deadline = time.monotonic() + budget
        try:
            while True:
                pending = self.journal.saf_pending()
                if not pending:
                    return True
                if time.monotonic() >= deadline or self._closing.is_set():
                    return False
                for item in pending:
                    if not self._send_saf(item):
                        pause = min(self.seconds("host_connect"), max(0.0, deadline - time.monotonic()))
                        self._closing.wait(pause)  # not a tight loop against a host that is down
                        break
        finally:
            self._saf_lock.release()

    def _send_saf(self, item: dict[str, Any]) -> bool:
        fields = dict(item["fields"])
        first = item["mti"]
        repeat = {"0420": "0421", "0220": "0221"}[first]
        fields["t"] = first if item["attempts"] == 0 else repeat
        self.journal.saf_attempted(item["id"])
        try:
            answer = self.host.exchange(fields)
        except (HostUnreachable, HostTimeout) as exc:
            self._note("saf_unacknowledged", saf=item["id"], mti=fields["t"], error=str(exc))
            return False
        self.journal.saf_acknowledged(item["id"])
        if item["txn_id"] is not None and item["kind"] == "reversal":
            row = self.journal.get(item["txn_id"])
            if row and row["state"] == "reversal_pending":
                self.journal.update(item["txn_id"], state="reversed", reversal="acknowledged")
            elif row:
                self.journal.update(item["txn_id"], reversal="acknowledged")
        self._note("saf_acknowledged", saf=item["id"], mti=fields["t"], rc=answer.get(iso8583.RESPONSE_CODE))
        return True

    def _saf_loop(self) -> None:
        while not self._closing.is_set():
            self._saf_kick.wait(self.seconds("reversal_retry"))
            self._saf_kick.clear()
            if self._closing.is_set():
                return
            if self.journal.saf_pending() and not self._in_progress:
                try:
                    self.flush_saf(self.saf_budget)
                except Exception:  # noqa: BLE001 - the loop must survive; logged
                    log.exception("store-and-forward attempt failed")

    def close(self) -> None:
        self._closing.set()
        self._saf_kick.set()
        self._abort.set()
        self.host.close()
        self._saf_thread.join(2.0)

    def _note(self, event: str, **fields: Any) -> None:
        if self.transcript is not None:
            self.transcript.write(event, link="terminal", **fields)

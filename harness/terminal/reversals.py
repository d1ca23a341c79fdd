"""What the terminal owes the host, stored and forwarded: reversals (0420, repeated as 0421) and offline advices
(0220, repeated as 0221). Each is written to the journal before anything else happens, sent at once, and repeated
every `reversal_retry` seconds (and before the next online sale or end of day) until the host acknowledges it.

>>> core.reversals.queue(txn, sale_0200, REASON_TIMEOUT)  # the 0210 never came  # doctest: +SKIP
>>> core.reversals.flush(budget=2.0)  # True: nothing owed any more  # doctest: +SKIP
True
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from harness.protocols import iso8583, zvt
from harness.terminal.acquirer import HostTimeout, HostUnreachable

if TYPE_CHECKING:
    from harness.terminal.core import TerminalCore

log = logging.getLogger(__name__)

# Reversal reasons (ISO 8583 field 39 in the 0420).
REASON_TIMEOUT = "68"  # response received too late / not at all
REASON_CANCELLED = "17"  # customer cancellation: ECR or cashier abort after approval, goods not issued
REASON_CARD = "06"  # card removed / rejected after the host approved

REPEAT = {"0420": "0421", "0220": "0221"}
# The payment states a power cut can leave a sale in, and what the terminal does about each on boot.
UNFINISHED = {"started": "abort", "online": "reverse-unanswered"}


def unfinished_after_power_loss(row: dict[str, Any]) -> str | None:
    """What a rebooted terminal does with one sale of its journal: None (it is finished), 'abort' (never went
    online), 'reverse-unanswered' (0200 sent, no answer recorded), 'reverse-undelivered' (approved, but the ECR
    never confirmed the result: no goods were handed over).

    >>> unfinished_after_power_loss({"state": "online", "goods": None, "offline": 0})
    'reverse-unanswered'
    >>> unfinished_after_power_loss({"state": "approved", "goods": None, "offline": 0})
    'reverse-undelivered'
    >>> unfinished_after_power_loss({"state": "approved", "goods": "booked", "offline": 0}) is None
    True
    """
    if row["state"] in UNFINISHED:
        return UNFINISHED[row["state"]]
    if row["state"] == "approved" and not row.get("goods"):
        return "reverse-undelivered"
    return None  # a stored message's repeat MTI
REMEMBERED = 64  # only recent sales can still be reversed by the ECR


def original_data(mti: str, stan: str, stamp: str) -> str:
    """ISO 8583 field 90 naming the message a reversal undoes."""
    return f"{mti}{stan}{stamp}".ljust(42, "0")


def stamp(t: float) -> str:
    """Field 7 (transmission date and time, MMDDhhmmss) of an epoch time."""
    return datetime.fromtimestamp(t).strftime("%m%d%H%M%S")


class Reversals:
    """The store-and-forward queue of one terminal and the thread that repeats it."""

    def __init__(self, core: TerminalCore):
        self.core = core
        self._lock = threading.Lock()  # one flush at a time (and no advice withdrawn while it is on its way)
        self._kick = threading.Event()
        self._requests: dict[int, dict[str, Any]] = {}  # txn -> its 0200/0220, to build an exact reversal
        self._thread = threading.Thread(target=self._loop, name="terminal-saf", daemon=True)
        self._thread.start()

    @property
    def budget(self) -> float:
        """How long a payment or end-of-day tries to settle stored reversals/advices before going online."""
        return 2 * self.core.seconds("host") + self.core.seconds("host_connect")

    def remember(self, txn: int, request: dict[str, Any]) -> None:
        """Keep the request a sale went online (or offline) with, for an exact reversal later."""
        self._requests[txn] = request
        for old in list(self._requests)[:-REMEMBERED]:
            self._requests.pop(old, None)

    def store(self, txn: int | None, kind: str, mti: str, fields: dict[str, Any]) -> int:
        """Journal a message owed to the host (kind 'reversal' or 'advice') and wake the sender."""
        saf_id = self.core.journal.saf_add(txn, kind, mti, fields)
        self.kick()
        return saf_id

    def queue(self, txn: int, request: dict[str, Any], reason: str) -> None:
        """Owe the host a 0420 for `request` (a 0200 or 0220), with `reason` in field 39."""
        reversal = {k: v for k, v in request.items() if k not in ("t", iso8583.PAN, "14", "22")}
        reversal.update(
            {
                "t": "0420",
                iso8583.RESPONSE_CODE: reason,
                iso8583.ORIGINAL_DATA: original_data(
                    request["t"], request[iso8583.STAN], request[iso8583.TRANSMISSION_TIME]
                ),
            }
        )
        saf_id = self.store(txn, "reversal", "0420", reversal)
        self.core.note("reversal_stored", txn=txn, saf=saf_id, stan=request[iso8583.STAN], reason=reason)

    def reverse(self, txn: int, reason: str, result_code: int) -> None:
        """Reverse an approved sale (issue of goods refused, unconfirmed): queue the 0420 and send it now.
        An offline approval whose advice never left is simply withdrawn."""
        core = self.core
        row = core.journal.get(txn)
        if row is None or row["state"] not in ("approved",):
            return
        withdrawn = False
        if row["offline"]:
            with self._lock:  # not while the advice is on its way
                for item in core.journal.saf_pending():
                    if item["txn_id"] == txn and item["kind"] == "advice":
                        core.journal.saf_acknowledged(item["id"])
                        withdrawn = True
        if withdrawn:
            # The offline approval never reached the host: its advice is withdrawn, nothing to reverse there.
            core.journal.update(
                txn,
                state="reversed",
                result_code=result_code,
                reversal="acknowledged",
                reversal_reason=reason,
            )
            return
        self._store_reversal(row, reason, result_code)
        self.flush(self.budget)

    def _store_reversal(self, row: dict[str, Any], reason: str, result_code: int) -> None:
        core, txn = self.core, row["id"]
        request = self._requests.get(txn) or {
            "t": "0220" if row["offline"] else "0200",
            iso8583.PROCESSING_CODE: "000000",
            iso8583.AMOUNT: f"{row['amount']:012d}",
            iso8583.STAN: row["stan"],
            iso8583.TRANSMISSION_TIME: stamp(row["created"]),
            iso8583.TERMINAL_ID: core.terminal_id,
            iso8583.MERCHANT_ID: core.merchant_id,
            iso8583.CURRENCY: f"{row['currency']:03d}",
        }
        self.queue(txn, request, reason)
        core.journal.update(
            txn, state="reversal_pending", result_code=result_code, reversal="pending", reversal_reason=reason
        )

    def after_power_loss(self) -> list[dict[str, Any]]:
        """On boot: settle what the power cut left unfinished, from the journal alone (stages 4/5/8). A sale that
        never went online is aborted; one whose 0200 got no recorded answer is reversed (the host may have booked
        it); an approval whose outcome the ECR never confirmed (issue of goods not decided) is reversed too, as no
        till has handed over goods for it. Reversals are stored and sent by the store-and-forward thread.
        Returns what was done, per transaction."""
        core, done = self.core, []
        for row in core.journal.transactions("sale"):
            decision = unfinished_after_power_loss(row)
            if decision is None:
                continue
            if decision == "abort":
                core.journal.update(row["id"], state="aborted", result_code=zvt.RESULT_ABORTED)
            elif decision == "reverse-unanswered":
                self._store_reversal(row, REASON_TIMEOUT, zvt.RESULT_REMOTE_NO_RESPONSE)
            else:
                self._store_reversal(row, REASON_CANCELLED, zvt.RESULT_ABORTED)
            core.note("boot_recovery", txn=row["id"], was=row["state"], goods=row["goods"], decision=decision)
            done.append({"txn": row["id"], "was": row["state"], "decision": decision})
        if done:
            self.kick()
        return done

    def flush(self, budget: float) -> bool:
        """Send every stored reversal/advice once, within `budget` seconds. True when nothing is owed any
        more."""
        if not self._lock.acquire(timeout=budget):
            return False
        deadline = time.monotonic() + budget
        closing = self.core.closing
        try:
            while True:
                pending = self.core.journal.saf_pending()
                if not pending:
                    return True
                if time.monotonic() >= deadline or closing.is_set():
                    return False
                for item in pending:
                    if not self._send(item):
                        pause = min(self.core.seconds("host_connect"), max(0.0, deadline - time.monotonic()))
                        closing.wait(pause)  # not a tight loop against a host that is down
                        break
        finally:
            self._lock.release()

    def _send(self, item: dict[str, Any]) -> bool:
        core = self.core
        fields = dict(item["fields"])
        first = item["mti"]
        fields["t"] = first if item["attempts"] == 0 else REPEAT[first]
        core.journal.saf_attempted(item["id"])
        try:
            answer = core.host.exchange(fields)
        except (HostUnreachable, HostTimeout) as exc:
            core.note("saf_unacknowledged", saf=item["id"], mti=fields["t"], error=str(exc))
            return False
        core.journal.saf_acknowledged(item["id"])
        if item["txn_id"] is not None and item["kind"] == "reversal":
            row = core.journal.get(item["txn_id"])
            if row and row["state"] == "reversal_pending":
                core.journal.update(item["txn_id"], state="reversed", reversal="acknowledged")
            elif row:
                core.journal.update(item["txn_id"], reversal="acknowledged")
        core.note("saf_acknowledged", saf=item["id"], mti=fields["t"], rc=answer.get(iso8583.RESPONSE_CODE))
        return True

    # -- the sender thread -----------------------------------------------------------------------------------
    def kick(self) -> None:
        """Try now rather than at the next `reversal_retry`."""
        self._kick.set()

    def _loop(self) -> None:
        closing = self.core.closing
        while not closing.is_set():
            self._kick.wait(self.core.seconds("reversal_retry"))
            self._kick.clear()
            if closing.is_set():
                return
            if self.core.journal.saf_pending() and not self.core.in_progress:
                try:
                    self.flush(self.budget)
                except Exception:  # noqa: BLE001 - the loop must survive; logged
                    log.exception("store-and-forward attempt failed")

    def stop(self) -> None:
        """Wake the sender so it sees the terminal closing."""
        self._kick.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

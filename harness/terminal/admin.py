"""The emulated terminal's administration: the void of a sale by receipt number (ZVT 06 30 -> ISO 8583 0400)
and the end of day (06 50 -> 0500 with the batch totals), each only after every owed reversal/advice went out.

>>> core.admin.void(receipt_no=3).approved                  # doctest: +SKIP
True
>>> core.admin.end_of_day().status["amount"]  # the batch total  # doctest: +SKIP
1250
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from harness.protocols import iso8583, zvt
from harness.terminal.acquirer import HostTimeout, HostUnreachable
from harness.terminal.outcome import Outcome
from harness.terminal.reversals import REASON_CANCELLED, original_data, stamp

if TYPE_CHECKING:
    from harness.terminal.core import TerminalCore

# BMP 60 single totals: count and amount per card group, in this order.
CARD_GROUPS = ("girocard", "jcb", "eurocard", "amex", "visa", "diners", "others")


class Admin:
    """Voids and end of day for one terminal."""

    def __init__(self, core: TerminalCore):
        self.core = core

    def void(self, receipt_no: int) -> Outcome:
        """ZVT Reversal (06 30) of the sale with `receipt_no`: a 0400 to the host; stored and repeated if
        unanswered."""
        core = self.core
        journal = core.journal
        original = journal.by_receipt(receipt_no)
        trace = journal.next_number("trace")
        txn = journal.open("void", trace=trace, state="started", original_id=original["id"] if original else None)
        if original is None:
            return core.fail(txn, zvt.RESULT_NOT_POSSIBLE, "failed")
        base = {
            "amount": original["amount"],
            "currency": original["currency"],
            "trace": trace,
            "original_trace": original["trace"],
            "pan": original["masked_pan"],
            "card_name": original["card_name"],
            "terminal_id": core.terminal_id,
            "time": datetime.now().strftime("%H%M%S"),
            "date": datetime.now().strftime("%m%d"),
        }
        journal.update(
            txn,
            amount=original["amount"],
            currency=original["currency"],
            masked_pan=original["masked_pan"],
            card_name=original["card_name"],
        )
        if original["state"] in ("reversed", "reversal_pending", "voided"):
            return core.fail(txn, zvt.RESULT_ALREADY_REVERSED, "failed", base)
        if original["state"] != "approved":
            return core.fail(txn, zvt.RESULT_REVERSAL_NOT_POSSIBLE, "failed", base)
        approved = Outcome(txn, zvt.RESULT_SUCCESS, {**base, "result_code": zvt.RESULT_SUCCESS}, approved=True)
        if original["offline"]:
            core.reversals.reverse(original["id"], REASON_CANCELLED, zvt.RESULT_SUCCESS)
            journal.update(original["id"], state="voided")
            journal.update(txn, state="approved", result_code=zvt.RESULT_SUCCESS)
            return approved
        if not core.reversals.flush(core.reversals.budget):
            return core.fail(txn, zvt.RESULT_NO_CONNECTION, "failed", base)
        request = {
            "t": "0400",
            iso8583.PROCESSING_CODE: "000000",
            iso8583.AMOUNT: f"{original['amount']:012d}",
            iso8583.STAN: original["stan"],
            iso8583.TRANSMISSION_TIME: stamp(time.time()),
            iso8583.TERMINAL_ID: core.terminal_id,
            iso8583.MERCHANT_ID: core.merchant_id,
            iso8583.CURRENCY: f"{original['currency']:03d}",
            iso8583.RESPONSE_CODE: REASON_CANCELLED,
            iso8583.ORIGINAL_DATA: original_data("0200", original["stan"], stamp(original["created"])),
        }
        try:
            answer = core.host.exchange(request)
        except HostUnreachable:
            return core.fail(txn, zvt.RESULT_NO_CONNECTION, "failed", base)
        except HostTimeout:
            journal.saf_add(original["id"], "reversal", "0420", dict(request, t="0420"))
            journal.update(original["id"], state="voided", reversal="pending", reversal_reason=REASON_CANCELLED)
            journal.update(txn, state="approved", result_code=zvt.RESULT_SUCCESS, stan=original["stan"])
            core.reversals.kick()  # journaled first, then sent: the sender must see the void
            return approved
        rc = str(answer.get(iso8583.RESPONSE_CODE, "96"))
        if rc != "00":
            return core.fail(txn, zvt.result_from_iso(rc), "declined", base)
        journal.update(original["id"], state="voided", reversal="acknowledged", reversal_reason=REASON_CANCELLED)
        journal.update(txn, state="approved", result_code=zvt.RESULT_SUCCESS, stan=original["stan"], host_rc=rc)
        return approved

    def end_of_day(self) -> Outcome:
        """Settle the batch with a 0500 after every owed reversal/advice is acknowledged."""
        core = self.core
        journal = core.journal
        trace = journal.next_number("trace")
        sales = self.batch()
        total = sum(s["amount"] for s in sales)
        txn = journal.open("end_of_day", trace=trace, amount=total, currency=core.currency, state="started")
        now = datetime.now()
        base = {
            "trace": trace,
            "amount": total,
            "currency": core.currency,
            "time": now.strftime("%H%M%S"),
            "date": now.strftime("%m%d"),
            "terminal_id": core.terminal_id,
            "totals": self.totals(sales),
        }
        if not core.reversals.flush(core.reversals.budget):
            return core.fail(txn, zvt.RESULT_NO_CONNECTION, "failed", base)
        stan = f"{journal.next_number('stan'):06d}"
        request = {
            "t": "0500",
            iso8583.STAN: stan,
            iso8583.TRANSMISSION_TIME: now.strftime("%m%d%H%M%S"),
            iso8583.TERMINAL_ID: core.terminal_id,
            iso8583.MERCHANT_ID: core.merchant_id,
            iso8583.CURRENCY: f"{core.currency:03d}",
            "76": f"{len(sales):010d}",
            "88": f"{total:016d}",
        }
        journal.update(txn, stan=stan)
        try:
            answer = core.host.exchange(request)
        except (HostUnreachable, HostTimeout):
            return core.fail(txn, zvt.RESULT_NO_CONNECTION, "failed", base)
        rc = str(answer.get(iso8583.RESPONSE_CODE, "96"))
        if rc != "00":
            return core.fail(txn, zvt.result_from_iso(rc), "declined", base)
        journal.update(txn, state="approved", result_code=zvt.RESULT_SUCCESS, host_rc=rc)
        return Outcome(txn, zvt.RESULT_SUCCESS, {**base, "result_code": zvt.RESULT_SUCCESS}, approved=True)

    def batch(self) -> list[dict[str, Any]]:
        """Approved sales since the last settled end-of-day."""
        rows = self.core.journal.transactions()
        last_eod = max(
            (r["id"] for r in rows if r["kind"] == "end_of_day" and r["state"] == "approved"), default=0
        )
        return [r for r in rows if r["kind"] == "sale" and r["state"] == "approved" and r["id"] > last_eod]

    @staticmethod
    def totals(sales: list[dict[str, Any]]) -> bytes:
        """BMP 60 single totals: receipt-no from/to, then count + amount per card group (girocard .. others)."""
        receipts = [s["receipt_no"] or 0 for s in sales] or [0]
        groups: dict[str, list[int]] = {name: [] for name in CARD_GROUPS}
        for s in sales:
            name = (s["card_name"] or "").lower()
            key = "visa" if "visa" in name else "eurocard" if "master" in name else "others"
            groups[key].append(s["amount"])
        out = zvt.bcd_encode(min(receipts), 2) + zvt.bcd_encode(max(receipts), 2)
        for amounts in groups.values():
            out += bytes([min(len(amounts), 255)]) + zvt.bcd_encode(sum(amounts), 6)
        return out

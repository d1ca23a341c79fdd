"""A sale on the emulated terminal: the card, its PIN, the online authorisation (0200/0210) or an offline approval
within the floor limit, up to the host's decision. What the till then does with the goods (the answer to the
Status-Information) is the ZVT side's; a refusal comes back here as a reversal (`harness.terminal.reversals`).

>>> core.present_card("insufficient_funds")                 # doctest: +SKIP
>>> core.payments.authorize(700).result_code  # ISO 8583 '51' as ZVT 0x33  # doctest: +SKIP
51
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from harness.core.cards import TestCard
from harness.protocols import iso8583, zvt
from harness.terminal.acquirer import HostTimeout, HostUnreachable
from harness.terminal.outcome import Outcome, TransactionAborted
from harness.terminal.reversals import REASON_CANCELLED, REASON_CARD, REASON_TIMEOUT

if TYPE_CHECKING:
    from harness.terminal.core import TerminalCore

# EMV authorisation response codes of an offline approval (in the 0220 advice and BMP 3C 'OFFLINE Yn').
OFFLINE_CHIP = "Y1"  # the card approved offline
OFFLINE_UNABLE_TO_GO_ONLINE = "Y3"  # the host could not be reached


class Payments:
    """Runs sales for one terminal."""

    def __init__(self, core: TerminalCore):
        self.core = core

    def authorize(
        self,
        amount: int,
        currency: int | None = None,
        card_timeout: float | None = None,
        status: Callable[..., None] | None = None,
    ) -> Outcome:
        """Run one sale up to the host's decision. `status(code, timeout=None)` sends an intermediate status to
        the ECR; which, at each moment of the payment, is the terminal's display (`harness.terminal.display`)."""
        core = self.core
        journal = core.journal
        send = status or (lambda code, timeout=None: None)

        def show(moment: str) -> None:
            for shown in core.display.shown(moment):
                if isinstance(shown, int):
                    send(shown)
                else:
                    send(shown[0], timeout=shown[1])

        currency = currency or core.currency
        trace = journal.next_number("trace")
        txn = journal.open("sale", amount=amount, currency=currency, trace=trace, state="started")
        core.note("sale_started", txn=txn, amount=amount, trace=trace)
        try:
            show("ask_card")
            c = core.wait_for_card(card_timeout if card_timeout is not None else core.seconds("card"))
        except (TransactionAborted, TimeoutError):
            return core.fail(txn, zvt.RESULT_ABORTED, "aborted")
        base = self._status_fields(txn, c)
        journal.update(txn, masked_pan=c.masked_pan, card_name=c.card_name, card_type=c.card_type)
        if c.removed == "before_online":
            show("unreadable")
            return core.fail(txn, zvt.RESULT_CARD_NOT_READABLE, "failed", base)
        show("card_read")
        show("pin")
        if not c.pin_ok:
            show("wrong_pin")
            return core.fail(txn, zvt.RESULT_WRONG_PIN, "declined", base)
        if core.aborted:
            return core.fail(txn, zvt.RESULT_ABORTED, "aborted", base)
        if c.offline_only:
            if core.offline and amount <= core.floor_limit:
                return self._approve_offline(txn, c, amount, currency, base, OFFLINE_CHIP, show)
            show("declined")
            return core.fail(txn, zvt.RESULT_DO_NOT_HONOUR, "declined", base)
        # Online: settle what is owed to the host first.
        show("online")
        if not core.reversals.flush(core.reversals.budget):
            core.note("saf_pending_blocks_sale", txn=txn)
            return self._unreachable(txn, c, amount, currency, base, show)
        stan = f"{journal.next_number('stan'):06d}"
        request = self._financial_request("0200", c, amount, currency, stan)
        journal.update(txn, stan=stan, state="online")
        core.reversals.remember(txn, request)
        try:
            answer = core.host.exchange(request)
        except HostUnreachable:
            return self._unreachable(txn, c, amount, currency, base, show)
        except HostTimeout:
            core.reversals.queue(txn, request, REASON_TIMEOUT)
            return core.fail(
                txn, zvt.RESULT_REMOTE_NO_RESPONSE, "reversal_pending", base, reversal="pending",
                reversal_reason=REASON_TIMEOUT,
            )
        rc = str(answer.get(iso8583.RESPONSE_CODE, "96"))
        auth = answer.get(iso8583.AUTH_CODE)
        journal.update(txn, host_rc=rc, auth_code=auth, rrn=answer.get(iso8583.RRN))
        if rc != "00":
            show("declined")
            return core.fail(txn, zvt.result_from_iso(rc), "declined", base)
        if core.aborted:
            core.reversals.queue(txn, request, REASON_CANCELLED)
            return core.fail(
                txn, zvt.RESULT_ABORTED, "reversal_pending", base, reversal="pending",
                reversal_reason=REASON_CANCELLED,
            )
        if c.removed == "after_online":
            show("reversal")
            core.reversals.queue(txn, request, REASON_CARD)
            return core.fail(
                txn, zvt.RESULT_CARD_NOT_READABLE, "reversal_pending", base, reversal="pending",
                reversal_reason=REASON_CARD,
            )
        journal.update(txn, state="approved", result_code=zvt.RESULT_SUCCESS)
        base.update(result_code=zvt.RESULT_SUCCESS, aid=(auth or "")[:8] or None)
        core.note("sale_approved", txn=txn, stan=stan, auth_code=auth)
        show("approved")                  # what it shows once approved ("please take goods", "remove card")
        return Outcome(txn, zvt.RESULT_SUCCESS, base, approved=True)

    def _unreachable(
        self, txn: int, c: TestCard, amount: int, currency: int, base: dict[str, Any], show: Callable[[str], None]
    ) -> Outcome:
        core = self.core
        if core.offline and amount <= core.floor_limit:
            return self._approve_offline(txn, c, amount, currency, base, OFFLINE_UNABLE_TO_GO_ONLINE, show)
        return core.fail(txn, zvt.RESULT_NO_CONNECTION, "failed", base)

    def _approve_offline(
        self, txn: int, c: TestCard, amount: int, currency: int, base: dict[str, Any], code: str,
        show: Callable[[str], None],
    ) -> Outcome:
        core = self.core
        stan = f"{core.journal.next_number('stan'):06d}"
        advice = self._financial_request("0220", c, amount, currency, stan)
        advice[iso8583.RESPONSE_CODE] = code
        core.journal.update(txn, state="approved", result_code=zvt.RESULT_SUCCESS, offline=1, stan=stan,
                            host_rc=code)
        core.reversals.store(txn, "advice", "0220", advice)
        core.reversals.remember(txn, advice)
        base.update(result_code=zvt.RESULT_SUCCESS, additional_text=f"OFFLINE {code}")
        core.note("sale_approved_offline", txn=txn, stan=stan, emv=code)
        show("offline")
        return Outcome(txn, zvt.RESULT_SUCCESS, base, approved=True, offline=True)

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
            iso8583.TERMINAL_ID: self.core.terminal_id,
            iso8583.MERCHANT_ID: self.core.merchant_id,
            iso8583.CURRENCY: f"{currency:03d}",
        }

    def _status_fields(self, txn: int, c: TestCard) -> dict[str, Any]:
        row = self.core.journal.get(txn)
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
            "terminal_id": self.core.terminal_id,
        }

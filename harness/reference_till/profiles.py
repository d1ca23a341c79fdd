"""How the reference till decides, per profile. `correct` is the behaviour posrig demands; every other profile
is one real mistake, made in the code path where tills really make it (the overridden method), not a switch
that fakes the output. The oracle must catch each of them from the evidence alone.

| profile                 | the mistake                                                    | caught at       |
|-------------------------|----------------------------------------------------------------|-----------------|
| correct                 | -                                                              | -               |
| print-on-timeout        | short result timer, then silence counts as approval (incident) | 0210 lost       |
| print-before-completion | prints on 04 0F, before 06 0F; an abort after it is too late   | 04 0F ack lost  |
| retry-without-query     | resends 06 01 after a lost result instead of asking            | 04 0F/06 0F lost|
| trust-abort             | sends 06 B0, records "cancelled" without awaiting the outcome  | late approval   |
| offline-as-approved     | takes "host unreachable" (7D/9B/A1/A3) for an offline approval | host down       |
| ignore-print-failure    | books without checking the printer, ignores print errors       | printer offline |
| drawer-on-decline       | opens the drawer when the card is not paid ("take cash")      | any decline     |
| drawer-at-tender        | opens the drawer at "pay", before the terminal approved        | any card sale   |
| reset-voids-sale        | a reset on the status query after a lost result = terminal     | two faults only:|
|                         | rebooted, payment void: "failed", no receipt (money is held)   | explore; restart|
| forget-on-crash         | on boot, writes an open card sale off as failed, not asking    | till power cut, |
|                         | the terminal                                                   | result booked   |
| receipt-not-owed        | journals a receipt only once printed: one cut off by a power   | till power cut  |
|                         | cut is never printed again                                     | mid-receipt     |
| reprint-original        | prints an owed receipt again as an original, not a copy        | power cut after |
|                         |                                                                | the receipt     |

Only cash sales and card sales the acquirer holds open the drawer: the correct till pulses it with the cash
sale's receipt (before the cut), never for a card (I5 judges every pulse, inside a receipt or not).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.protocols import zvt
from harness.protocols.zvt import ANSWER_BOOK, ANSWER_NO_GOODS, RESULT_SUCCESS, result_text
from harness.reference_till.ecr_client import EcrError, NotStarted, PaymentResult, ResultLost, is_offline
from harness.reference_till.receipt import PrintError

if TYPE_CHECKING:
    from harness.reference_till.register import Register, SaleRun

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NominalTimers:
    """Specified (unscaled) seconds; the till multiplies them by the rig's timing scale."""

    ack: float = 5.0               # ZVT T3: the terminal acknowledges a command
    result: float = 40.0           # silence the till accepts while the terminal works (> its host timeout
                                   # 10 s + its reversal), reset by every message from the terminal
    overall: float = 180.0         # ZVT T4: the longest a transaction may take
    query_interval: float = 1.5    # pause after the n-th failed query: n x this (a busy terminal waits T3)
    query_attempts: int = 4
    reprint_interval: float = 2.0  # how often an owed receipt is retried
    printer: float = 2.0           # printer socket timeout (status answers, writes)


class Correct:
    """Prints only after a confirmed approval; asks the terminal whenever the outcome is unknown; never
    retries a payment blindly; refuses the goods (84 66) when it cannot print; owes and reprints a failed
    receipt."""

    name = "correct"
    timers = NominalTimers()
    owe_while_printing = True      # a paid sale's receipt is owed until it is certainly out (a crash mid-print)
    mark_reprints = True           # an owed receipt printed again says COPY

    def __init__(self, till: Register):
        self.till = till

    # -- start-up --------------------------------------------------------------------------------------------
    def on_boot(self) -> None:
        """The journal holds sales a previous run left open (a power cut): resolve them now, asking the terminal."""
        self.till.recover_in_background()

    # -- tender: the cashier pressed "pay" -------------------------------------------------------------------
    def on_tender(self, run: SaleRun) -> None:
        """Nothing happens at tender: the drawer opens with the cash receipt, never for a card."""

    # -- issue of goods: the answer to 04 0F -----------------------------------------------------------------
    def answer_status_info(self, run: SaleRun, info: dict[str, Any]) -> bytes:
        if info.get("result_code") != RESULT_SUCCESS:
            return ANSWER_BOOK                       # acknowledge a decline
        if run.abort.is_set():
            self.till.step(run, "goods-refused", detail={"why": "cashier aborted the sale"})
            return ANSWER_NO_GOODS
        ok, why = self.till.printer.ready()
        if not ok:
            self.till.step(run, "goods-refused", detail={"why": why})
            return ANSWER_NO_GOODS
        return ANSWER_BOOK

    def on_abort_sent(self, run: SaleRun) -> bool:
        """06 B0 went out. False: keep serving the terminal until it says how the transaction ended."""
        self.till.step(run, "abort-sent")
        return False

    # -- outcomes --------------------------------------------------------------------------------------------
    def on_result(self, run: SaleRun, result: PaymentResult) -> None:
        info = result.status_info or {}
        if result.approved:
            self.till.settle_paid(run, info, offline=result.offline)
        elif result.answered == "no-goods" and result.completed:
            # 06 0F although the goods were refused: the 84 66 may never have arrived. Ask what stands.
            self.resolve_by_query(run, reason="the terminal completed a payment whose goods were refused")
        elif result.answered == "no-goods":
            status = "cancelled" if run.abort.is_set() else "failed"
            self.till.finish(run, status, info,
                             message="goods refused (84 66); the terminal reverses the payment")
        elif result.abort_code is not None and run.abort.is_set():
            self.till.finish(run, "cancelled", info, terminal_result=result.abort_code,
                             message=f"cancelled at the till: {result_text(result.abort_code)}")
        elif result.result_code not in (None, RESULT_SUCCESS) and result.result_code in zvt.HOST_DECLINES:
            self.till.finish(run, "declined", info, terminal_result=result.result_code,
                             message=result_text(result.result_code))
        else:
            self.till.finish(run, "failed", info, terminal_result=result.result_code,
                             message=f"payment not completed: {result_text(result.result_code)}")

    def on_not_started(self, run: SaleRun, exc: NotStarted) -> None:
        """The terminal never acknowledged 06 01. Ask before concluding, never resend blindly."""
        self.resolve_by_query(run, reason=str(exc))

    def on_result_lost(self, run: SaleRun, exc: ResultLost) -> None:
        """The terminal took the payment and then went silent or the link dropped: stop it, then ask it."""
        try:
            self.till.ecr.abort()
            self.till.step(run, "abort-sent", detail={"why": "result lost"})
        except EcrError:
            pass
        self.resolve_by_query(run, reason=str(exc))

    def resolve_by_query(self, run: SaleRun, reason: str) -> None:
        """Status enquiry (05 01), then repeat receipt (06 20): was this sale's payment taken?

        The terminal only repeats its *last* transaction, so "not ours" proves nothing unless this sale is the
        till's newest: an older unresolved sale then stays `unknown` (no receipt) for manual
        reconciliation."""
        newest = self.till.journal.sales(with_history=False)[-1]["id"] == run.sale_id
        self.till.step(run, "querying", detail={"why": reason})
        t = self.till.timers
        for attempt in range(1, t.query_attempts + 1):
            try:
                self.till.ecr.status_enquiry()
                last = self.till.ecr.repeat_receipt()
            except EcrError as exc:
                self.till.step(run, "query-failed", detail={"attempt": attempt, "error": str(exc)})
                if self.on_query_failed(run, exc, reason):
                    return
                if attempt < t.query_attempts:
                    time.sleep(t.query_interval * attempt)
                continue
            info = last.status_info or {}
            known = self.till.journal.known_transactions(exclude=run.sale_id)
            ours = (info.get("amount") == run.amount_cents
                    and (info.get("trace"), info.get("receipt_no")) not in known)
            self.till.step(run, "query-answered",
                           detail={"last": info, "abort": last.abort_code, "ours": ours})
            if ours and info.get("result_code") == RESULT_SUCCESS and last.abort_code is None:
                self.till.settle_paid(run, info, offline=is_offline(info))
            elif ours and info.get("result_code") not in (None, RESULT_SUCCESS):
                code = info["result_code"]
                self.till.finish(run, "declined" if code in zvt.HOST_DECLINES else "failed", info,
                                 terminal_result=code, message=f"terminal reports: {result_text(code)}")
            elif newest:
                self.till.finish(run, "failed", {}, terminal_result=last.abort_code,
                                 message=f"terminal has no completed payment for this sale ({reason})")
            else:
                self.till.finish(run, "unknown", {},
                                 message="the terminal's last transaction is not this sale and later sales "
                                         "were made: reconcile by hand")
            return
        self.till.finish(run, "unknown", {}, message=f"terminal unreachable, outcome unknown ({reason}); "
                                                     "no receipt until it is resolved (POST /recover)")

    def on_query_failed(self, run: SaleRun, exc: EcrError, reason: str) -> bool:
        """A status query failed. True: the profile has decided the sale; False: ask again (correct)."""
        return False

    # -- receipts --------------------------------------------------------------------------------------------
    def print_sale_receipt(self, run: SaleRun) -> None:
        """Print; when the printer fails the payment stands and the receipt is owed (reprinted later)."""
        try:
            self.till.print_receipt(run.sale_id)
        except PrintError as exc:
            self.till.step(run, "receipt-owed", receipt="pending", detail={"error": str(exc)})


class PrintOnTimeout(Correct):
    """THE INCIDENT: gives up after a few seconds and assumes the customer paid."""

    name = "print-on-timeout"
    timers = NominalTimers(result=5.0)     # "the terminal always answers within 2 s"

    def on_result_lost(self, run: SaleRun, exc: ResultLost) -> None:
        # The card was presented and the terminal took the request: a timeout means the bank was slow, not
        # that the payment failed. Don't keep the customer waiting.
        self.till.settle_paid(run, exc.status_info or {}, offline=False)


class PrintBeforeCompletion(Correct):
    """Hands over the goods (prints) as soon as 04 0F says 00, before the terminal completes with 06 0F."""

    name = "print-before-completion"

    def answer_status_info(self, run: SaleRun, info: dict[str, Any]) -> bytes:
        if info.get("result_code") == RESULT_SUCCESS:
            self.till.apply_status_info(run, info)
            self.till.step(run, "paid", status="paid")
            self.print_sale_receipt(run)          # approved is approved: print while the terminal finishes
        return ANSWER_BOOK

    def on_result(self, run: SaleRun, result: PaymentResult) -> None:
        if result.approved:
            self.till.finish(run, "paid", result.status_info or {}, message="approved")
        else:
            super().on_result(run, result)

    def on_result_lost(self, run: SaleRun, exc: ResultLost) -> None:
        if self.till.journal.sale(run.sale_id, with_history=False)["receipt"] == "printed":
            self.till.finish(run, "paid", exc.status_info or {}, message="approved (completion not received)")
        else:
            super().on_result_lost(run, exc)


class RetryWithoutQuery(Correct):
    """After a lost result or a missing ack it simply sends the payment again."""

    name = "retry-without-query"

    max_attempts = 3

    def _retry(self, run: SaleRun, why: str) -> None:
        if run.attempts >= self.max_attempts:
            self.till.finish(run, "failed", {}, message=f"payment failed {run.attempts} times: {why}")
            return
        self.till.step(run, "retrying", detail={"why": why})
        time.sleep(self.till.timers.ack)          # give the terminal a moment, then press "pay" again
        self.till.authorize(run)

    def on_not_started(self, run: SaleRun, exc: NotStarted) -> None:
        self._retry(run, str(exc))

    def on_result_lost(self, run: SaleRun, exc: ResultLost) -> None:
        self._retry(run, str(exc))


class TrustAbort(Correct):
    """Sends 06 B0 and believes the payment is cancelled, without waiting for the terminal's answer."""

    name = "trust-abort"

    def on_abort_sent(self, run: SaleRun) -> bool:
        self.till.step(run, "abort-sent")
        return True

    def on_result_lost(self, run: SaleRun, exc: ResultLost) -> None:
        if not run.abort.is_set():                # our own timeout: abort now (the cashier's abort went out)
            try:
                self.till.ecr.abort()
            except EcrError:
                pass
        self.till.finish(run, "cancelled", {}, message=f"payment aborted ({exc})")


class OfflineAsApproved(Correct):
    """When the terminal cannot reach the host it assumes the terminal approved offline."""

    name = "offline-as-approved"

    def on_result(self, run: SaleRun, result: PaymentResult) -> None:
        if result.result_code in zvt.COMMUNICATION_FAILURES:
            # host unreachable: the terminal works offline within its floor limit, so the sale goes through
            self.till.settle_paid(run, result.status_info or {}, offline=True)
        else:
            super().on_result(run, result)


class IgnorePrintFailure(Correct):
    """Books every approval without looking at the printer and shrugs off print errors."""

    name = "ignore-print-failure"

    def answer_status_info(self, run: SaleRun, info: dict[str, Any]) -> bytes:
        return ANSWER_BOOK

    def print_sale_receipt(self, run: SaleRun) -> None:
        try:
            self.till.print_receipt(run.sale_id)
        except PrintError as exc:
            log.warning("printer trouble, the receipt will come out later: %s", exc)
        self.till.step(run, "printed", receipt="printed")


class DrawerOnDecline(Correct):
    """Opens the drawer when a card payment does not go through, so the cashier can take cash instead: the
    drawer stands open on a sale nobody has paid for. The kick is a side job of the printer routine: the sale's
    record says nothing of it (only the print log does), so the till's word alone cannot give it away."""

    name = "drawer-on-decline"

    def on_result(self, run: SaleRun, result: PaymentResult) -> None:
        super().on_result(run, result)
        status = self.till.journal.sale(run.sale_id, with_history=False)["status"]
        if status in ("declined", "failed", "cancelled"):
            try:
                self.till.printer.kick_drawer()           # "customer pays cash instead"
                self.till.journal.record_print(run.sale_id, "drawer", True)
            except PrintError as exc:
                self.till.journal.record_print(run.sale_id, "drawer", False, error=str(exc))


class DrawerAtTender(Correct):
    """Opens the drawer as soon as the cashier presses "pay", whatever the tender (a common till setting): for a
    card the drawer is open before the terminal has approved anything. Like drawer-on-decline, the sale's record
    does not say so."""

    name = "drawer-at-tender"

    def on_tender(self, run: SaleRun) -> None:
        try:
            self.till.printer.kick_drawer()
            self.till.journal.record_print(run.sale_id, "drawer", True)
        except PrintError as exc:
            self.till.journal.record_print(run.sale_id, "drawer", False, error=str(exc))


class ResetVoidsSale(Correct):
    """A compound-fault bug (planted for `posrig explore`, docs/explore.md): when its status query after a lost
    result is reset before the terminal acknowledged it, it takes that for a terminal that rebooted and so voided
    the payment in flight, and tells the cashier the sale failed (no receipt). But the terminal booked the payment
    before the result was lost: the customer is charged without a receipt (I2). It needs two faults in one sale:
    one that loses the result after the terminal booked (else there is no query) and a reset of the query's own
    request (05 01 or 06 20, sent only in the query); a query that times out (blackhole, flap, drop) is asked
    again as the correct till does, so no single-fault matrix row shows it."""

    name = "reset-voids-sale"

    def on_query_failed(self, run: SaleRun, exc: EcrError, reason: str) -> bool:
        if not (isinstance(exc, NotStarted) and _reset_by_peer(exc)):
            return False
        # "ECONNRESET on the ECR port means the terminal rebooted; a reboot drops the transaction in flight."
        self.till.finish(run, "failed", {}, message=f"terminal restarted during the payment ({reason}): "
                                                    "payment void, ask for another payment")
        return True


class ForgetOnCrash(Correct):
    """After a power cut it writes the interrupted card sale off as failed ("the payment was interrupted, ask the
    customer to pay again") without asking the terminal, which may well have completed it."""

    name = "forget-on-crash"

    def on_boot(self) -> None:
        for s in self.till.journal.unresolved():
            if s["tender"] == "card" and s["status"] in ("pending", "unknown"):
                self.till.journal.transition(s["id"], "failed", status="failed",
                                             message="interrupted by a restart: ask for another payment")
        super().on_boot()                          # owed receipts are still printed


class ReceiptNotOwed(Correct):
    """Marks the receipt owed only when printing fails with an error; a power cut in the middle of printing leaves
    a paid sale whose receipt nobody owes, so it never comes out whole."""

    name = "receipt-not-owed"
    owe_while_printing = False


class ReprintOriginal(Correct):
    """Prints an owed receipt again exactly as the first time, without COPY: after a power cut just behind the cut,
    the customer holds two original receipts for one payment."""

    name = "reprint-original"
    mark_reprints = False


def _reset_by_peer(exc: BaseException | None) -> bool:
    """The error (or one it was raised `from`) is a TCP reset by the peer. Only explicit causes count: the query
    runs inside the handler of the lost result, so its errors' __context__ is that earlier failure."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, ConnectionResetError):
            return True
        exc, seen = exc.__cause__, seen + 1
    return False


PROFILES: dict[str, type[Correct]] = {p.name: p for p in (Correct, PrintOnTimeout, PrintBeforeCompletion,
                                                          RetryWithoutQuery, TrustAbort, OfflineAsApproved,
                                                          IgnorePrintFailure, DrawerOnDecline, DrawerAtTender,
                                                          ResetVoidsSale, ForgetOnCrash, ReceiptNotOwed,
                                                          ReprintOriginal)}


def profile(name: str) -> type[Correct]:
    """The profile class called `name`; ValueError listing the known names otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown till profile {name!r}; known: {', '.join(PROFILES)}") from None

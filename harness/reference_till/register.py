"""The reference till's register: one sale at a time, from basket to receipt, as the profile decides.

`Register.sell()` opens the sale in the journal, takes the payment (cash, or a card over ZVT with the terminal's
status information answered by the profile), prints the receipt and kicks the drawer; `recover()` resolves what
a crash or a lost result left open. The HTTP control API that drives it is `harness.reference_till.app`.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from harness import __version__
from harness.reference_till.ecr_client import EcrClient, EcrError, NotStarted, ResultLost, Timers
from harness.reference_till.journal import Journal
from harness.reference_till.profiles import NominalTimers, profile
from harness.reference_till.receipt import PrintError, ReceiptPrinterClient, sale_receipt
from harness.till.outcome import TENDERS, SaleOutcome, basket_total

log = logging.getLogger("posrig.till")


@dataclass(frozen=True)
class ScaledTimers:
    ack: float
    result: float
    overall: float
    query_interval: float
    query_attempts: int
    reprint_interval: float
    printer: float

    @classmethod
    def of(cls, nominal: NominalTimers, scale: float) -> ScaledTimers:
        return cls(ack=nominal.ack * scale, result=nominal.result * scale, overall=nominal.overall * scale,
                   query_interval=nominal.query_interval * scale, query_attempts=nominal.query_attempts,
                   reprint_interval=nominal.reprint_interval * scale,
                   printer=max(nominal.printer * scale, 0.05))


@dataclass
class SaleRun:
    """A sale being worked on by this process."""

    sale_id: str
    amount_cents: int
    tender: str
    abort: threading.Event = field(default_factory=threading.Event)
    attempts: int = 0
    done: bool = False


class TillBusy(RuntimeError):
    """A sale is already in progress (a till serves one customer at a time)."""


class Register:
    """The till's logic. A profile (profiles.py) makes the decisions; this class does the work they name."""

    def __init__(self, *, ecr: tuple[str, int], printer: tuple[str, int], profile_name: str, journal: Journal,
                 timing_scale: float = 1.0):
        self.profile_cls = profile(profile_name)
        self.timers = ScaledTimers.of(self.profile_cls.timers, timing_scale)
        self.timing_scale = timing_scale
        self.journal = journal
        self._current_sale: str | None = None
        self.ecr = EcrClient(ecr, Timers(ack=self.timers.ack, result=self.timers.result,
                                         overall=self.timers.overall), transcript=self._zvt_transcript)
        self.printer = ReceiptPrinterClient(printer, timeout=self.timers.printer)
        self.policy = self.profile_cls(self)
        self._sale_lock = threading.Lock()
        self._run: SaleRun | None = None
        self._stop = threading.Event()
        self._reprinter = threading.Thread(target=self._reprint_loop, name="till-reprinter", daemon=True)
        self.registration = "not yet"

    def identity(self) -> dict[str, Any]:
        return {"program": "posrig reference till", "version": __version__, "profile": self.policy.name,
                "timing_scale": self.timing_scale, "timers": self.timers.__dict__,
                "timers_nominal": self.profile_cls.timers.__dict__, "registration": self.registration,
                "ecr": f"{self.ecr.address[0]}:{self.ecr.address[1]}",
                "printer": f"{self.printer.address[0]}:{self.printer.address[1]}",
                "journal": str(self.journal.path)}

    def start(self) -> None:
        """Register with the terminal (best effort: a terminal that is down now may be up for the first sale),
        start the reprinter, and resolve what a previous run left open."""
        try:
            done = self.ecr.register()
            self.registration = "registered" if done.completed else f"refused: {done.result_code}"
        except EcrError as exc:
            self.registration = f"failed: {exc}"
            log.warning("registration with the terminal failed: %s", exc)
        self._reprinter.start()
        if self.journal.unresolved():
            self.policy.on_boot()

    def stop(self) -> None:
        self._stop.set()
        if self._run:
            self._run.abort.set()

    # -- journal helpers used by the profiles ---------------------------------------------------------------
    def _zvt_transcript(self, direction: str, summary: dict[str, Any]) -> None:
        self.journal.record_zvt(self._current_sale, direction, summary)

    def step(self, run: SaleRun, state: str, **updates: Any) -> None:
        self.journal.transition(run.sale_id, state, **updates)

    def apply_status_info(self, run: SaleRun, info: dict[str, Any]) -> None:
        """Copy what the terminal said about the payment into the sale."""
        self.step(run, "status-information", masked_pan=info.get("pan"), auth_code=info.get("aid"),
                  trace=info.get("trace"), receipt_no=info.get("receipt_no"),
                  terminal_id=None if info.get("terminal_id") is None else str(info.get("terminal_id")),
                  terminal_result=info.get("result_code"))

    def finish(self, run: SaleRun, status: str, info: dict[str, Any], *, message: str = "",
               terminal_result: int | None = None) -> None:
        if info:
            self.apply_status_info(run, info)
        updates: dict[str, Any] = {"status": status, "message": message}
        if terminal_result is not None:
            updates["terminal_result"] = terminal_result
        self.step(run, status, **updates)
        run.done = True

    def settle_paid(self, run: SaleRun, info: dict[str, Any], *, offline: bool) -> None:
        """The payment is taken: record it, then print the sale receipt (through the profile)."""
        if info:
            self.apply_status_info(run, info)
        self.step(run, "paid", status="paid", offline=int(bool(offline)),
                  message="approved offline" if offline else "approved")
        run.done = True
        self.policy.print_sale_receipt(run)

    def print_receipt(self, sale_id: str, *, reprint: bool = False, kick_drawer: bool = False) -> None:
        """Print the sale receipt; journal what was printed; PrintError (also journaled) when it failed."""
        sale = self.journal.sale(sale_id, with_history=False)
        content = sale_receipt(sale, reprint=reprint)
        kind = "reprint" if reprint else "sale"
        if sale["status"] == "paid" and sale["receipt"] != "pending" and self.policy.owe_while_printing:
            # Owed from the first byte on: a till that dies while printing cannot know how much came out, so on
            # boot it prints the receipt again, as a copy (recover / the reprinter), never a second original.
            self.journal.transition(sale_id, "printing", receipt="pending")
        try:
            self.printer.print(content, kick_drawer=kick_drawer)
        except PrintError as exc:
            self.journal.record_print(sale_id, kind, False, content.text, str(exc))
            raise
        self.journal.record_print(sale_id, kind, True, content.text)
        if kick_drawer:
            self.journal.record_print(sale_id, "drawer", True)
        self.journal.transition(sale_id, "printed", receipt="printed", drawer_opened=int(kick_drawer))

    @property
    def busy(self) -> bool:
        """A sale, or the resolution of open ones, is running (a new sale would be refused)."""
        return self._sale_lock.locked()

    # -- selling --------------------------------------------------------------------------------------------
    def sell(self, basket: list[dict[str, Any]], tender: str = "card",
             client_ref: str | None = None) -> SaleOutcome:
        if tender not in TENDERS:
            raise ValueError(f"tender {tender!r} is not one of {', '.join(TENDERS)}")
        amount = basket_total(basket)
        if not self._sale_lock.acquire(blocking=False):
            raise TillBusy(f"sale {self._run.sale_id if self._run else '?'} is still in progress")
        t0 = time.monotonic()
        try:
            if tender == "card":
                self._resolve_open_payments()
            sale_id = self.journal.open_sale(basket, tender, amount, client_ref=client_ref)
            run = SaleRun(sale_id, amount, tender)
            self._run, self._current_sale = run, sale_id
            self.policy.on_tender(run)
            if tender == "cash":
                self._cash(run)
            else:
                self.authorize(run)
            if not run.done:
                self.finish(run, "unknown", {}, message="the till ended the sale without deciding it")
        finally:
            self._run, self._current_sale = None, None
            self._sale_lock.release()
        return self.outcome(sale_id, elapsed=time.monotonic() - t0)

    def _cash(self, run: SaleRun) -> None:
        self.step(run, "paid", status="paid", message="cash")
        run.done = True
        try:
            self.print_receipt(run.sale_id, kick_drawer=True)
        except PrintError as exc:
            self.step(run, "receipt-owed", receipt="pending", detail={"error": str(exc)})
            try:                                        # the cash still goes in the drawer
                self.printer.kick_drawer()
                self.journal.record_print(run.sale_id, "drawer", True)
                self.step(run, "drawer-opened", drawer_opened=1)
            except PrintError as drawer_exc:
                self.journal.record_print(run.sale_id, "drawer", False, error=str(drawer_exc))

    def authorize(self, run: SaleRun) -> None:
        """Send 06 01 and hand whatever happens to the profile."""
        run.attempts += 1
        self.step(run, "authorizing", detail={"attempt": run.attempts})
        try:
            result = self.ecr.authorization(
                run.amount_cents, on_status_info=lambda info: self._answer(run, info), abort=run.abort,
                on_abort_sent=lambda: self.policy.on_abort_sent(run))
        except NotStarted as exc:
            self.step(run, "not-started", detail={"error": str(exc)})
            self.policy.on_not_started(run, exc)
            return
        except ResultLost as exc:
            self.step(run, "result-lost", detail={"error": str(exc), "status_info": exc.status_info,
                                                  "answered": exc.answered})
            self.policy.on_result_lost(run, exc)
            return
        self.step(run, "terminal-done", detail={
            "completed": result.completed, "abort_code": result.abort_code, "answered": result.answered,
            "intermediate": result.intermediate})
        self.policy.on_result(run, result)

    def _answer(self, run: SaleRun, info: dict[str, Any]) -> bytes:
        self.step(run, "status-information-received", detail={"info": info})
        answer = self.policy.answer_status_info(run, info)
        self.step(run, "status-information-answered", detail={"answer": answer.hex(" ")})
        return answer

    def abort(self) -> dict[str, Any]:
        """The cashier presses abort: the running sale gets 06 B0 (its profile decides what follows)."""
        run = self._run
        if run is None:
            return {"aborted": None, "message": "no sale in progress"}
        run.abort.set()
        return {"aborted": run.sale_id}

    def outcome(self, sale_id: str, elapsed: float = 0.0) -> SaleOutcome:
        s = self.journal.sale(sale_id)
        return SaleOutcome(
            sale_id=s["id"], status=s["status"], tender=s["tender"], amount_cents=s["amount_cents"],
            currency=s["currency"], receipt=s["receipt"], drawer_opened=s["drawer_opened"],
            offline=s["offline"], masked_pan=s["masked_pan"], auth_code=s["auth_code"], trace=s["trace"],
            receipt_no=s["receipt_no"],
            terminal_id=s["terminal_id"], terminal_result=s["terminal_result"], message=s["message"],
            elapsed=round(elapsed, 4), states=[e["state"] for e in s["events"]],
            extra={"profile": self.policy.name, "client_ref": s["client_ref"]})

    # -- recovery -------------------------------------------------------------------------------------------
    def recover(self) -> list[SaleOutcome]:
        """Resolve what is open: ask the terminal about pending/unknown payments, reprint owed receipts."""
        resolved = []
        with self._sale_lock:
            for s in self.journal.unresolved():
                run = SaleRun(s["id"], s["amount_cents"], s["tender"])
                self._current_sale = s["id"]
                try:
                    if s["status"] in ("pending", "unknown") and s["tender"] == "card":
                        self.policy.resolve_by_query(run, reason="recovering an unresolved sale")
                    elif s["status"] == "pending":
                        self.finish(run, "failed", {},
                                    message="the till stopped before this cash sale finished")
                    elif s["status"] == "paid":
                        self._reprint(s["id"])
                finally:
                    self._current_sale = None
                resolved.append(self.outcome(s["id"]))
        return resolved

    def _resolve_open_payments(self) -> None:
        """Before the next card payment, find out what happened to an open one (it is still the newest)."""
        sales = self.journal.sales(with_history=False)
        for s in sales[-1:]:
            if s["tender"] == "card" and s["status"] in ("pending", "unknown"):
                run = SaleRun(s["id"], s["amount_cents"], s["tender"])
                self._current_sale = s["id"]
                try:
                    self.policy.resolve_by_query(run, reason="resolving an open payment before the next sale")
                finally:
                    self._current_sale = None

    def recover_in_background(self) -> None:
        """Resolve what a previous run left open, without holding up the start."""
        threading.Thread(target=self._recover_quietly, name="till-recover", daemon=True).start()

    def _recover_quietly(self) -> None:
        try:
            self.recover()
        except Exception:  # noqa: BLE001 - logged; POST /recover retries
            log.exception("recovery at start-up failed")

    def _reprint(self, sale_id: str) -> bool:
        try:
            self.print_receipt(sale_id, reprint=self.policy.mark_reprints)
            return True
        except PrintError as exc:
            log.info("owed receipt for %s still not printed: %s", sale_id, exc)
            return False

    def _reprint_loop(self) -> None:
        while not self._stop.wait(self.timers.reprint_interval):
            owed = [s for s in self.journal.unresolved()
                    if s["status"] == "paid" and s["receipt"] == "pending"]
            if not owed or not self._sale_lock.acquire(blocking=False):
                continue
            try:
                for s in owed:
                    if not self._reprint(s["id"]):
                        break
            finally:
                self._sale_lock.release()


# -- the control API -----------------------------------------------------------------------------------------

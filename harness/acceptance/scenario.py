"""Run one acceptance scenario on a bench and conclude: a clean sale, then arm the faults, sell, prove the faults
hit, wait for quiet, a clean sale for the next customer, reconcile all three, and fill a `ScenarioRecord`.

The three sales have their own baskets and amounts (4.78, the faulted 4.88, 6.69), so a till that hands one sale
another's answer, status or receipt is caught (a receipt naming another payment is an I1 violation), and one left
unfit by the fault fails I8 (the next customer). In the clean sales the till must acknowledge every message of the
emulated terminal (I9).

>>> record = run_scenario(bench, scenario)       # doctest: +SKIP
>>> record.verdict                               # doctest: +SKIP
<Verdict.OK: 'OK'>
"""

from __future__ import annotations

import threading
import time
import types
from typing import Any

from harness.acceptance import steps
from harness.acceptance.crash import CrashMissed, run_crash
from harness.acceptance.matrix import Scenario
from harness.acceptance.oracle import Payment, PrintedReceipt, Sale, reconcile
from harness.acceptance.records import (
    WORDS,
    ReceiptWords,
    drawer_timeline,
    host_payments,
    ledger_rows,
    printed_receipts,
    receipt_rows,
    sale_started,
    terminal_journal,
)
from harness.acceptance.report.record import ScenarioRecord
from harness.acceptance.verdict import Verdict
from harness.core.bench import Bench
from harness.core.events import Event, now, timeline, wait_until
from harness.link.driver import Fault, FaultNotFired, ResetNotTaken
from harness.till import TillCannot

BASKET = [{"sku": "milk", "name": "Milk 1l", "price": "1.19", "qty": 2}, {"sku": "bread", "name": "Bread",
                                                                         "price": "2.50"}]  # 4.88: the faulted sale
FAULTED = 488                 # its amount in minor units: host behaviours for the faulted sale match only it
# The clean sales around it, each with its own items and amount: an answer, a status or a receipt that belongs to
# another sale of the sequence cannot pass for this one's.
BASKET_BEFORE = [{"sku": "coffee", "name": "Coffee 250g", "price": "3.49"}, {"sku": "sugar", "name": "Sugar 1kg",
                                                                               "price": "1.29"}]   # 4.78
BASKET_AFTER = [{"sku": "apples", "name": "Apples 1kg", "price": "2.99"}, {"sku": "tea", "name": "Tea", "price":
                                                                             "1.85", "qty": 2}]    # 6.69
PAPER_OUT_AFTER = 48          # bytes of the receipt printed before the paper runs out ("during")
ABORT_HOST_DELAY_MS = 8000    # nominal; the host decides this slowly while the cashier aborts


# The contract's words for a sale in the till's journal (docs/till-contract.md, "The journal").
UNDECIDED = "pending"            # status of a sale whose outcome the till has not decided yet
AUTHORISING = "authorizing"      # state of a sale whose payment the terminal has now
IN_FLIGHT = ("started", "online")  # the emulated terminal's journal states of an undecided payment


def sale_id(sale: dict[str, Any]) -> str:
    """A journal sale's id: `sale_id` (the contract), or `id` (accepted)."""
    return str(sale.get("sale_id") or sale.get("id") or "")


def _pending(sales: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sales the till still owes something on: an undecided outcome or an owed receipt."""
    return [s for s in sales if s.get("status") == UNDECIDED or
            (s.get("status") == "paid" and s.get("receipt") in ("pending", "failed"))]


def scoped_journal(till: Any, before: set[str]) -> list[dict[str, Any]]:
    """The till's journal without the sales it held before this scenario (a till may live for many); empty when it
    cannot be read (the till is reconciled on the other records)."""
    return _read_journal(till, before)[0]


def quiet_timeout(bench: Bench) -> float:
    """How long the bench may take to get quiet (and a busy till to take the next customer): 60 s nominal."""
    return max(3.0, bench.rig.timing.seconds(60))


def quiesce(bench: Bench, timeout: float, before: set[str] | None = None) -> list[str]:
    """Let the bench settle: stored reversals delivered, owed receipts printed. Returns what is still open.
    Only the devices already started are asked (a test that used no till has no till to wait for); `before`: the
    till's sales of earlier scenarios, left out."""
    deadline = time.monotonic() + timeout
    recovered = False
    open_items: list[str] = []
    terminal, till = bench.running("terminal"), bench.running("till")
    while True:
        open_items = []
        flush = getattr(terminal, "flush_reversals", None)
        if flush is not None and not flush(0.5):
            open_items.append("terminal still owes a reversal/advice to the host")
        sales, unreadable = _read_journal(till, before or set())
        if unreadable:
            open_items.append(unreadable)
        owed = _pending(sales)
        unknown = [s for s in sales if s.get("status") == "unknown"]
        if (owed or unknown) and not recovered and hasattr(till, "recover"):
            recovered = True                          # the cashier's next action: the till resolves open sales
            try:
                till.recover()
            except Exception as exc:  # noqa: BLE001 - reported as still open
                open_items.append(f"till recover failed: {exc}")
            continue
        open_items += [f"till sale {sale_id(s)} still {s.get('status')}/{s.get('receipt')}" for s in owed]
        if not open_items or time.monotonic() > deadline:
            return open_items
        time.sleep(0.1)


def _read_journal(till: Any, before: set[str]) -> tuple[list[dict[str, Any]], str]:
    """The till's sales of this scenario, and why they could not be read ('' if they could): a journal that failed
    to answer (a till still booting, a busy control API) is not a quiet till. A till that keeps no journal (404,
    405, 501) has no sales to wait for."""
    if till is None:
        return [], ""
    try:
        return [s for s in till.journal() if sale_id(s) not in before], ""
    except Exception as exc:  # noqa: BLE001 - retried until the quiet time runs out, then reported as open
        if getattr(exc, "status", None) in (404, 405, 501):
            return [], ""
        return [], f"the till's journal could not be read: {exc}"


def payment_in_flight(terminal: Any, states: tuple[str, ...] = IN_FLIGHT) -> bool:
    """The emulated terminal's journal shows a payment in one of `states` (default: started, not yet decided)."""
    journal = getattr(terminal, "journal", None)
    last = journal.last("sale") if journal is not None and hasattr(journal, "last") else None
    return bool(last) and last.get("state") in states


def payment_started(terminal: Any) -> bool:
    """The matrix's narrower wait: the payment has not yet gone online, so a delivered abort is honoured (the
    terminal reverses); trust-abort is caught where the abort is lost or late and the approval stands."""
    return payment_in_flight(terminal, ("started",))


def terminal_busy(terminal: Any) -> bool:
    """The terminal is still working: a ZVT command in progress or a payment in flight."""
    return bool(getattr(getattr(terminal, "core", None), "in_progress", False)) or payment_in_flight(terminal)


def wait_terminal_idle(bench: Bench, deadline: float | None = None, busy: Any = terminal_busy) -> bool:
    """Wait until the started terminal is no longer `busy` (a till that gave up early must not be judged before
    the terminal reversed what it could not complete); bounded by the rig's scaled T4."""
    if deadline is None:
        deadline = time.monotonic() + terminal_timeout(bench)
    terminal = bench.running("terminal")
    return wait_until(lambda: not busy(terminal), max(0.0, deadline - time.monotonic()), interval=0.05)


def terminal_timeout(bench: Bench) -> float:
    return max(5.0, bench.rig.timing.seconds(180))


def _settle(bench: Bench, scenario: Scenario, faults: list[Fault]) -> None:
    """Keep the faults armed until each has lingered past the waiting side's timer and the terminal has
    finished the payment in flight (bounded by the rig's scaled T4)."""
    deadline = time.monotonic() + terminal_timeout(bench)
    for planned, fault in zip(scenario.faults, faults, strict=True):
        if fault.fired:
            pause = fault.fired[0].t + planned.linger - now()
            if pause > 0:
                time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
    wait_terminal_idle(bench, deadline, busy=payment_started)


def _observed(outcome: Any, payments: list[Payment], receipts: list[PrintedReceipt]) -> str:
    held = [p for p in payments if p.holds_money]
    sale = [r for r in receipts if r.kind in ("sale", "copy")]
    states = ", ".join(f"{p.ref} {p.state}" for p in payments) or "no payment booked"
    said = "operator says" if (getattr(outcome, "extra", None) or {}).get("source") == "operator" else "till says"
    return (f"{said} {getattr(outcome, 'status', '?')}/receipt {getattr(outcome, 'receipt', '?')}; "
            f"host: {states}; money held {len(held)}; sale receipts {len(sale)} "
            f"(of {len(receipts)} printed)")


def bench_events(bench: Bench, faults: list[Fault], sales: list[dict[str, Any]]) -> list[Event]:
    """What the link faults, the till and the acquirer did, as events on one clock."""
    events = [e for f in faults for e in f.events()]
    for s in sales:
        for e in s.get("events", []) or []:
            events.append(Event(t=float(e.get("t", 0.0)), source="till", what=f"{sale_id(s)} {e.get('state')}"))
    printer = bench.running("printer")
    if printer is not None:
        events += drawer_timeline(printer)
    ledger = getattr(bench.running("host"), "ledger", None)
    if ledger is not None:
        for p in ledger.payments():
            events.append(Event(t=p.created, source="host", what=f"{p.mti} STAN {p.stan} booked ({p.code})"))
            if p.updated > p.created:
                events.append(Event(t=p.updated, source="host", what=f"STAN {p.stan} now {p.state}"))
    return events


def wait_until_authorizing(till: Any, timeout: float = 5.0, terminal: Any = None) -> bool:
    """Block until the sale running in another thread is with the terminal: the emulated terminal's journal
    shows a payment started (posrig's own evidence, whatever the till), else the till's newest journal sale is
    in the contract's state `authorizing`."""
    def authorizing() -> bool:
        if terminal is not None and payment_started(terminal):
            return True
        try:
            sales = till.journal()
        except Exception:  # noqa: BLE001 - a till without a journal: only the terminal can tell
            return False
        return bool(sales) and sales[-1].get("state") == AUTHORISING

    return wait_until(authorizing, timeout)


class AbortNotRaced(RuntimeError):
    """The cashier's abort could not be pressed while the payment ran: the scenario proved nothing."""


def sell_then_abort(till: Any, basket: list[dict[str, Any]], pause: float, timeout: float = 60.0,
                    terminal: Any = None) -> Any:
    """The cashier's abort: sell `basket` in another thread, press abort `pause` seconds after the payment
    reached the terminal, and return the till's outcome of the sale. AbortNotRaced when the payment never
    showed as authorising, or the sale was over before the abort was pressed."""
    result: list[Any] = []
    failure: list[BaseException] = []

    def sell() -> None:
        try:
            result.append(till.sell(basket))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            failure.append(exc)

    seller = threading.Thread(target=sell, name="sale")
    seller.start()
    seen = wait_until_authorizing(till, timeout=10, terminal=terminal)
    time.sleep(pause)
    over = not seller.is_alive()
    if seen and not over:
        try:
            steps.cashier_abort(till)
        except NotImplementedError:                 # TillCannot: the till found out only now
            seller.join(timeout)
            raise
    seller.join(timeout)
    if failure:
        raise failure[0]
    if not result:
        raise RuntimeError(f"the till did not finish the sale within {timeout:g} s of the cashier's abort")
    if not seen:
        raise AbortNotRaced("the payment never showed as authorising (terminal journal, till journal state "
                            f"'{AUTHORISING}'), so the abort could not race it")
    if over:
        raise AbortNotRaced(f"the sale was over ({result[0].status}) before the cashier's abort was pressed")
    return result[0]


def _abort_race(bench: Bench, outcome: str) -> Any:
    """Stage 12: sell while the host is slow to decide, press abort on the till once it is authorising."""
    if outcome == "decline":
        bench.host.behave("decline", code="05", delay_ms=ABORT_HOST_DELAY_MS, mti="0200", amount=FAULTED)
    else:
        bench.host.behave("approve", delay_ms=ABORT_HOST_DELAY_MS, mti="0200", amount=FAULTED)
    return sell_then_abort(bench.till, BASKET, pause=bench.rig.timing.seconds(2.0),   # the host is deciding
                           terminal=bench.terminal)


def power_cut(bench: Bench, outcome: str = "approve") -> None:
    """Stage 8: sell while the host is slow, cut the till's power once the terminal has the payment, let the
    terminal finish on its own, then boot the till again (it resolves the sale on `recover`)."""
    if outcome == "decline":
        bench.host.behave("decline", code="05", delay_ms=ABORT_HOST_DELAY_MS, mti="0200", amount=FAULTED)
    else:
        bench.host.behave("approve", delay_ms=ABORT_HOST_DELAY_MS, mti="0200", amount=FAULTED)
    till = bench.till
    seller = threading.Thread(target=lambda: _quietly(till.sell, BASKET), name="sale", daemon=True)
    seller.start()
    if not wait_until_authorizing(till, timeout=10, terminal=bench.terminal):
        raise AbortNotRaced("the payment never reached the terminal, so the power cut hit nothing")
    till.kill()
    seller.join(10)
    wait_terminal_idle(bench, busy=payment_started)
    till.restart()


def _quietly(call: Any, *args: Any) -> None:
    try:
        call(*args)
    except Exception:  # noqa: BLE001 - the till is killed under it: its answer is lost by design
        pass


def receipt_words(till: Any) -> ReceiptWords:
    """posrig's receipt words plus the till's own wording (rig: till options.receipt_words, e.g.
    {not_a_sale: [ABGELEHNT], copy: [KOPIE]})."""
    extra = (getattr(till.spec, "options", None) or {}).get("receipt_words") or {}
    if not isinstance(extra, dict):
        raise ValueError(f"till options.receipt_words must map a kind to words, got {extra!r}")
    fields = {}
    for key, words in extra.items():
        if not hasattr(WORDS, key):
            raise ValueError(f"till options.receipt_words: unknown kind {key!r}; known: "
                             f"{', '.join(WORDS.__dataclass_fields__)}")
        fields[key] = (*getattr(WORDS, key), *(str(w).upper() for w in words))
    return ReceiptWords(**{**WORDS.__dict__, **fields})


def missing_capabilities(till: Any, scenario: Scenario) -> list[str]:
    """What the scenario needs that the till says it cannot do."""
    caps = till.capabilities() if hasattr(till, "capabilities") else frozenset()
    return [c for c in scenario.needs if c not in caps]


def till_word(rows: list[dict[str, Any]], outcome: Any) -> list[Sale]:
    """The till's final word on each sale of this scenario: its journal, else the outcome it answered."""
    if not rows and outcome is not None:
        rows = [outcome.to_dict()]
    return [Sale(sale_id=sale_id(r), amount=int(r.get("amount_cents") or 0), tender=str(r.get("tender") or "card"),
                 status=str(r.get("status") or "") if r.get("status") != UNDECIDED else "",
                 receipt=str(r.get("receipt") or ""),
                 drawer_opened=None if r.get("drawer_opened") is None else bool(r.get("drawer_opened")),
                 offline=None if r.get("offline") is None else bool(r.get("offline")),
                 started=sale_started(r)) for r in rows]


def basket_cents(basket: list[dict[str, Any]]) -> int:
    """A basket's total in minor units.

    >>> basket_cents(BASKET), basket_cents(BASKET_BEFORE), basket_cents(BASKET_AFTER)
    (488, 478, 669)
    """
    return sum(round(float(i["price"]) * 100) * int(i.get("qty", 1)) for i in basket)


def _clean_sale(bench: Bench, basket: list[dict[str, Any]], before: set[str], retried: list[str],
                unheard: list[dict[str, Any]] | None = None) -> Any:
    """One sale with no fault armed and the approve card: the sales around the faulted one. A sale that ends
    unpaid with nothing charged is rung up once more, as a cashier would for the customer (at the rig's timing
    scale a till's own timer can run out on a loaded machine): noted in `retried`. Unpaid twice, or anything
    charged, is judged as it is (I8). `unheard` gets the emulated terminal's messages of the (last) attempt that
    the till did not acknowledge in time, judged once the scenario is over (I9: an acknowledgement may be late)."""
    terminal = bench.running("terminal")
    core = getattr(terminal, "core", None)
    clear = getattr(core, "clear_cards", None)
    amount = basket_cents(basket)
    for attempt in (1, 2):
        if clear is not None:
            clear()                                 # a card the faulted payment never read is taken back
        started = time.time()
        steps.present_card(bench, "approve")
        outcome = sell_when_free(bench, basket, timeout=quiet_timeout(bench))
        quiesce(bench, timeout=quiet_timeout(bench), before=before)
        charged = any(p.amount == amount and p.holds_money for p in host_payments(bench.host))
        if getattr(outcome, "status", None) == "paid" or charged or attempt == 2:
            break
    if attempt == 2:
        retried.append(f"{amount / 100:.2f} rung up twice (the first ended unpaid, nothing charged)")
    if unheard is not None:
        unheard += sale_messages(getattr(core, "unacknowledged", []), started)
    hang_up = getattr(getattr(core, "host", None), "hang_up", None)
    if hang_up is not None:
        hang_up()                                   # the faulted sale connects to the host afresh (stage connect)
    return outcome


def sell_when_free(bench: Bench, basket: list[dict[str, Any]], timeout: float) -> Any:
    """Ring up `basket` as a cashier would: a till still busy with the last customer's work (it answers 409, the
    contract's answer while a sale runs: e.g. a restarted till reprinting what it owes) is given up to `timeout`;
    a refusal after that stands."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return bench.till.sell(basket)
        except Exception as exc:
            if getattr(exc, "status", None) != 409 or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


NEXT_CUSTOMER = "I8 (the till serves the next customer: the clean sale after the fault is paid once, with one " \
                "receipt)"


ACKNOWLEDGES = "I9 (the till acknowledges the terminal: in a clean sale every message it is sent gets its 80 00 " \
              "or 84 xx, as ZVT and the till contract ask)"


def sale_messages(unacknowledged: list[dict[str, Any]], started: float) -> list[dict[str, Any]]:
    """The terminal's unacknowledged messages that belong to a sale begun at `started`: on a connection made (or
    a command sent) since. An older connection's message is not the sale's: a request of the faulted sale held on
    the link and delivered late, to a socket the till had already closed, gets no 80 00 through no fault of it."""
    return [e for e in unacknowledged if e.get("opened", 0.0) >= started]   # opened <= t: noted later


def acknowledged(unheard: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The clean sales' terminal messages the till never acknowledged, not even late: a ZVT mistake that costs a
    real terminal its T3 wait at every message, or its confirmation of the payment. Keyed by which sale."""
    out = []
    for when, entries in unheard.items():
        missed = [e for e in entries if not e.get("late")]
        if missed:
            what = ", ".join(f"{e['apdu']}{' (it hung up instead)' if e.get('closed') else ''}" for e in missed)
            out.append(f"{ACKNOWLEDGES}: in the sale {when} the fault the till never acknowledged {what}")
    return out


def tills_own(open_items: list[str]) -> list[str]:
    """What `quiesce` found still open on the till's side (its sales, its recover), not the terminal's own backlog.

    >>> tills_own(["terminal still owes a reversal/advice to the host", "till sale T1-7 still unknown/none"])
    ['till sale T1-7 still unknown/none']
    """
    return [i for i in open_items if not i.startswith("terminal ")]


def customer_receipts(receipts: list[PrintedReceipt], amount: int,
                      tender: str) -> tuple[list[PrintedReceipt], list[PrintedReceipt]]:
    """The receipts a customer got for a sale of `amount`, and the originals among them: the original, or a copy
    when it did not come out whole (a slow printer status left it owed and the till reprinted it, as the contract's
    `pending` allows). Two originals are I1's."""
    printed = [r for r in receipts if r.kind in ("sale", "copy") and r.tender == tender and r.amount == amount]
    return printed, [r for r in printed if r.kind == "sale"]


def next_customer(clean: dict[str, Any], payments: list[Payment], receipts: list[PrintedReceipt],
                  still_open: list[str]) -> list[str]:
    """The sales around the fault must end as they would on a quiet day: paid, charged once, one sale receipt.
    The one before proves the bench; the one after, that the fault left the till fit for the next customer."""
    out = []
    for when, basket in (("before", BASKET_BEFORE), ("after", BASKET_AFTER)):
        amount = basket_cents(basket)
        if when not in clean:
            if when == "after" and tills_own(still_open):
                out.append(f"{NEXT_CUSTOMER}: the next customer could not be served: the bench never got quiet")
            continue
        outcome = clean[when]
        held = [p for p in payments if p.holds_money and p.amount == amount]
        printed, originals = customer_receipts(receipts, amount, "card")
        said = f"{getattr(outcome, 'status', '?')}/receipt {getattr(outcome, 'receipt', '?')}"
        if getattr(outcome, "status", None) != "paid" or len(held) != 1 or not printed or len(originals) > 1:
            what = "the sale before the fault" if when == "before" else "the next customer's sale"
            out.append(f"{NEXT_CUSTOMER}: {what} ({amount / 100:.2f}) ended {said}, charged {len(held)} time(s), "
                       f"{len(originals)} sale receipt(s), {len(printed) - len(originals)} copy(ies)")
    return out


def cash_sale(outcome: Any, payments: list[Payment], receipts: list[PrintedReceipt]) -> list[str]:
    """A cash row's faulted sale (4.88, no fault) must end as on a quiet day: paid, one cash sale receipt, and no
    card payment of that amount at the acquirer."""
    amount = basket_cents(BASKET)
    printed, originals = customer_receipts(receipts, amount, "cash")
    charged = [p for p in payments if p.amount == amount]
    said = f"{getattr(outcome, 'status', '?')}/receipt {getattr(outcome, 'receipt', '?')}"
    if getattr(outcome, "status", None) != "paid" or not printed or len(originals) > 1 or charged:
        return [f"expect (a cash sale is paid, with one cash receipt, no card payment): the cash sale "
                f"({amount / 100:.2f}) ended {said}, {len(printed)} cash receipt(s), {len(charged)} card payment(s)"]
    return []


def run_scenario(bench: Bench, scenario: Scenario, seed: int = 0) -> ScenarioRecord:
    """Run `scenario` on a started-on-demand bench; never raises for what the till does, only for harness bugs."""
    t0 = now()
    rec = ScenarioRecord(id=scenario.id, link=scenario.link, stage=scenario.stage, fault=scenario.fault,
                         outcome=scenario.outcome, expected=scenario.expected, seed=seed)
    # Link engines first (concurrently with the other devices), so they see every connection from its SYN.
    bench.start(*bench.rig.links, *(d.name for d in bench.rig.devices.values() if d.kind != "till"))
    till, terminal, printer = bench.till, bench.terminal, bench.printer
    missing = missing_capabilities(till, scenario)
    if missing:
        rec.verdict = Verdict.NOT_APPLICABLE
        rec.observed = f"not applicable: the till cannot {' or '.join(missing)} (it declares " \
                       f"{', '.join(sorted(till.capabilities())) or 'no capabilities'})"
        rec.elapsed = round(now() - t0, 3)
        return rec
    before = {sale_id(s) for s in scoped_journal(till, set())}
    faults: list[Fault] = []
    crash_events: list[Event] = []
    problems = []
    clean: dict[str, Any] = {}
    unheard: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    retried: list[str] = []
    try:
        steps.set_up_terminal(bench, scenario.terminal)
        clean["before"] = _clean_sale(bench, BASKET_BEFORE, before, retried, unheard["before"])
        steps.present_card(bench, scenario.card, delay=bench.rig.timing.seconds(scenario.terminal.card_delay))
        if scenario.printer_fault_at:
            steps.printer_fault(bench, scenario.printer_fault, scenario.printer_fault_at)
        faults = steps.arm_faults(bench, scenario.faults)
        if scenario.power_cut:
            outcome = power_cut(bench, scenario.outcome)
        elif scenario.crash:
            outcome = run_crash(bench, scenario, faults, BASKET, FAULTED, ABORT_HOST_DELAY_MS, crash_events)
        elif scenario.cashier_abort:
            outcome = _abort_race(bench, scenario.outcome)
        else:
            outcome = till.sell(BASKET, tender=scenario.tender)
    except (AbortNotRaced, CrashMissed) as exc:
        outcome = None
        problems.append(str(exc))
    except TillCannot as exc:
        rec.verdict = Verdict.NOT_APPLICABLE
        rec.observed = f"not applicable: the till cannot {exc.capability} ({exc})"
        rec.elapsed = round(now() - t0, 3)
        return rec
    except steps.NotOnThisBench as exc:
        for f in faults:
            f.clear()
        rec.verdict = Verdict.NOT_APPLICABLE
        rec.observed = f"not applicable on this bench: {exc}"
        rec.elapsed = round(now() - t0, 3)
        return rec
    _settle(bench, scenario, faults)
    for f in faults:
        try:
            f.prove(timeout=1.0)
        except (FaultNotFired, ResetNotTaken) as exc:
            problems.append(str(exc))
    problems += steps.terminal_setup_problems(bench, scenario.terminal)
    for f in faults:
        f.clear()
    if scenario.printer_fault:
        steps.clear_printer_fault(bench, scenario.printer_fault)
    still_open = quiesce(bench, timeout=quiet_timeout(bench), before=before)
    if not tills_own(still_open):                         # a reversal the terminal still owes is not the till's
        # (the terminal keeps it stored and serves the next sale, as real terminals do)
        try:                                              # the next customer: the till must serve them as usual
            clean["after"] = _clean_sale(bench, BASKET_AFTER, before, retried, unheard["after"])
        except steps.NotOnThisBench as exc:
            problems.append(f"the sale after the fault could not be rung up: {exc}")
        still_open = quiesce(bench, timeout=quiet_timeout(bench), before=before)

    bench.flush_captures()
    payments, receipts = host_payments(bench.host), printed_receipts(printer, receipt_words(till))
    journal_rows = scoped_journal(till, before)
    result = reconcile(payments, terminal_journal(terminal), receipts, till_word(journal_rows, outcome),
                       evidence_dir=bench.evidence.path)
    held = [p for p in payments if p.holds_money and p.amount == basket_cents(BASKET)]
    if outcome is None:                                  # the till lost power mid-sale: its word is in its journal
        outcome = next((types.SimpleNamespace(**r) for r in journal_rows
                        if int(r.get("amount_cents") or 0) == FAULTED), None)
    rec.observed = _observed(outcome, payments, receipts)
    rec.violations = [str(v) for v in result.violations]
    rec.violations += next_customer(clean, payments, receipts, still_open)
    rec.violations += acknowledged(unheard)
    if scenario.tender == "cash":
        rec.violations += cash_sale(outcome, payments, receipts)
    if scenario.expect_paid is not None and bool(held) != scenario.expect_paid:
        rec.violations.append(f"expected {'a completed sale' if scenario.expect_paid else 'no charge'}, "
                              f"but the acquirer holds {len(held)} payment(s)")
    if still_open:
        rec.observed += "; not quiet: " + "; ".join(still_open)
    if retried:
        rec.observed += "; clean sale " + "; ".join(retried)
    if problems:
        rec.verdict = Verdict.INCONCLUSIVE
        rec.violations = problems + rec.violations
    else:
        rec.verdict = Verdict.FAIL if rec.violations else Verdict.OK
    rec.timeline = timeline(bench_events(bench, faults, journal_rows) + crash_events, t0)
    rec.ledger = ledger_rows(bench.host)
    rec.receipts = receipt_rows(receipts)
    rec.elapsed = round(now() - t0, 3)
    bench.evidence.write_json("verdict.json", {"scenario": scenario.id, "oracle": result.to_dict(),
                                               "verdict": rec.verdict, "observed": rec.observed})
    return rec


def attach_evidence(rec: ScenarioRecord, bench: Bench) -> None:
    """List every evidence file (after the devices closed and wrote their last files)."""
    rec.devices = bench.identities() or rec.devices
    rec.evidence = [{"name": str(p.relative_to(bench.evidence.path)), "path": str(p), "mime": ""}
                    for p in sorted(bench.evidence.path.rglob("*")) if p.is_file()]

"""Run one acceptance scenario on a bench and conclude: arm the faults, sell, prove the faults hit, wait for
quiet, reconcile, and fill a `ScenarioRecord`.

>>> record = run_scenario(bench, scenario)
>>> record.verdict        # OK | FAIL | ERROR | INCONCLUSIVE
"""

from __future__ import annotations

import threading
import time
from typing import Any

from harness.acceptance.matrix import CARDS, Scenario
from harness.acceptance.oracle import reconcile
from harness.acceptance.records import host_payments, ledger_rows, printed_receipts, terminal_journal, till_sales
from harness.acceptance.report.record import ScenarioRecord
from harness.core.bench import Bench
from harness.link.driver import FaultNotFired, ResetNotTaken

BASKET = [{"sku": "milk", "name": "Milk 1l", "price": "1.19", "qty": 2}, {"sku": "bread", "name": "Bread",
                                                                         "price": "2.50"}]
KNOWN_PANS = ("4111111111111111", "4000000000000002", "4000000000009995", "4000000000000119")
PAPER_OUT_AFTER = 48          # bytes of the receipt printed before the paper runs out ("during")


def _pending(sales: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sales the till still owes something on: an undecided outcome or an owed receipt."""
    return [s for s in sales if s.get("status") == "pending" or
            (s.get("status") == "paid" and s.get("receipt") in ("pending", "failed"))]


def quiesce(bench: Bench, timeout: float) -> list[str]:
    """Let the bench settle: stored reversals delivered, owed receipts printed. Returns what is still open."""
    deadline = time.monotonic() + timeout
    recovered = False
    open_items: list[str] = []
    while True:
        open_items = []
        flush = getattr(bench.terminal, "flush_reversals", None)
        if flush is not None and not flush(0.5):
            open_items.append("terminal still owes a reversal/advice to the host")
        try:
            sales = bench.till.journal()
        except Exception:  # noqa: BLE001 - a till without a journal is reconciled on the other records
            sales = []
        owed = _pending(sales)
        unknown = [s for s in sales if s.get("status") == "unknown"]
        if (owed or unknown) and not recovered and hasattr(bench.till, "recover"):
            recovered = True                          # the cashier's next action: the till resolves open sales
            try:
                bench.till.recover()
            except Exception as exc:  # noqa: BLE001 - reported as still open
                open_items.append(f"till recover failed: {exc}")
            continue
        open_items += [f"till sale {s.get('id')} still {s.get('status')}/{s.get('receipt')}" for s in owed]
        if not open_items or time.monotonic() > deadline:
            return open_items
        time.sleep(0.1)


def _terminal_busy(terminal: Any) -> bool:
    journal = getattr(terminal, "journal", None)
    last = journal.last("sale") if journal is not None and hasattr(journal, "last") else None
    return bool(last) and last.get("state") == "started"


def _settle(bench: Bench, scenario: Scenario, faults: list) -> None:
    """Keep the faults armed until each has lingered past the waiting side's timer and the terminal has
    finished the payment in flight (bounded by the rig's scaled T4)."""
    deadline = time.monotonic() + max(5.0, bench.rig.timing.seconds(180))
    for spec, fault in zip(scenario.faults, faults, strict=True):
        if fault.fired:
            fired_at = fault.fired[0].get("t") or fault.armed_at or time.time()
            pause = fired_at + spec.linger - time.time()
            if pause > 0:
                time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
    while _terminal_busy(bench.terminal) and time.monotonic() < deadline:
        time.sleep(0.05)


def _observed(outcome: Any, payments, receipts) -> str:
    held = [p for p in payments if p.holds_money]
    sale = [r for r in receipts if r.kind in ("sale", "copy")]
    states = ", ".join(f"{p.ref} {p.state}" for p in payments) or "no payment booked"
    return (f"till says {getattr(outcome, 'status', '?')}/receipt {getattr(outcome, 'receipt', '?')}; "
            f"host: {states}; money held {len(held)}; sale receipts {len(sale)} "
            f"(of {len(receipts)} printed)")


def _timeline(t0: float, faults: list, sales: list[dict[str, Any]], bench: Bench) -> list[dict[str, Any]]:
    events = []
    for f in faults:
        if f.armed_at:
            events.append({"t": f.armed_at, "source": f"link {f.link.name}", "event": f"armed {f.spec.describe()}"})
        for hit in f.fired:
            at = hit.get("t") or hit.get("at") or f.armed_at or t0
            events.append({"t": at, "source": f"link {f.link.name}",
                           "event": f"FIRED {f.spec.describe()} on packet #{hit.get('packet', '?')}"})
    for s in sales:
        for e in s.get("events", []) or []:
            events.append({"t": e.get("at", t0), "source": "till", "event": f"{s.get('id')} {e.get('state')}"})
    ledger = getattr(bench.host, "ledger", None)
    if ledger is not None:
        for p in ledger.payments():
            events.append({"t": p.created, "source": "host", "event": f"{p.mti} STAN {p.stan} booked ({p.code})"})
            if p.updated > p.created:
                events.append({"t": p.updated, "source": "host", "event": f"STAN {p.stan} now {p.state}"})
    events.sort(key=lambda e: e["t"])
    return [{**e, "t": round(e["t"] - t0, 4)} for e in events]


ABORT_HOST_DELAY_MS = 8000     # nominal; the host decides this slowly while the cashier aborts


def wait_until_authorizing(till: Any, timeout: float = 5.0) -> bool:
    """Block until the till's newest sale is waiting for the terminal (a sale running in another thread)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sales = till.journal()
        if sales and sales[-1].get("state") == "authorizing":
            return True
        time.sleep(0.02)
    return False


def _abort_race(bench: Bench, outcome: str) -> Any:
    """Stage 12: sell while the host is slow to decide, press abort on the till once it is authorising."""
    if outcome == "decline":
        bench.host.behave("decline", code="05", delay_ms=ABORT_HOST_DELAY_MS, mti="0200")
    else:
        bench.host.behave("approve", delay_ms=ABORT_HOST_DELAY_MS, mti="0200")
    result: list[Any] = []
    seller = threading.Thread(target=lambda: result.append(bench.till.sell(BASKET)), name="sale")
    seller.start()
    wait_until_authorizing(bench.till, timeout=10)
    time.sleep(bench.rig.timing.seconds(2.0))          # the host is deciding now
    bench.till.abort()
    seller.join(60)
    if not result:
        raise RuntimeError("the till did not finish the sale within 60 s of the cashier's abort")
    return result[0]


def run_scenario(bench: Bench, scenario: Scenario, seed: int = 0) -> ScenarioRecord:
    """Run `scenario` on a started-on-demand bench; never raises for what the till does, only for harness bugs."""
    t0 = time.time()
    rec = ScenarioRecord(id=scenario.id, link=scenario.link, stage=scenario.stage, fault=scenario.fault,
                         outcome=scenario.outcome, expected=scenario.expected, seed=seed)
    # Link engines first (concurrently with the other devices), so they see every connection from its SYN.
    bench.start(*bench.rig.links, *(d.name for d in bench.rig.devices.values() if d.kind != "till"))
    links, till, terminal, printer = bench.links, bench.till, bench.terminal, bench.printer
    terminal.present_card(CARDS[scenario.outcome])
    faults = [links[f.link].inject(f.action, stage=f.stage, direction=f.direction, required=False, **f.params)
              for f in scenario.faults]
    if scenario.printer_fault_at == "before":
        printer.set_fault(scenario.printer_fault)
    elif scenario.printer_fault_at == "during":
        printer.core.fault_after(PAPER_OUT_AFTER, scenario.printer_fault)
    outcome = _abort_race(bench, scenario.outcome) if scenario.cashier_abort else till.sell(BASKET)
    problems = []
    _settle(bench, scenario, faults)
    for f in faults:
        try:
            f.wait_fired(timeout=1.0)
            if f.spec.action == "rst":
                f.wait_verified(timeout=f.spec.param("verify_ms") / 1000.0 + 2.0)
        except (FaultNotFired, ResetNotTaken) as exc:
            problems.append(str(exc))
    for f in faults:
        f.clear()
    if scenario.printer_fault:
        printer.set_fault(None)
    still_open = quiesce(bench, timeout=max(3.0, bench.rig.timing.seconds(60)))

    payments, receipts = host_payments(bench.host), printed_receipts(printer, bench.evidence.path)
    sales = till_sales(till)
    verdict = reconcile(payments, terminal_journal(terminal), receipts, sales,
                        evidence_dir=bench.evidence.path, known_pans=KNOWN_PANS)
    held = [p for p in payments if p.holds_money]
    rec.observed = _observed(outcome, payments, receipts)
    rec.violations = [str(v) for v in verdict.violations]
    if scenario.expect_paid is not None and bool(held) != scenario.expect_paid:
        rec.violations.append(f"expected {'a completed sale' if scenario.expect_paid else 'no charge'}, "
                              f"but the acquirer holds {len(held)} payment(s)")
    if still_open:
        rec.observed += "; not quiet: " + "; ".join(still_open)
    if problems:
        rec.verdict = "INCONCLUSIVE"
        rec.violations = problems + rec.violations
    else:
        rec.verdict = "FAIL" if rec.violations else "OK"
    journal_rows = bench.till.journal() if hasattr(bench.till, "journal") else []
    rec.timeline = _timeline(t0, faults, journal_rows, bench)
    rec.ledger = ledger_rows(bench.host)
    rec.receipts = [{"index": r.index, "kind": r.kind, "text": r.text, "png": r.evidence} for r in receipts]
    rec.elapsed = round(time.time() - t0, 3)
    bench.evidence.write_json("verdict.json", {"scenario": scenario.id, "oracle": verdict.to_dict(),
                                               "verdict": rec.verdict, "observed": rec.observed})
    return rec


def attach_evidence(rec: ScenarioRecord, bench: Bench) -> None:
    """List every evidence file (after the devices closed and wrote their last files)."""
    rec.devices = bench.identities() or rec.devices
    rec.evidence = [{"name": str(p.relative_to(bench.evidence.path)), "path": str(p), "mime": ""}
                    for p in sorted(bench.evidence.path.rglob("*")) if p.is_file()]

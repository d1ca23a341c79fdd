"""The oracle over a live bench: any test's bench is concluded as the matrix concludes a scenario.

At a test's end (`fixtures.oracle`): the terminal finishes the payment in flight, the faults still armed (kept that
long) are proved to have fired and are cleared; the bench is quieted (`scenario.quiesce`); the records of the devices
the test started are reconciled; a `ScenarioRecord` with the test id as scenario id carries the timeline, ledger
and receipts to the reports, and, once the bench is closed (`Conclusion.closed`), the evidence.

>>> conclusion = conclude(bench, "tests/test_till.py::test_sale")          # doctest: +SKIP
>>> conclusion.record.verdict, conclusion.reconciliation.broken            # doctest: +SKIP
(<Verdict.FAIL: 'FAIL'>, ['I1'])
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from harness.acceptance.expectations import parse
from harness.acceptance.oracle import Reconciliation, reconcile, select
from harness.acceptance.records import (
    host_payments,
    ledger_rows,
    printed_receipts,
    receipt_rows,
    terminal_journal,
    till_sales,
)
from harness.acceptance.report.record import ScenarioRecord
from harness.acceptance.scenario import (
    attach_evidence,
    bench_events,
    quiesce,
    quiet_timeout,
    sale_id,
    wait_terminal_idle,
)
from harness.acceptance.verdict import Verdict
from harness.core.bench import Bench
from harness.core.events import now, timeline
from harness.link.driver import FaultNotFired, ResetNotTaken

RECORD_KINDS = ("till", "printer", "terminal", "host")      # the devices whose records the oracle reads


def used(bench: Bench) -> bool:
    """Whether the test started any device that keeps a record (a test of links alone has nothing to reconcile)."""
    return any(bench.running(kind) is not None for kind in RECORD_KINDS)


def read_records(bench: Bench) -> tuple[dict[str, list], dict[str, str]]:
    """The oracle's records from the started devices, and the records nobody kept (name -> why)."""
    host, printer, terminal, till = (bench.running(k) for k in ("host", "printer", "terminal", "till"))
    bench.flush_captures()
    unavailable = {}
    if printer is None:
        unavailable["receipts"] = "no receipts: the test used no printer"
    if getattr(host, "ledger", None) is None:
        unavailable["payments"] = "no acquirer ledger: the test used no host" if host is None else \
            f"no acquirer ledger: host {host.name!r} keeps none"
    if terminal is None:
        unavailable["journal"] = "no terminal journal: the test used no terminal"
    if till is None:
        unavailable["sales"] = "no till sales: the test used no till"
    records = {"payments": host_payments(host), "journal": terminal_journal(terminal),
               "receipts": printed_receipts(printer), "sales": till_sales(till)}
    return records, unavailable


def reconcile_bench(bench: Bench, only: Iterable[str] | None = None, skip: Iterable[str] = (),
                    expect: Iterable[str] = (), quiet: bool = True) -> Reconciliation:
    """Quiet the bench (unless `quiet` is False) and reconcile what its started devices recorded."""
    if quiet:
        wait_terminal_idle(bench)
        quiesce(bench, timeout=quiet_timeout(bench))
    records, unavailable = read_records(bench)
    return reconcile(**records, evidence_dir=bench.evidence.path, only=only, skip=skip, unavailable=unavailable,
                     expect=parse(list(expect)))


def armed_faults(bench: Bench) -> list[Any]:
    """Every fault armed on the started links during the test (cleared or not), in arming order."""
    return [f for dev in bench.started if dev.kind == "link" for f in getattr(dev, "faults", [])]


def settle_faults(faults: list[Any]) -> list[str]:
    """Faults still armed at the test's end: proved to have fired (and a forged reset taken), then cleared.
    Returns the proofs that failed: a fault that never hit its stage proves nothing."""
    problems = []
    for f in faults:
        if f.cleared_at is not None:
            continue
        if f.required:
            try:
                f.prove(timeout=0.5)
            except (FaultNotFired, ResetNotTaken) as exc:
                problems.append(str(exc))
        f.clear()
    return problems


@dataclass
class Conclusion:
    """How a test's bench ended: the oracle's findings, the record for the reports, what could not be proved."""

    reconciliation: Reconciliation
    record: ScenarioRecord
    problems: list[str] = field(default_factory=list)
    evidence: str = ""

    @property
    def passed(self) -> bool:
        return self.record.verdict is Verdict.OK

    def closed(self, bench: Bench, identities: list[dict[str, Any]], errors: list[str]) -> None:
        """The bench was closed (its devices wrote their last evidence): list every file; a device that did not
        close cleanly makes an otherwise good verdict ERROR."""
        attach_evidence(self.record, bench)
        self.record.devices = identities
        if errors:
            self.record.observed += "; teardown: " + "; ".join(errors)
            if self.record.verdict is Verdict.OK:
                self.record.verdict = Verdict.ERROR

    def message(self) -> str:
        """The failure as the matrix words it, with the evidence folder."""
        lines = self.record.violations or [self.record.observed]
        return f"posrig oracle: {self.record.verdict}: " + "\n".join(lines) + f"\nevidence: {self.evidence}"


def _failure_verdict(failure: BaseException) -> Verdict:
    if isinstance(failure, FaultNotFired | ResetNotTaken):
        return Verdict.INCONCLUSIVE
    return Verdict.FAIL if isinstance(failure, AssertionError) else Verdict.ERROR


def _observed(bench: Bench, sales: list[dict[str, Any]], records: dict[str, list]) -> str:
    payments, receipts = records["payments"], records["receipts"]
    parts = []
    if bench.running("till") is not None:
        parts.append("till: " + (", ".join(f"{sale_id(s)} {s.get('status')}/receipt {s.get('receipt')}"
                                            for s in sales) or "no sale"))
    if bench.running("host") is not None:
        parts.append("host: " + (", ".join(f"{p.ref} {p.state}" for p in payments) or "no payment booked")
                     + f"; money held {sum(p.holds_money for p in payments)}")
    if bench.running("printer") is not None:
        sale = [r for r in receipts if r.kind in ("sale", "copy")]
        parts.append(f"sale receipts {len(sale)} (of {len(receipts)} printed)")
    return "; ".join(parts)


def conclude(bench: Bench, test_id: str, only: Iterable[str] | None = None, skip: Iterable[str] = (),
             failure: BaseException | None = None) -> Conclusion:
    """End a test's bench as the matrix ends a scenario (see the module doc). `failure`: what the test body
    raised, if anything (its own assertion fails the test as FAIL, a fault that never fired as INCONCLUSIVE)."""
    chosen = [i.name for i in select(only, skip)]
    faults = armed_faults(bench)
    wait_terminal_idle(bench)                     # armed faults stay until the payment in flight is over
    problems = settle_faults(faults)
    still_open = quiesce(bench, timeout=quiet_timeout(bench))
    records, unavailable = read_records(bench)
    expectations = parse(bench.expected)
    result = reconcile(**records, evidence_dir=bench.evidence.path, only=chosen, unavailable=unavailable,
                       expect=expectations)
    till = bench.running("till")
    try:
        sales = till.journal() if till is not None else []
    except Exception:  # noqa: BLE001 - a till without a journal still gets a record
        sales = []

    expected = [e.text for e in expectations] + [f"invariants {', '.join(result.checked) or 'none'}"]
    if result.not_checked:
        expected.append("not checked: " + "; ".join(f"{n} ({why})" for n, why in result.not_checked.items()))
    rec = ScenarioRecord(id=test_id, link=", ".join(dict.fromkeys(f.link.name for f in faults)),
                         stage=", ".join(dict.fromkeys(f.spec.stage or "any" for f in faults)),
                         fault=", ".join(dict.fromkeys(f.spec.action for f in faults)),
                         expected="; ".join(expected))
    rec.observed = _observed(bench, sales, records)
    if still_open:
        rec.observed += "; not quiet: " + "; ".join(still_open)
    rec.violations = [str(v) for v in result.violations]
    if failure is not None:
        said = (str(failure).splitlines() or [""])[0][:300]
        rec.observed += f"; the test failed: {type(failure).__name__}: {said}"
    if problems:
        rec.verdict = Verdict.INCONCLUSIVE
        rec.violations = problems + rec.violations
    elif rec.violations:
        rec.verdict = Verdict.FAIL
    elif failure is not None:
        rec.verdict = _failure_verdict(failure)
    else:
        rec.verdict = Verdict.OK
    rec.timeline = timeline(bench_events(bench, faults, sales), bench.t0)
    rec.ledger = ledger_rows(bench.running("host"))
    rec.receipts = receipt_rows(records["receipts"])
    rec.elapsed = round(now() - bench.t0, 3)
    bench.evidence.write_json("verdict.json", {"test": test_id, "oracle": result.to_dict(), "verdict": rec.verdict,
                                               "observed": rec.observed, "expected": rec.expected,
                                               "faults": [f.record() for f in faults], "problems": problems})
    return Conclusion(result, rec, problems, str(bench.evidence.path))


"""Shrink a failing schedule to a minimal one: delta debugging over its faults (and its printer fault and cashier
abort), then over each remaining fault's parameters, then (when neither single step helps) both at once. Every
candidate is run (on the bench, through `run_batch`); a candidate is kept only when it still breaks one of the
invariants the original broke.

The runner takes a batch of schedules and returns their results in order, so the candidates of one step run at
once on a pool's bench slots; the first (in order) that still fails wins the step.

>>> from harness.link.faults import FaultSpec
>>> f = lambda t: Fault("till-terminal", FaultSpec.parse(t), 1.0)
>>> big = Schedule((f("drop zvt:06 0F terminal->till nth=2"), f("hold zvt:04 FF terminal->till ms=50"),
...                 f("rst zvt:05 01 till->terminal every to=sender")))
>>> def fake(batch):     # fails when a 06 0F fault and a reset on 05 01 are both there
...     hit = lambda s: {"zvt:06 0F", "rst zvt:05 01"} <= {x.spec.describe()[:13] for x in s.faults} | {
...         x.spec.stage for x in s.faults}
...     return [Result("FAIL" if hit(s) else "OK", ["I2"]) for s in batch]
>>> done = shrink(big, {"I2"}, fake)
>>> [x.spec.describe() for x in done.schedule.faults]
['drop zvt:06 0F terminal->till first', 'rst zvt:05 01 till->terminal first']
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from harness.explore.schedule import Fault, Schedule
from harness.link.faults import ACTIONS, FaultSpec


@dataclass(frozen=True)
class Result:
    """What one run of a schedule concluded: the verdict's name and the invariants it found broken."""

    verdict: str
    invariants: list[str] = field(default_factory=list)

    def breaks(self, target: set[str]) -> bool:
        return self.verdict == "FAIL" and bool(target & set(self.invariants))


Runner = Callable[[Sequence[Schedule]], list[Result]]


@dataclass
class Shrunk:
    schedule: Schedule
    steps: int = 0                 # accepted simplifications
    runs: int = 0                  # candidates run on the bench
    history: list[str] = field(default_factory=list)


def without_each(s: Schedule) -> Iterator[tuple[str, Schedule]]:
    """The schedule with one thing less: each fault removed, the printer fault, the cashier abort."""
    for i, f in enumerate(s.faults):
        yield f"remove {f.spec.describe()}", replace(s, faults=s.faults[:i] + s.faults[i + 1:])
    if s.printer_fault:
        yield "remove the printer fault", replace(s, printer_fault="", printer_fault_at="")
    if s.cashier_abort:
        yield "remove the cashier abort", replace(s, cashier_abort=False)
    if s.crash:
        yield "remove the power cut", replace(s, crash="")


def simpler_faults(f: Fault) -> Iterator[tuple[str, Fault]]:
    """Simpler versions of one fault: the first occurrence, each parameter back to its default, a plain drop."""
    spec = f.spec
    if spec.occurrence != 1:
        yield "first occurrence", replace(f, spec=replace(spec, occurrence=1))
    for key in spec.params:
        if key in ("ms",) and spec.action in ("hold",):
            continue                                  # a hold needs its duration
        default = ACTIONS[spec.action][key][1]
        if spec.params[key] != default:
            params = {k: v for k, v in spec.params.items() if k != key}
            yield f"{key} default", replace(f, spec=FaultSpec(spec.action, spec.stage, spec.direction,
                                                              spec.occurrence, params, spec.stan))
    if spec.action != "drop" and spec.stage is not None:
        yield "plain drop", replace(f, spec=FaultSpec("drop", spec.stage, spec.direction, spec.occurrence))


def simpler_each(s: Schedule) -> Iterator[tuple[str, Schedule]]:
    for i, f in enumerate(s.faults):
        for why, g in simpler_faults(f):
            yield f"{f.spec.describe()}: {why}", replace(s, faults=s.faults[:i] + (g,) + s.faults[i + 1:])


def remove_and_simplify(s: Schedule) -> Iterator[tuple[str, Schedule]]:
    """Two steps at once, for a schedule neither single step shrinks: one thing removed and one remaining fault
    simplified (a later occurrence may only have come because of the fault removed)."""
    for why, smaller in without_each(s):
        for how, simpler in simpler_each(smaller):
            yield f"{why}; {how}", simpler


def shrink(schedule: Schedule, target: set[str], run_batch: Runner, max_runs: int = 80) -> Shrunk:
    """The smallest schedule (fewest faults, then simplest parameters) reached by single steps from `schedule`
    that still breaks one of `target` (invariant names), with at most `max_runs` candidates run."""
    done = Shrunk(schedule)
    progress = True
    while progress:                  # a simpler fault may make another removable: both phases until neither helps
        progress = False
        for moves in (without_each, simpler_each, remove_and_simplify):
            if moves is remove_and_simplify and progress:
                break                # single steps still help: no need for pairs yet
            while done.runs < max_runs:
                candidates = list(moves(done.schedule))[:max_runs - done.runs]
                if not candidates:
                    break
                results = run_batch([c for _, c in candidates])
                done.runs += len(candidates)
                winner = next(((why, c) for (why, c), r in zip(candidates, results, strict=True)
                               if r.breaks(target)), None)
                if winner is None:
                    break
                done.steps += 1
                done.history.append(winner[0])
                done.schedule = winner[1]
                progress = moves is not without_each or progress
    return done

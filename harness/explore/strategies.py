"""Hypothesis strategies that draw fault schedules, and a seeded, deterministic draw of a batch of them.

Two groups of stages: the payment's (the matrix's `harness.acceptance.matrix.STAGES`: connect, 0200, 0210,
06 01, 04 FF, 04 0F, 06 0F/06 1E) and the recovery's, messages sent only after something was lost (the till's
abort 06 B0, status enquiry 05 01 and repeat receipt 06 20; the terminal's reversal 0420 and its answer 0430).
A schedule always hits the payment and, more often than not, the recovery too: the seeds' incident was one
interruption on the payment and more while the till tried to find out what happened. Durations are drawn around
each stage's scaled timer (shorter and longer than the waiting side's timeout).

>>> batch = draw(seed=1, count=5, scale=0.05)
>>> len(batch), batch == draw(seed=1, count=5, scale=0.05)
(5, True)
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from harness.acceptance.crash import crash_faults
from harness.acceptance.matrix import (
    ABORT_STAGE,
    CRASH_POINTS,
    OUTCOMES,
    REVERSAL_STAGES,
    STAGES,
    PaymentStage,
    _stage,
)
from harness.explore.schedule import PRINTER_FAULTS, Fault, Schedule
from harness.link.faults import FaultSpec
from harness.protocols import stages

# The till's recovery path: only sent after a lost result or a missing ack (the till asks before concluding).
RECOVERY_STAGES: tuple[PaymentStage, ...] = (
    _stage("till-terminal", "zvt:05 01", "till->terminal", 5.0, OUTCOMES,
           "recovery: the till's status enquiry after a lost result"),
    _stage("till-terminal", "zvt:06 20", "till->terminal", 5.0, OUTCOMES,
           "recovery: the till asks the terminal to repeat its last transaction"),
    ABORT_STAGE,
) + REVERSAL_STAGES
# The till is under test: its own recovery requests (05 01, 06 20) are drawn twice as often as its abort and the
# terminal's reversal (0420/0430), whose recovery is the terminal's.
RECOVERY_WEIGHTED: tuple[PaymentStage, ...] = RECOVERY_STAGES[:2] * 2 + RECOVERY_STAGES[2:]
PAYMENT_STAGES: tuple[PaymentStage, ...] = STAGES
REPEATED = ("04-FF", "05-01", "06-20")        # intermediate statuses; the till's query, asked again on failure
# A forged reset is drawn twice as often as the other actions: on TCP it is the fault with the most outcomes.
ACTIONS = ("drop", "hold", "rst", "rst", "blackhole", "flap", "duplicate", "corrupt")


@dataclass(frozen=True)
class Limits:
    """How big a schedule may get."""

    max_faults: int = 4
    printer: bool = True
    abort: bool = True
    crash: bool = True             # a power cut (till, printer or terminal) at a crash point, one in six


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 1)


@st.composite
def fault_on(draw: st.DrawFn, stage: PaymentStage, scale: float) -> Fault:
    """One fault on `stage`: an action, an occurrence, parameters around the stage's scaled timer."""
    timer = stage.timer * scale
    actions = [a for a in ACTIONS if not (a == "corrupt" and stage.message == stages.CONNECT)]
    action = draw(st.sampled_from(actions))
    # a later occurrence only where the message comes several times in a sale (elsewhere it would never fire)
    occurrence = draw(st.sampled_from((1, 1, 2, 3, "every") if stage.label in REPEATED else (1, 1, 1, "every")))
    params: dict = {}
    if action in ("hold", "blackhole"):
        params["ms"] = _ms(timer * draw(st.sampled_from((0.3, 0.6, 1.2, 1.5, 2.0))))
    elif action == "flap":
        down = timer * draw(st.sampled_from((0.1, 0.25, 0.5)))
        params = {"count": draw(st.integers(1, 4)), "down_ms": _ms(down),
                  "every_ms": _ms(down * draw(st.sampled_from((1.5, 2.0, 3.0))))}
    elif action == "rst":
        to = draw(st.sampled_from(("both", "both", "sender", "receiver")))
        if to != "both":                            # both: the default, left out of the text
            params["to"] = to
        # a reset right behind a delivered message races the receiver's answer on the till-terminal link
        # (the matrix leaves it out for the same reason): only on the terminal-host link and the till's 06 01
        if (stage.link == "terminal-host" or stage.label == "06-01") and stage.message != stages.CONNECT \
                and draw(st.booleans()):
            params["deliver"] = True
    elif action == "duplicate":
        params["copies"] = draw(st.integers(1, 2))
    elif action == "corrupt":
        params["checksum"] = draw(st.sampled_from(("fix", "keep")))
    spec = FaultSpec(action=action, stage=stage.message.name, direction=stage.direction, occurrence=occurrence,
                     params=params)
    linger = round(max(timer * 1.5, params.get("ms", 0.0) / 1000.0), 3)
    return Fault(stage.link, spec, linger)


@st.composite
def schedules(draw: st.DrawFn, scale: float = 0.05, limits: Limits = Limits()) -> Schedule:
    """A schedule: the host's answer; 1-2 faults on payment stages and, three times in four, 1-2 on recovery stages
    (at most `max_faults`, never two on the same message); sometimes a power cut at a crash point (one in six,
    with the link faults that point needs), else sometimes a printer fault (one in six) or a cashier abort (one in
    ten)."""
    outcome = draw(st.sampled_from(OUTCOMES))
    crash = ""
    if limits.crash and draw(st.integers(0, 5)) == 0:
        crash = draw(st.sampled_from(sorted(p for p, outcomes in CRASH_POINTS.items() if outcome in outcomes)))
    payment = [s for s in PAYMENT_STAGES if outcome in s.outcomes]
    picked = draw(st.lists(st.sampled_from(payment), min_size=1, max_size=2))
    if draw(st.integers(0, 3)) > 0:
        picked += draw(st.lists(st.sampled_from(RECOVERY_WEIGHTED), min_size=1, max_size=2))
    # the crash point's own link faults come first (the bench watches the first for its point)
    faults = [Fault(p.link, p.spec, p.linger) for p in crash_faults(crash, outcome, scale)] if crash else []
    for stage in picked[:max(1, limits.max_faults - len(faults))]:
        fault = draw(fault_on(stage, scale))
        if all((f.spec.stage, f.spec.direction, f.spec.occurrence) !=
               (fault.spec.stage, fault.spec.direction, fault.spec.occurrence) for f in faults):
            faults.append(fault)
    printer = draw(st.sampled_from([None] * 5 + sorted(PRINTER_FAULTS))) if limits.printer and not crash else None
    abort = limits.abort and not crash and draw(st.integers(0, 9)) == 0
    return Schedule(faults=tuple(faults), outcome=outcome, printer_fault=printer[0] if printer else "",
                    printer_fault_at=printer[1] if printer else "", cashier_abort=abort, crash=crash)


def _batch(seed: int, count: int, scale: float, limits: Limits) -> list[Schedule]:
    """Up to `count` schedules from one seeded hypothesis run (generation only: no shrinking, no database)."""
    drawn: list[Schedule] = []

    @hypothesis_seed(seed)
    @settings(max_examples=max(count, 10), phases=[Phase.generate], database=None, deadline=None,
              suppress_health_check=list(HealthCheck), derandomize=False)
    @given(schedules(scale, limits))
    def collect(schedule: Schedule) -> None:
        drawn.append(schedule)

    collect()
    return drawn


def draw(seed: int, count: int, scale: float = 0.05, limits: Limits = Limits()) -> list[Schedule]:
    """`count` distinct schedules drawn by hypothesis from `schedules()`, the same for the same seed."""
    out: list[Schedule] = []
    seen: set[str] = set()
    for batch in range(50):
        if len(out) >= count:
            break
        for s in _batch(seed * 1009 + batch, count - len(out), scale, limits):
            if s.key not in seen and len(out) < count:
                seen.add(s.key)
                out.append(s)
    return out

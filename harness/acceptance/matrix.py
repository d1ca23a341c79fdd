"""The fault matrix, generated from the payment stage model (`../shared/reference/payments.md`, stages 1-14).

A `Stage` is one message on one link that a fault can hit; a fault kind says what happens to it; an outcome is
what the host would answer. Their product (where the message is really sent in that outcome) plus the printer
faults and the compound reversal cases are the acceptance scenarios, with readable ids:

>>> [s.id for s in scenarios()][:2]
['terminal-host/connect-lost/approve', 'terminal-host/connect-lost/decline']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

OUTCOMES = ("approve", "decline")
# The test card the terminal is given for each outcome (the emulated terminal and host agree on these).
CARDS = {"approve": "approve", "decline": "decline"}
INVARIANTS_TEXT = ("no sale receipt unless the acquirer holds the money; no money held without a sale receipt; "
                   "at most one charge; card numbers masked; no drawer for an unsettled card sale")


@dataclass(frozen=True)
class Stage:
    """One message on one link, as the link engine names it, and the timer the waiting side runs for it."""

    link: str
    message: str                  # link stage: "0210", "zvt:04 0F", "connect"
    direction: str                # "host->terminal"
    label: str                    # id part: "0210", "04-0F"
    timer: float                  # nominal seconds the waiting side waits for it (scaled by the rig)
    outcomes: tuple[str, ...]     # outcomes in which the message is sent at all
    meaning: str                  # what losing it means (payments.md stage)


# The waiting side's timers (nominal seconds): the terminal waits 10 s for the host (Visa POS limit) and 5 s to
# connect; the till waits T3 = 5 s for the terminal's ack and 40 s of silence for the result.
STAGES: tuple[Stage, ...] = (
    Stage("terminal-host", "connect", "terminal->host", "connect", 5.0, OUTCOMES,
          "3: terminal cannot reach the host; declined or offline if allowed, never paid"),
    Stage("terminal-host", "0200", "terminal->host", "0200", 10.0, OUTCOMES,
          "3/4: the request is lost or late; the terminal times out and reverses"),
    Stage("terminal-host", "0210", "host->terminal", "0210", 10.0, OUTCOMES,
          "4: host approved, response lost or late: terminal reverses, till prints NO receipt (the incident)"),
    Stage("till-terminal", "zvt:06 01", "till->terminal", "06-01", 5.0, OUTCOMES,
          "1: the till's request is lost before the ack: not started; query before retry, never blind resend"),
    Stage("till-terminal", "zvt:04 FF", "terminal->till", "04-FF", 40.0, OUTCOMES,
          "2: the link drops while the terminal waits for card/PIN: reconnect, query, no receipt unless paid"),
    Stage("till-terminal", "zvt:04 0F", "terminal->till", "04-0F", 40.0, OUTCOMES,
          "7: the result is lost: status query; print only if processed and successful"),
    Stage("till-terminal", "zvt:06 0F", "terminal->till", "06-0F", 40.0, ("approve",),
          "7/8: completion lost after an approval: query; print once"),
    Stage("till-terminal", "zvt:06 1E", "terminal->till", "06-1E", 40.0, ("decline",),
          "7: the abort is lost after a decline: query; never print a sale receipt"),
)


@dataclass(frozen=True)
class FaultKind:
    label: str
    action: str
    params: Callable[[Stage, float], dict[str, Any]]      # (stage, timing scale) -> link fault parameters
    meaning: str
    deterministic: bool = False                            # the sale must end exactly as without the fault


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 1)


FAULT_KINDS: tuple[FaultKind, ...] = (
    FaultKind("lost", "drop", lambda s, k: {}, "the message (and its retransmissions) is dropped"),
    FaultKind("late", "hold", lambda s, k: {"ms": _ms(s.timer * k * 1.5)},
              "held past the waiting side's timeout (x1.5)"),
    FaultKind("slow", "hold", lambda s, k: {"ms": _ms(s.timer * k * 0.4)},
              "held, but less than the timeout (x0.4): the sale must complete as usual", deterministic=True),
    FaultKind("reset", "rst", lambda s, k: {"to": "both"}, "both ends get a forged TCP reset"),
    FaultKind("cut-after", "rst", lambda s, k: {"to": "both", "deliver": True},
              "the message arrives, then both ends get a reset: the link dies right behind it"),
    FaultKind("half-open", "rst", lambda s, k: {"to": "receiver"},
              "only the receiver gets a reset; the sender still believes the connection is up"),
    FaultKind("blackhole", "blackhole", lambda s, k: {"ms": _ms(s.timer * k * 1.5)},
              "from this message on, everything is dropped both ways for x1.5 the timeout"),
    FaultKind("flap", "flap", lambda s, k: {"count": 3, "down_ms": _ms(s.timer * k * 0.25),
                                             "every_ms": _ms(s.timer * k * 0.5)},
              "the incident's pattern: three brief outages starting at this message"),
    FaultKind("dup", "duplicate", lambda s, k: {"copies": 1},
              "the segment is sent twice (TCP must deliver the message once)", deterministic=True),
    FaultKind("corrupt", "corrupt", lambda s, k: {"checksum": "fix"},
              "one byte of the message is flipped; checksums fixed so the application sees it"),
)


@dataclass(frozen=True)
class LinkFault:
    link: str
    action: str
    stage: str
    direction: str
    params: dict[str, Any] = field(default_factory=dict)
    linger: float = 0.0           # seconds the fault stays armed after it fired: past the waiting side's timer


@dataclass(frozen=True)
class Scenario:
    id: str
    link: str                     # "terminal-host", "till-terminal" or "printer"
    stage: str                    # id label of the targeted stage
    fault: str                    # fault kind label
    outcome: str
    faults: tuple[LinkFault, ...] = ()
    printer_fault: str = ""       # "paper_out" | "offline"
    printer_fault_at: str = ""    # "before" | "during"
    cashier_abort: bool = False   # the cashier presses abort while the host is still deciding (stage 12)
    expect_paid: bool | None = None
    meaning: str = ""

    @property
    def expected(self) -> str:
        text = INVARIANTS_TEXT
        if self.expect_paid is True:
            text = "sale completes: charged once, one sale receipt; " + text
        elif self.expect_paid is False:
            text = "not charged, no sale receipt; " + text
        return text


def _fault(stage: Stage, kind: FaultKind, scale: float) -> LinkFault:
    # A fault is cleared only once the side waiting for the message has certainly given up on it; clearing it
    # earlier would let a retransmission through in time and the fault would never really have happened.
    return LinkFault(stage.link, kind.action, stage.message, stage.direction, kind.params(stage, scale),
                     linger=round(stage.timer * scale * 1.5, 3))


def scenarios(scale: float = 0.05) -> list[Scenario]:
    """Every acceptance scenario for a rig whose timers are scaled by `scale`."""
    out: list[Scenario] = []
    for stage in STAGES:
        for kind in FAULT_KINDS:
            if stage.message == "connect" and kind.label in ("corrupt", "cut-after"):
                continue                                  # a SYN carries no payload to corrupt or deliver
            if stage.link == "till-terminal" and stage.message != "zvt:06 01" and kind.label == "cut-after":
                continue                                  # the till answers or hangs up at once, racing the
                                                          # forged reset: the proof would be a coin toss
            for outcome in stage.outcomes:
                expect = (outcome == "approve") if kind.deterministic else None
                out.append(Scenario(id=f"{stage.link}/{stage.label}-{kind.label}/{outcome}", link=stage.link,
                                    stage=stage.label, fault=kind.label, outcome=outcome,
                                    faults=(_fault(stage, kind, scale),), expect_paid=expect,
                                    meaning=f"{stage.meaning}; {kind.meaning}"))
    # Stage 5: the 0210 comes too late, so the terminal reverses; then the reversal (or its answer) is hit too.
    # (Late, not dropped: on the terminal's persistent connection a dropped 0210 would stall everything behind it.)
    late_0210 = next(s for s in STAGES if s.message == "0210")
    late = next(k for k in FAULT_KINDS if k.label == "late")
    for message, direction in (("0420", "terminal->host"), ("0430", "host->terminal")):
        rev = Stage("terminal-host", message, direction, message, 5.0, OUTCOMES,
                    "5: the reversal or its answer is lost: stored and repeated (0421) until acknowledged")
        for kind in FAULT_KINDS:
            if kind.label in ("slow", "dup", "flap", "cut-after"):
                continue
            for outcome in OUTCOMES:
                out.append(Scenario(
                    id=f"terminal-host/0210-late+{message}-{kind.label}/{outcome}", link="terminal-host",
                    stage=f"0210+{message}", fault=kind.label, outcome=outcome,
                    faults=(_fault(late_0210, late, scale), _fault(rev, kind, scale)),
                    expect_paid=False, meaning=f"{rev.meaning}; {kind.meaning}"))
    # Stage 12: the cashier aborts while the (slow) host is deciding; the abort itself may be hit on the link.
    abort = Stage("till-terminal", "zvt:06 B0", "till->terminal", "06-B0", 5.0, OUTCOMES,
                  "12: cashier abort races the host's answer: query; never 'cancelled' while charged")
    for kind in (None, *(k for k in FAULT_KINDS if k.label in ("lost", "late", "reset"))):
        for outcome in OUTCOMES:
            label = kind.label if kind else "delivered"
            out.append(Scenario(id=f"till-terminal/06-B0-{label}/{outcome}", link="till-terminal", stage="06-B0",
                                fault=label, outcome=outcome, cashier_abort=True,
                                faults=(_fault(abort, kind, scale),) if kind else (),
                                expect_paid=False if outcome == "decline" else None,
                                meaning=abort.meaning + (f"; {kind.meaning}" if kind else "")))
    # Stages 9/10: the printer cannot print (before the sale, or paper out in the middle of the receipt).
    for fault, at, meaning in (
            ("paper_out", "before", "9: no paper before the sale: correct tills refuse goods (84 66), no charge"),
            ("paper_out", "during", "10: paper runs out mid-receipt: payment unchanged, receipt reprinted"),
            ("offline", "before", "9: printer offline: the till cannot hand over goods; no charge")):
        for outcome in OUTCOMES:
            out.append(Scenario(id=f"printer/{fault.replace('_', '-')}-{at}/{outcome}", link="printer",
                                stage=f"receipt-{at}", fault=fault.replace("_", "-"), outcome=outcome,
                                printer_fault=fault, printer_fault_at=at,
                                expect_paid=(outcome == "approve" and at == "during") or
                                (False if outcome == "decline" else None),
                                meaning=meaning))
    return out

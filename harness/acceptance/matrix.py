"""The fault matrix, generated from the payment stage model (`../shared/reference/payments.md`, stages 1-14).

A `PaymentStage` is one message on one link that a fault can hit, with the timer the waiting side runs for it; a
`FaultKind` says what happens to that message (as a `FaultSpec`, the link's one fault definition); an outcome is
what the host would answer. Their product (where the message is really sent in that outcome) plus the printer
faults, the compound reversal cases and the cashier-abort races are the acceptance scenarios, with readable ids:

>>> [s.id for s in scenarios()][:2]
['terminal-host/connect-lost/approve', 'terminal-host/connect-lost/decline']
>>> scenarios()[0].faults[0].spec.describe()
'drop connect terminal->host first'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.acceptance.crash import crash_faults
from harness.core.cards import FOR_OUTCOME
from harness.link.faults import FaultSpec
from harness.protocols import stages
from harness.protocols.stages import Stage

OUTCOMES = ("approve", "decline")
INVARIANTS_TEXT = ("no sale receipt unless the acquirer holds the money; no money held without a sale receipt; "
                   "at most one charge; card numbers masked; no drawer for an unsettled card sale; each receipt names "
                   "its own payment; the next customer's sale completes")


@dataclass(frozen=True)
class PaymentStage:
    """One message on one link, and the timer the side waiting for it runs."""

    link: str
    message: Stage                # the link stage: 0210, zvt:04 0F, connect
    direction: str                # "host->terminal"
    timer: float                  # nominal seconds the waiting side waits for it (scaled by the rig)
    outcomes: tuple[str, ...]     # outcomes in which the message is sent at all
    meaning: str                  # what losing it means (payments.md stage)

    @property
    def label(self) -> str:
        """The stage as scenario ids spell it: '0210', '04-0F'."""
        return self.message.label


def _stage(link: str, message: str, direction: str, timer: float, outcomes: tuple[str, ...],
           meaning: str) -> PaymentStage:
    return PaymentStage(link, stages.parse(message), direction, timer, outcomes, meaning)


# The waiting side's timers (nominal seconds): the terminal waits 10 s for the host (Visa POS limit) and 5 s to
# connect; the till waits T3 = 5 s for the terminal's ack and 40 s of silence for the result.
STAGES: tuple[PaymentStage, ...] = (
    _stage("terminal-host", "connect", "terminal->host", 5.0, OUTCOMES,
           "3: terminal cannot reach the host; declined or offline if allowed, never paid"),
    _stage("terminal-host", "0200", "terminal->host", 10.0, OUTCOMES,
           "3/4: the request is lost or late; the terminal times out and reverses"),
    _stage("terminal-host", "0210", "host->terminal", 10.0, OUTCOMES,
           "4: host approved, response lost or late: terminal reverses, till prints NO receipt (the incident)"),
    _stage("till-terminal", "zvt:06 01", "till->terminal", 5.0, OUTCOMES,
           "1: the till's request is lost before the ack: not started; query before retry, never blind resend"),
    _stage("till-terminal", "zvt:04 FF", "terminal->till", 40.0, OUTCOMES,
           "2: the link drops while the terminal waits for card/PIN: reconnect, query, no receipt unless paid"),
    _stage("till-terminal", "zvt:04 0F", "terminal->till", 40.0, OUTCOMES,
           "7: the result is lost: status query; print only if processed and successful"),
    _stage("till-terminal", "zvt:06 0F", "terminal->till", 40.0, ("approve",),
           "7/8: completion lost after an approval: query; print once"),
    _stage("till-terminal", "zvt:06 1E", "terminal->till", 40.0, ("decline",),
           "7: the abort is lost after a decline: query; never print a sale receipt"),
)
# Stage 5: the reversal (0420) or its answer (0430), after a late 0210.
REVERSAL_STAGES: tuple[PaymentStage, ...] = tuple(
    _stage("terminal-host", message, direction, 5.0, OUTCOMES,
           "5: the reversal or its answer is lost: stored and repeated (0421) until acknowledged")
    for message, direction in (("0420", "terminal->host"), ("0430", "host->terminal")))
# Stage 12: the cashier's abort (06 B0) races the host's answer.
ABORT_STAGE = _stage("till-terminal", "zvt:06 B0", "till->terminal", 5.0, OUTCOMES,
                     "12: cashier abort races the host's answer: query; never 'cancelled' while charged")


@dataclass(frozen=True)
class FaultKind:
    """What happens to a stage's message: a link fault action and its parameters for that stage's timer."""

    label: str
    action: str
    params: Callable[[PaymentStage, float], dict[str, Any]]      # (stage, timing scale) -> FaultSpec params
    meaning: str
    deterministic: bool = False                                   # the sale must end exactly as without it

    def spec(self, stage: PaymentStage, scale: float) -> FaultSpec:
        """The link fault this kind puts on `stage`'s first message."""
        return FaultSpec(action=self.action, stage=stage.message.name, direction=stage.direction,
                         params=self.params(stage, scale))


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
KIND = {k.label: k for k in FAULT_KINDS}


@dataclass(frozen=True)
class PlannedFault:
    """A fault a scenario arms: which link, the fault itself, and how long it stays armed after it fired."""

    link: str
    spec: FaultSpec
    linger: float = 0.0           # seconds past its firing: past the waiting side's timer


@dataclass(frozen=True)
class TerminalSetup:
    """How the emulated terminal behaves in a scenario, besides the link faults (the default: as it always does).
    Nominal seconds are scaled by the rig's timing when the scenario runs (`harness.acceptance.steps`)."""

    offline: bool = False         # it may approve offline when the host is unreachable, or for an offline-only card
    floor_limit: int = 0          # minor units: the most it approves offline
    display: str = ""             # the intermediate statuses it shows (harness.terminal.display); "" = classic
    card_delay: float = 0.0       # nominal seconds the cardholder takes to present the faulted sale's card
    busy_after: float = 0.0       # nominal seconds it stays busy after the sale before (its merchant copy)

    @property
    def default(self) -> bool:
        return self == TerminalSetup()


@dataclass(frozen=True)
class Scenario:
    id: str
    link: str                     # "terminal-host", "till-terminal" or "printer"
    stage: str                    # id label of the targeted stage
    fault: str                    # fault kind label
    outcome: str                  # what the host answers: approve | decline
    faults: tuple[PlannedFault, ...] = ()
    printer_fault: str = ""       # "paper_out" | "offline"
    printer_fault_at: str = ""    # "before" | "during"
    cashier_abort: bool = False   # the cashier presses abort while the host is still deciding (stage 12)
    power_cut: bool = False       # the till loses power while the terminal has the payment, then boots (stage 8)
    test_card: str = ""           # the card presented (harness.core.cards); "" = the host outcome's card
    terminal: TerminalSetup = TerminalSetup()
    crash: str = ""               # crash_scenarios(): "<device>:<point>", e.g. "till:mid-receipt", "terminal:online"
    tender: str = "card"          # how the faulted sale is paid: card | cash (no terminal: paid, a cash receipt)
    expect_paid: bool | None = None
    meaning: str = ""

    @property
    def needs(self) -> tuple[str, ...]:
        """Till capabilities (harness.till.CAPABILITIES) this scenario cannot run without."""
        return ("abort",) * self.cashier_abort + ("lifecycle",) * (self.power_cut or self.crash.startswith("till:"))

    @property
    def card(self) -> str:
        """The test card presented (harness.core.cards): the row's own, else the host outcome's."""
        return self.test_card or FOR_OUTCOME[self.outcome]

    @property
    def expected(self) -> str:
        text = INVARIANTS_TEXT
        if self.tender == "cash":
            text = "cash sale: paid, one cash receipt, nothing charged to a card; " + text
        elif self.expect_paid is True:
            text = "sale completes: charged once, one sale receipt; " + text
        elif self.expect_paid is False:
            text = "not charged, no sale receipt; " + text
        return text


def _fault(stage: PaymentStage, kind: FaultKind, scale: float) -> PlannedFault:
    # A fault is cleared only once the side waiting for the message has certainly given up on it; clearing it
    # earlier would let a retransmission through in time and the fault would never really have happened.
    return PlannedFault(stage.link, kind.spec(stage, scale), linger=round(stage.timer * scale * 1.5, 3))


def scenarios(scale: float = 0.05) -> list[Scenario]:
    """Every acceptance scenario for a rig whose timers are scaled by `scale`."""
    out: list[Scenario] = []
    for stage in STAGES:
        for kind in FAULT_KINDS:
            if stage.message == stages.CONNECT and kind.label in ("corrupt", "cut-after"):
                continue                                  # a SYN carries no payload to corrupt or deliver
            if stage.link == "till-terminal" and stage.label != "06-01" and kind.label == "cut-after":
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
    late_0210 = next(s for s in STAGES if s.label == "0210")
    for rev in REVERSAL_STAGES:
        for kind in FAULT_KINDS:
            if kind.label in ("slow", "dup", "flap", "cut-after"):
                continue
            for outcome in OUTCOMES:
                out.append(Scenario(
                    id=f"terminal-host/0210-late+{rev.label}-{kind.label}/{outcome}", link="terminal-host",
                    stage=f"0210+{rev.label}", fault=kind.label, outcome=outcome,
                    faults=(_fault(late_0210, KIND["late"], scale), _fault(rev, kind, scale)),
                    expect_paid=False, meaning=f"{rev.meaning}; {kind.meaning}"))
    # Stage 12: the cashier aborts while the (slow) host is deciding; the abort itself may be hit on the link.
    for kind in (None, KIND["lost"], KIND["late"], KIND["reset"]):
        for outcome in OUTCOMES:
            label = kind.label if kind else "delivered"
            out.append(Scenario(id=f"{ABORT_STAGE.link}/{ABORT_STAGE.label}-{label}/{outcome}",
                                link=ABORT_STAGE.link, stage=ABORT_STAGE.label, fault=label, outcome=outcome,
                                cashier_abort=True, faults=(_fault(ABORT_STAGE, kind, scale),) if kind else (),
                                expect_paid=False if outcome == "decline" else None,
                                meaning=ABORT_STAGE.meaning + (f"; {kind.meaning}" if kind else "")))
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
    out += behaviour_scenarios(scale)
    out += crash_scenarios(scale)
    return out


# The faulted sale is 4.88 (harness.acceptance.scenario.BASKET): the floor limits either side of it.
FLOOR_ABOVE_SALE = 500        # 4.88 is within a 5.00 floor limit: approved offline
FLOOR_BELOW_SALE = 400        # ... and above a 4.00 one: declined offline
MERCHANT_COPY = 30.0          # nominal s the terminal prints its merchant copy after the sale before (T3 is 5 s)
LATE_CARD = 15.0              # nominal s the cardholder takes: 3 x T3, well inside the till's 40 s result
                              # timer (at scale 0.05 a 25 s wait left 0.75 s: 1 of 20 loaded runs timed out)
                              # and the terminal's 60 s card timer
BEHAVIOUR = "behaviour"       # the fault column (report grid) of the rows no link fault makes


def behaviour_scenarios(scale: float = 0.05) -> list[Scenario]:
    """Rows for what cards, cardholders and the terminal do, not the links: offline approvals within and above
    the floor limit (host down, offline-only card), declines of several kinds, a card pulled before and after the
    host approved, a busy terminal, a late cardholder, and the terminal's varied intermediate statuses."""
    connect = next(s for s in STAGES if s.message == stages.CONNECT)
    host_down = (_fault(connect, KIND["blackhole"], scale),)
    offline = "3: host unreachable, the terminal may approve offline up to its floor limit; "
    out = [
        Scenario(id="terminal-host/offline-within-floor/approve", link="terminal-host",
                 stage="connect+offline-within-floor", fault="blackhole", outcome="approve", faults=host_down,
                 terminal=TerminalSetup(offline=True, floor_limit=FLOOR_ABOVE_SALE, display="dial-up"),
                 expect_paid=True,
                 meaning=offline + "4.88 within 5.00: approved offline (Y3), the 0220 advice stored and sent once "
                                   "the host is back; the till prints, marked offline (I6)"),
        Scenario(id="terminal-host/offline-above-floor/approve", link="terminal-host",
                 stage="connect+offline-above-floor", fault="blackhole", outcome="approve", faults=host_down,
                 terminal=TerminalSetup(offline=True, floor_limit=FLOOR_BELOW_SALE, display="dial-up"),
                 expect_paid=False,
                 meaning=offline + "4.88 above 4.00: not approved (A3 no connection); no receipt, not 'offline'"),
        Scenario(id="card/offline-only/approve", link="card", stage="offline-only", fault=BEHAVIOUR,
                 outcome="approve", test_card="offline_only",
                 terminal=TerminalSetup(offline=True, floor_limit=FLOOR_ABOVE_SALE, display="chip-pin"),
                 expect_paid=True,
                 meaning="an offline-only chip within the floor limit: approved offline (Y1) without asking the "
                         "host, the 0220 advice sent after; the till prints, marked offline (I6)"),
        Scenario(id="card/offline-only-above-floor/decline", link="card", stage="offline-only-above-floor",
                 fault=BEHAVIOUR, outcome="decline", test_card="offline_only",
                 terminal=TerminalSetup(offline=True, floor_limit=FLOOR_BELOW_SALE, display="contactless"),
                 expect_paid=False,
                 meaning="an offline-only chip above the floor limit: declined by the terminal, no receipt"),
    ]
    for card, outcome, display, meaning in (
            ("insufficient_funds", "decline", "chip-pin", "the issuer declines (51): no receipt, 'declined'"),
            ("issuer_unavailable", "decline", "contactless",
             "the issuer cannot be reached (91): not charged, no receipt"),
            ("wrong_pin", "decline", "chip-pin", "the PIN is wrong: the terminal declines before going online"),
            ("card_removed", "approve", "dial-up",
             "the card is pulled before the terminal went online: nothing sent to the host, no receipt"),
            ("removed_after_online", "approve", "dial-up",
             "the card is pulled after the host approved: the terminal reverses (0420, reason 06); no receipt")):
        label = {"card_removed": "removed-before-online", "removed_after_online": "removed-after-online"}.get(
            card, card.replace("_", "-"))
        out.append(Scenario(id=f"card/{label}/{outcome}", link="card", stage=label, fault=BEHAVIOUR, outcome=outcome,
                            test_card=card, terminal=TerminalSetup(display=display), expect_paid=False,
                            meaning=meaning))
    out += [
        # expect_paid stays open: 84 A0 says the request was not taken, so a till may also send it again once the
        # terminal is free (and then print once); it must not print before, nor charge twice.
        Scenario(id="terminal/busy/approve", link="terminal", stage="busy", fault=BEHAVIOUR, outcome="approve",
                 terminal=TerminalSetup(busy_after=MERCHANT_COPY),
                 meaning="the sale's 06 01 arrives while the terminal still prints the merchant copy of the sale "
                         "before: refused, 84 A0 (receiver not ready); no receipt unless a payment was taken, "
                         "never two charges"),
        Scenario(id="card/presented-late/approve", link="card", stage="presented-late", fault=BEHAVIOUR,
                 outcome="approve",
                 terminal=TerminalSetup(card_delay=LATE_CARD, display="chip-pin"), expect_paid=True,
                 meaning="the cardholder takes 15 s (nominal) to present the card, inside every timer: the sale "
                         "completes"),
    ]
    out.append(Scenario(id="till/cash-sale/approve", link="till", stage="tender", fault=BEHAVIOUR, outcome="approve",
                        tender="cash", meaning="a cash sale between two card sales: no terminal, paid, a cash "
                                               "receipt, the drawer free (I5); the card sales around it as usual"))
    for display, outcome in (("chip-pin", "approve"), ("contactless", "approve"), ("dial-up", "decline")):
        out.append(Scenario(id=f"terminal/statuses-{display}/{outcome}", link="terminal",
                            stage=f"statuses-{display}", fault=BEHAVIOUR, outcome=outcome,
                            terminal=TerminalSetup(display=display), expect_paid=outcome == "approve",
                            meaning="the terminal's own intermediate statuses (harness.terminal.display: "
                                    f"{display}), codes the till may not know among them: acknowledged, ignored"))
    return out


def power_cut_scenarios() -> list[Scenario]:
    """Stage 8: the till dies while the terminal has the payment, and boots again; once it has recovered, it
    must have printed a receipt exactly when the acquirer holds the money. Needs a till posrig can kill."""
    return [Scenario(id=f"till/power-cut-authorizing/{outcome}", link="till", stage="authorizing", fault="power-cut",
                     outcome=outcome, power_cut=True, expect_paid=False if outcome == "decline" else None,
                     meaning="8: the till crashes mid-payment; restarted, it asks the terminal and prints what is "
                             "owed, once") for outcome in OUTCOMES]


# Crash points (stage 8 and its neighbours): where the till, the printer or the terminal loses power, and what the
# bench watches to cut it exactly there (harness.acceptance.crash). (point, outcomes, meaning)
TILL_CRASHES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("request", OUTCOMES, "1/8: the till dies with its 06 01 on the wire, before the terminal's ack: the request never "
                          "arrives; restarted, it asks and never pays twice"),
    ("card-wait", OUTCOMES, "2/8: the till dies while the terminal waits for the card (04 FF); the customer pays "
                            "anyway: restarted, it asks and prints exactly when the acquirer holds the money"),
    ("result", OUTCOMES, "8: the till dies with the result booked (04 0F answered), the completion still on the wire: "
                         "restarted, it asks and prints once, only for a payment that stands"),
    ("mid-receipt", ("approve",), "8/10: the till dies after the first bytes of the sale receipt: restarted, it owes "
                                  "the receipt and prints it (a copy), once"),
    ("after-receipt", ("approve",), "8: the till dies right after the receipt's cut, before its journal says so: "
                                    "restarted, at most a copy, never a second original"),
)
# Whether the approved payment must stand once the till is back: the request never arrived (not charged); with the
# result booked or a receipt under way it stands; at the card the terminal decides (its `unconfirmed` option).
EXPECT_PAID: dict[str, bool | None] = {"request": False, "card-wait": None}
TERMINAL_CRASHES: tuple[tuple[str, str], ...] = (
    ("online", "4/5: the terminal reboots while the host has approved and its 0210 is on the way: on boot it reverses "
               "(0420 from its durable store); the till asks, prints nothing"),
    ("result", "8: the terminal reboots with the approval's 04 0F not yet confirmed by the till: the outcome was never "
               "delivered, so on boot it reverses; the till asks, prints nothing"),
    ("completion", "8: the terminal reboots after the till booked the 04 0F, before 06 0F: the payment stands; the "
                   "till asks and prints it once"),
)


# Every crash point (Scenario.crash) and the host outcomes it can come with (where the point is reached at all).
CRASH_POINTS: dict[str, tuple[str, ...]] = {
    **{f"till:{point}": outcomes for point, outcomes, _ in TILL_CRASHES},
    "printer:power-cycle": ("approve",),
    **{f"terminal:{point}": ("approve",) for point, _ in TERMINAL_CRASHES},
}


def crash_scenarios(scale: float = 0.05) -> list[Scenario]:
    """Power cuts at each stage of a payment: the till (needs `lifecycle`), the printer mid-receipt, the terminal
    with a payment in flight. Each device comes back with its durable memory; once quiet, the records must show
    what is owed printed exactly once. The power cut while the host decides is `power_cut_scenarios()`.

    >>> [s.id for s in crash_scenarios()][:3]
    ['till/power-cut-authorizing/approve', 'till/power-cut-authorizing/decline', 'till/power-cut-request/approve']
    """
    out = power_cut_scenarios()
    for point, outcomes, meaning in TILL_CRASHES:
        out += [Scenario(id=f"till/power-cut-{point}/{outcome}", link="till", stage=point, fault="power-cut",
                         outcome=outcome, crash=f"till:{point}", meaning=meaning,
                         faults=crash_faults(f"till:{point}", outcome, scale),
                         expect_paid=EXPECT_PAID.get(point, outcome == "approve") if outcome == "approve" else False)
                for outcome in outcomes]
    out.append(Scenario(id="printer/power-cycle-during/approve", link="printer", stage="receipt-during",
                        fault="power-cycle", outcome="approve", crash="printer:power-cycle", expect_paid=True,
                        meaning="10: the printer loses power mid-receipt (its buffer lost, offline, back): the "
                                "payment stands and the receipt is printed again, once"))
    out += [Scenario(id=f"terminal/restart-{point}/approve", link="terminal", stage=point, fault="restart",
                     outcome="approve", crash=f"terminal:{point}", meaning=meaning,
                     faults=crash_faults(f"terminal:{point}", "approve", scale),
                     expect_paid=point == "completion") for point, meaning in TERMINAL_CRASHES]
    return out

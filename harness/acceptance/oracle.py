"""The settlement oracle: reconciles the acquirer's ledger, the terminal's journal and the printed receipts.

It works on plain records, so it does not care whether they came from emulators or from a physical bench:

>>> result = reconcile(payments=[...], journal=[...], receipts=[...], sales=[...], evidence_dir=path)  # doctest: +SKIP
>>> result.ok, [v.invariant for v in result.violations]                                               # doctest: +SKIP
>>> reconcile(..., only=["I1", "I3"]).checked                                                         # doctest: +SKIP
['I1', 'I3']

Invariants (checked once the bench is quiet: stored reversals delivered, faults cleared):
- I1 no sale receipt without a settled payment of that amount (THE incident);
- I2 no settled payment without its sale receipt, unless reversed (money taken without a sale);
- I3 at most one charge per sale;
- I4 receipts and evidence show masked card numbers only;
- I5 no drawer pulse for an unsettled card payment, nor before its approval: every pulse the printer executed,
  inside a receipt or not, belongs to a sale (by time window) and is judged against it;
- I6 offline approvals printed as offline (and nothing printed as offline that was online);
- I7 what the till tells the cashier agrees with the money: "paid" only when the acquirer holds the payment,
  never "failed"/"declined"/"cancelled" while it does, "printed" only when a receipt came out, "offline" only
  for an offline approval.

Each is a function over `Records` registered by name with `@invariant`; a new one plugs in the same way and is
checked by default everywhere (the matrix, every test's teardown, `bench.reconcile()`):

>>> @invariant("I9", "the till never says paid for a declined card", needs=("sales", "payments"))  # doctest: +SKIP
... def _never_paid_when_declined(rec: Records) -> Iterator[Violation]: ...
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from harness.core.cards import PANS
from harness.core.masking import find_unmasked_pans, mask_pan

log = logging.getLogger(__name__)

RECORDS = ("payments", "journal", "receipts", "sales")      # what an invariant may need (see `Records`)
INVARIANTS: dict[str, str] = {}                            # name -> description, in registry order
NOT_CHARGED = ("failed", "declined", "cancelled")      # the till's words for "the customer has not paid"
HOLDS_MONEY = ("approved", "settled")          # ledger states in which the acquirer holds the customer's money
EXPECTED = "expect"                            # the `invariant` of a violated expectation (not an invariant)


class UnknownInvariant(ValueError):
    """An invariant was asked for by a name the oracle does not know."""


@dataclass(frozen=True)
class Invariant:
    """One rule the records must obey: its name (I1...), what it says, the records it reads, its check."""

    name: str
    description: str
    needs: tuple[str, ...]
    check: Callable[[Records], Iterable[Violation]]


REGISTRY: dict[str, Invariant] = {}


def invariant(name: str, description: str, needs: Iterable[str] = ()) -> Callable:
    """Register a check `(Records) -> violations` as invariant `name`. `needs`: the records it cannot be judged
    without (a test that used no printer has no receipts to judge I1 on)."""
    needs = tuple(needs)
    wrong = [n for n in needs if n not in RECORDS]
    if wrong:
        raise ValueError(f"invariant {name}: needs {wrong}, but the records are {', '.join(RECORDS)}")

    def register(check: Callable[[Records], Iterable[Violation]]) -> Callable[[Records], Iterable[Violation]]:
        if name in REGISTRY:
            raise ValueError(f"invariant {name} is registered twice ({REGISTRY[name].check.__qualname__} and "
                             f"{check.__qualname__})")
        REGISTRY[name] = Invariant(name, description, needs, check)
        INVARIANTS[name] = description
        return check

    return register


def describe(name: str) -> str:
    """What invariant `name` says (or what a violated expectation is)."""
    return "what the test expects" if name == EXPECTED else INVARIANTS.get(name, "unregistered invariant")


@dataclass(frozen=True)
class Payment:
    """One payment as the acquirer's ledger has it."""

    ref: str                       # the host's own id for the payment (e.g. "TID/STAN" or RRN)
    amount: int                    # minor units (cents)
    state: str                     # approved | declined | reversed | settled
    stan: str = ""
    rrn: str = ""
    auth_code: str = ""
    offline: bool = False
    t: float | None = None         # when the acquirer booked it (epoch seconds, the shared clock), when known

    @property
    def holds_money(self) -> bool:
        return self.state in HOLDS_MONEY


@dataclass(frozen=True)
class JournalEntry:
    """One transaction as the terminal's journal has it."""

    trace: str
    amount: int
    result: str                    # approved | declined | aborted | reversed | pending
    host_ref: str = ""             # the ledger ref it corresponds to, when known
    auth_code: str = ""
    offline: bool = False
    stan: str = ""                 # the ISO 8583 STAN it went to the acquirer with (the ledger's `stan`)
    approved_at: float | None = None   # when the terminal approved it: the earliest the till could know


@dataclass(frozen=True)
class PrintedReceipt:
    """One receipt as it came out of the printer (what lay between two cuts)."""

    index: int
    kind: str                      # sale | copy (a reprint) | declined | cancelled | other
    amount: int | None             # the total printed, minor units
    text: str
    auth_code: str = ""
    offline: bool = False          # the receipt says the payment was approved offline
    drawer_pulses: int = 0
    trace: str = ""                # the terminal's trace number the receipt names ("" = none printed)
    tender: str = "card"           # card | cash
    evidence: str = ""             # file holding this receipt (image/text)


@dataclass(frozen=True)
class Sale:
    """One sale as the till reports it (the till's own journal)."""

    sale_id: str
    amount: int
    tender: str = "card"
    status: str = ""               # what the till says happened: paid | declined | cancelled | failed | unknown
    receipt: str = ""              # what it says of the receipt: none | printed | pending | failed ("" = not said)
    drawer_opened: bool | None = None
    offline: bool | None = None
    started: float | None = None   # when the till opened the sale (epoch seconds), when its journal says


@dataclass(frozen=True)
class DrawerKick:
    """One cash-drawer pulse the printer executed: when (`t`, epoch seconds; None when only counted off a
    receipt), the receipt whose bytes held it (`receipt`; None: outside any receipt, in the uncut buffer), and
    whether that receipt was cut (`inside_receipt`)."""

    t: float | None = None
    receipt: int | None = None
    inside_receipt: bool = False
    pin: int = 2

    @property
    def where(self) -> str:
        if self.receipt is None:
            return "outside any receipt"
        return f"inside receipt #{self.receipt}" if self.inside_receipt else f"in uncut receipt #{self.receipt}"


class PrintedReceipts(list):
    """What a printer gave the oracle: its receipts (a list of `PrintedReceipt`) and every drawer pulse it
    executed (`drawer`, inside a receipt or not). `reconcile` takes the pulses from here unless given them."""

    def __init__(self, receipts: Iterable[PrintedReceipt] = (), drawer: Iterable[DrawerKick] | None = None):
        super().__init__(receipts)
        self.drawer: list[DrawerKick] | None = None if drawer is None else list(drawer)


@dataclass(frozen=True)
class Violation:
    """One broken invariant (or unmet expectation), typed: which, what, and where to look."""

    invariant: str
    message: str
    payment: str = ""
    receipt: int | None = None
    evidence: tuple[str, ...] = ()

    @property
    def description(self) -> str:
        return describe(self.invariant)

    def __str__(self) -> str:
        where = []
        if self.payment:
            where.append(f"payment {self.payment}")
        if self.receipt is not None:
            where.append(f"receipt #{self.receipt}")
        if self.evidence:
            where.append("evidence: " + ", ".join(self.evidence))
        return f"{self.invariant} ({self.description}): {self.message}" + (
            f" [{'; '.join(where)}]" if where else "")


@dataclass
class Reconciliation:
    """What the oracle found: the violations (none = every invariant checked holds), which invariants it checked
    and which it could not (name -> why), and which receipt paid which payment."""

    violations: list[Violation] = field(default_factory=list)
    matches: list[tuple[int, str]] = field(default_factory=list)     # (receipt index, payment ref)
    checked: list[str] = field(default_factory=list)
    not_checked: dict[str, str] = field(default_factory=dict)
    drawer_pulses: int = 0             # drawer pulses the printer executed (judged by I5 when it was checked)

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def broken(self) -> list[str]:
        """The names of the invariants (and "expect") violated, in order, once each."""
        return list(dict.fromkeys(v.invariant for v in self.violations))

    def of(self, invariant: str) -> list[Violation]:
        return [v for v in self.violations if v.invariant == invariant]

    def to_dict(self) -> dict:
        return {"ok": self.ok, "violations": [asdict(v) | {"text": str(v)} for v in self.violations],
                "matches": [{"receipt": r, "payment": p} for r, p in self.matches],
                "checked": list(self.checked), "not_checked": dict(self.not_checked),
                "drawer_pulses": self.drawer_pulses}

    def __str__(self) -> str:
        if self.ok:
            return "oracle: all invariants hold"
        return "oracle: " + "\n".join(str(v) for v in self.violations)


def _pair(receipts: list[PrintedReceipt], payments: list[Payment]) -> dict[int, Payment]:
    """Pair each card sale receipt with one money-holding payment (by auth code first, then by amount), and each
    card copy with any money-holding payment it reprints."""
    free = [p for p in payments if p.holds_money]
    pairs: dict[int, Payment] = {}
    sale_receipts = [r for r in receipts if r.kind == "sale" and r.tender == "card"]
    for r in sale_receipts:
        if r.auth_code:
            hit = next((p for p in free if p.auth_code and p.auth_code == r.auth_code and p.amount == r.amount), None)
            if hit:
                pairs[r.index] = hit
                free.remove(hit)
    for r in sale_receipts:
        if r.index in pairs:
            continue
        hit = next((p for p in free if p.amount == r.amount), None)
        if hit:
            pairs[r.index] = hit
            free.remove(hit)
    holding = [p for p in payments if p.holds_money]
    for r in receipts:
        if r.kind == "copy" and r.tender == "card":
            hit = next((p for p in holding if p.amount == r.amount and (not r.auth_code or not p.auth_code
                                                                          or p.auth_code == r.auth_code)), None)
            if hit:
                pairs[r.index] = hit
    return pairs


@dataclass
class Records:
    """What the oracle reads, and the receipt -> payment pairing every invariant shares."""

    payments: list[Payment]
    journal: list[JournalEntry]
    receipts: list[PrintedReceipt]
    sales: list[Sale]
    evidence_dir: Path | None = None
    known_pans: tuple[str, ...] = PANS
    drawer: list[DrawerKick] | None = None     # None: counted off the receipts (no times, none outside them)
    pairs: dict[int, Payment] = field(init=False)

    def __post_init__(self) -> None:
        self.pairs = _pair(self.receipts, self.payments)
        if self.drawer is None:
            self.drawer = [DrawerKick(receipt=r.index, inside_receipt=True)
                           for r in self.receipts for _ in range(r.drawer_pulses)]


def _evidence(r: PrintedReceipt) -> tuple[str, ...]:
    return (r.evidence,) if r.evidence else ()


def _digits(value: str) -> str:
    return value.strip().lstrip("0")


def _names_another_payment(r: PrintedReceipt, p: Payment, rec: Records) -> str:
    """What on receipt `r` identifies a payment other than `p`, its pair ("" when nothing does): an auth code
    that is not p's, or a trace number the terminal gave a payment with another STAN."""
    if r.auth_code and p.auth_code and r.auth_code != p.auth_code:
        owner = next((q.ref for q in rec.payments if q.auth_code == r.auth_code), "")
        return f"auth code {r.auth_code} ({'payment ' + owner if owner else 'no payment of this run'})"
    if r.trace and p.stan:
        traced = [e for e in rec.journal if e.trace and _digits(e.trace) == _digits(r.trace) and e.stan]
        if traced and all(_digits(e.stan) != _digits(p.stan) for e in traced):
            return f"trace {r.trace} (the terminal's payment with STAN {traced[0].stan})"
    return ""


@invariant("I1", "no sale receipt without a settled payment of that amount", needs=("receipts", "payments"))
def _no_receipt_without_payment(rec: Records) -> Iterator[Violation]:
    for r in rec.receipts:
        if r.kind == "copy" and r.tender == "card" and r.index not in rec.pairs:
            yield Violation("I1", f"receipt copy for {_money(r.amount)} but the acquirer holds no such payment",
                            receipt=r.index, evidence=_evidence(r))
    kinds = {r.index: r.kind for r in rec.receipts}
    for r in rec.receipts:
        if r.kind == "sale" and r.tender == "card" and r.index not in rec.pairs:
            first = next(((i, p) for i, p in sorted(rec.pairs.items()) if i < r.index and kinds.get(i) == "sale"
                          and p.amount == r.amount), None)
            if first is not None:                   # the money is held, but already has its original receipt
                yield Violation("I1", f"a second original sale receipt for {_money(r.amount)}: payment {first[1].ref} "
                                      f"was already printed on receipt #{first[0]} (a reprint must say COPY)",
                                payment=first[1].ref, receipt=r.index, evidence=_evidence(r))
                continue
            held = [p for p in rec.payments if p.amount == r.amount]
            states = ", ".join(f"{p.ref}={p.state}" for p in held) or "no payment of that amount at all"
            yield Violation("I1", f"sale receipt for {_money(r.amount)} but the acquirer holds no such payment "
                                  f"({states})", payment=held[0].ref if held else "", receipt=r.index,
                            evidence=_evidence(r))
    for r in rec.receipts:
        p = rec.pairs.get(r.index)
        if r.kind != "sale" or r.tender != "card" or p is None:
            continue
        other = _names_another_payment(r, p, rec)
        if other:
            yield Violation("I1", f"sale receipt for {_money(r.amount)} names {other}, not its own payment "
                                  f"{p.ref}", payment=p.ref, receipt=r.index, evidence=_evidence(r))


@invariant("I2", "no settled payment without its sale receipt unless reversed", needs=("receipts", "payments"))
def _no_payment_without_receipt(rec: Records) -> Iterator[Violation]:
    matched = {p.ref for p in rec.pairs.values()}
    for p in rec.payments:
        if p.holds_money and p.ref not in matched:
            yield Violation("I2", f"acquirer holds {_money(p.amount)} ({p.state}) but no sale receipt was printed "
                                  f"for it", payment=p.ref)


@invariant("I3", "at most one charge per sale", needs=("payments", "sales"))
def _one_charge_per_sale(rec: Records) -> Iterator[Violation]:
    held_by_amount = Counter(p.amount for p in rec.payments if p.holds_money)
    card_sales = [s for s in rec.sales if s.tender == "card"]
    sales_by_amount = Counter(s.amount for s in card_sales)
    for amount, n in held_by_amount.items():
        allowed = sales_by_amount.get(amount, 0) if card_sales else 1
        if n > max(allowed, 1):
            refs = [p.ref for p in rec.payments if p.holds_money and p.amount == amount]
            yield Violation("I3", f"{n} charges of {_money(amount)} held by the acquirer for {allowed} sale(s) "
                                  f"of that amount", payment=", ".join(refs))


@invariant("I4", "receipts and evidence show masked card numbers only")
def _masked_card_numbers(rec: Records) -> Iterator[Violation]:
    for r in rec.receipts:
        for pan in sorted(_card_like(find_unmasked_pans(r.text))):
            yield Violation("I4", f"receipt shows an unmasked card number ({pan})", receipt=r.index,
                            evidence=_evidence(r))
    if rec.evidence_dir is not None:
        for path, pans in scan_evidence(Path(rec.evidence_dir), rec.known_pans):
            yield Violation("I4", f"evidence file shows {len(pans)} unmasked card number(s) ({pans[0]})",
                            evidence=(str(path),))


@invariant("I5", "no drawer pulse for an unsettled card payment, nor before its approval",
           needs=("receipts", "payments"))
def _no_drawer_unless_paid(rec: Records) -> Iterator[Violation]:
    """Every drawer pulse, inside a receipt or not, is judged against the sale it belongs to (`drawer_owner`).
    Fine: a cash sale's pulse; a card sale's pulse at or after the terminal approved a payment the acquirer
    holds for that sale. A violation: a card sale whose payment is not held (declined, reversed, never made;
    the incident with the drawer open), and a pulse *before* the approval even if the payment settled later
    (kicked at tender, before the terminal's result): the till opened the drawer on money it did not have
    yet, and under a fault it would have stayed open for money never taken."""
    receipts = {r.index: r for r in rec.receipts}
    for kick in rec.drawer or []:
        sale = drawer_owner(kick, rec.sales, receipts)
        receipt = receipts.get(kick.receipt) if kick.receipt is not None else None
        tender = sale.tender if sale is not None else (receipt.tender if receipt is not None else "card")
        if tender == "cash":
            continue
        payment = _sale_payment(rec, sale, receipt)
        evidence = _evidence(receipt) if receipt is not None else ()
        what = f"sale {sale.sale_id} ({_money(sale.amount)})" if sale is not None else "a card payment"
        if payment is None:
            held = [p for p in rec.payments if sale is None or p.amount == sale.amount]
            states = ", ".join(f"{p.ref}={p.state}" for p in held) or "no payment of that amount"
            yield Violation("I5", f"drawer opened {kick.where}{_at(kick, sale)} for card {what} but the acquirer "
                                  f"holds no payment for it ({states})",
                            payment=held[0].ref if held else "", receipt=kick.receipt, evidence=evidence)
            continue
        approved = _approved_at(rec, payment)
        if kick.t is not None and approved is not None and kick.t + CLOCK_SLACK < approved:
            yield Violation("I5", f"drawer opened {kick.where} {approved - kick.t:.3f} s before the terminal "
                                  f"approved payment {payment.ref} of card {what}: opened on money not yet held",
                            payment=payment.ref, receipt=kick.receipt, evidence=evidence)


CLOCK_SLACK = 0.001      # seconds: the terminal journal keeps times to the millisecond


def drawer_owner(kick: DrawerKick, sales: list[Sale], receipts: Mapping[int, PrintedReceipt]) -> Sale | None:
    """The sale a drawer pulse belongs to. By time when the pulse and the sales have times: the sale whose
    window holds it (from its start to the next sale's start; a pulse before the first sale belongs to the
    first, e.g. a drawer kicked at tender before the till journaled the sale). Otherwise by the receipt that
    holds it (the sale of that tender and amount), else the only sale, else the newest. None without sales."""
    if not sales:
        return None
    timed = [s for s in sales if s.started is not None]
    if kick.t is not None and timed and len(timed) == len(sales):
        ordered = sorted(sales, key=lambda s: s.started)
        owner = ordered[0]
        for s in ordered:
            if s.started <= kick.t:
                owner = s
        return owner
    receipt = receipts.get(kick.receipt) if kick.receipt is not None else None
    if receipt is not None:
        hit = next((s for s in sales if s.tender == receipt.tender and s.amount == receipt.amount), None)
        if hit is not None:
            return hit
    return sales[-1]


def _window(sales: list[Sale], sale: Sale) -> tuple[float | None, float | None]:
    """(start, end) of a sale's time window: from its start to the next sale's start."""
    if sale.started is None:
        return None, None
    later = [s.started for s in sales if s.started is not None and s.started > sale.started]
    return sale.started, min(later, default=None)


def _sale_payment(rec: Records, sale: Sale | None, receipt: PrintedReceipt | None) -> Payment | None:
    """The money-holding payment of the sale a pulse belongs to: of the sale's amount, approved in its window
    when every such payment's approval time is known; without a sale, the payment the pulse's receipt paid, else
    the newest held one."""
    held = [p for p in rec.payments if p.holds_money]
    if sale is not None:
        same = [p for p in held if p.amount == sale.amount]
        start, end = _window(rec.sales, sale)
        approved = [_approved_at(rec, p) for p in same]
        if start is not None and all(t is not None for t in approved):      # an offline advice may come late
            same = [p for p, t in zip(same, approved, strict=True)
                    if t + CLOCK_SLACK >= start and (end is None or t < end)]
        return same[0] if same else None
    if receipt is not None:
        return rec.pairs.get(receipt.index)
    return held[-1] if held else None


def _approved_at(rec: Records, payment: Payment) -> float | None:
    """When the payment was approved as the till could first know it: the terminal's journal (approval time of
    the entry with the payment's STAN, or auth code and amount), else the acquirer's booking of an online
    payment; None when nobody recorded a time (no check of the order then)."""
    for e in rec.journal:
        if e.approved_at is None:
            continue
        if (payment.stan and e.stan == payment.stan) or (e.auth_code and e.auth_code == payment.auth_code
                                                            and e.amount == payment.amount):
            return e.approved_at
    return None if payment.offline else payment.t


def _at(kick: DrawerKick, sale: Sale | None) -> str:
    if kick.t is None or sale is None or sale.started is None:
        return ""
    return f" {kick.t - sale.started:.3f} s after the sale began"


@invariant("I6", "offline approvals printed as offline", needs=("receipts", "payments"))
def _offline_printed_as_offline(rec: Records) -> Iterator[Violation]:
    for r in rec.receipts:
        p = rec.pairs.get(r.index)
        if p is None:
            continue
        journal_offline = any(e.offline and (e.host_ref == p.ref or (e.auth_code and e.auth_code == p.auth_code))
                              for e in rec.journal)
        is_offline = p.offline or journal_offline
        if is_offline and not r.offline:
            yield Violation("I6", "offline approval printed without saying offline", payment=p.ref,
                            receipt=r.index)
        if r.offline and not is_offline:
            yield Violation("I6", "receipt says offline but the payment was approved online", payment=p.ref,
                            receipt=r.index)


@invariant("I7", "the till's word to the cashier agrees with the acquirer and the printer",
           needs=("sales", "payments", "receipts"))
def _tills_word(rec: Records) -> Iterator[Violation]:
    yield from till_word(rec.sales, rec.payments, rec.receipts)


def select(only: Iterable[str] | None = None, skip: Iterable[str] = ()) -> list[Invariant]:
    """The invariants to check, in registry order: `only` these (default: all), minus `skip`.

    >>> [i.name for i in select(["I3", "I1"])]
    ['I1', 'I3']
    """
    only = None if only is None else list(only)
    skip = list(skip)
    unknown = [n for n in [*(only or []), *skip] if n not in REGISTRY]
    if unknown:
        raise UnknownInvariant(f"unknown invariant(s) {', '.join(map(repr, unknown))}: the oracle checks "
                               f"{', '.join(REGISTRY)} (see harness/acceptance/oracle.py)")
    return [inv for name, inv in REGISTRY.items() if (only is None or name in only) and name not in skip]


def reconcile(payments: Iterable[Payment], journal: Iterable[JournalEntry], receipts: Iterable[PrintedReceipt],
              sales: Iterable[Sale] = (), evidence_dir: Path | None = None,
              known_pans: Iterable[str] = PANS, *, only: Iterable[str] | None = None, skip: Iterable[str] = (),
              unavailable: Mapping[str, str] | None = None, expect: Iterable[Any] = (),
              drawer: Iterable[DrawerKick] | None = None) -> Reconciliation:
    """Check the invariants (all registered by default: I1-I6 and any added) over the three records plus the
    till's own sales. Call only once the bench is quiet.

    `only`/`skip` select invariants by name; `unavailable` names records nobody kept ({"receipts": "the test
    used no printer"}): the invariants reading them are reported as not checked rather than judged on nothing.
    `expect`: a test's expected outcomes (`harness.acceptance.expectations`), checked on the same records.
    `drawer`: every drawer pulse the printer executed; by default the `drawer` of `receipts` when it is a
    `PrintedReceipts` (what `records.printed_receipts` returns), else counted off the receipts (no times).
    """
    if drawer is None:
        drawer = getattr(receipts, "drawer", None)
    rec = Records(list(payments), list(journal), list(receipts), list(sales), evidence_dir, tuple(known_pans),
                  None if drawer is None else list(drawer))
    unavailable = dict(unavailable or {})
    result = Reconciliation()
    for inv in select(only, skip):
        missing = [unavailable[n] for n in inv.needs if n in unavailable]
        if missing:
            result.not_checked[inv.name] = "; ".join(missing)
            continue
        result.checked.append(inv.name)
        result.violations.extend(inv.check(rec))
    for expectation in expect:
        result.violations.extend(expectation.violations(rec, unavailable))
    result.matches = sorted((i, p.ref) for i, p in rec.pairs.items())
    result.drawer_pulses = len(rec.drawer or [])
    return result


def till_word(sales: Iterable[Sale], payments: Iterable[Payment], receipts: Iterable[PrintedReceipt]) -> list[
        Violation]:
    """I7: each card sale's final status, receipt, drawer and offline flags, as the till told the cashier,
    against what the acquirer holds and what the printer printed. A cashier who reads "failed" while the money
    is held takes it twice; one who reads "paid" while nothing is held hands the goods over for free."""
    held = [p for p in payments if p.holds_money]
    found: list[Violation] = []
    card = [s for s in sales if s.tender == "card" and s.status]
    for s in card:                                     # "paid" sales claim the held payments first
        if s.status != "paid":
            continue
        hit = next((p for p in held if p.amount == s.amount), None)
        if hit is None:
            found.append(Violation("I7", f"till says sale {s.sale_id} is paid ({_money(s.amount)}) but the acquirer "
                                         "holds no such payment: the goods went for free"))
            continue
        held.remove(hit)
        if s.offline is not None and bool(s.offline) != hit.offline:
            found.append(Violation("I7", f"till says sale {s.sale_id} was approved "
                                         f"{'offline' if s.offline else 'online'}, the acquirer booked it "
                                         f"{'offline' if hit.offline else 'online'}", payment=hit.ref))
    for s in card:
        if s.status in NOT_CHARGED:
            hit = next((p for p in held if p.amount == s.amount), None)
            if hit is not None:
                held.remove(hit)
                found.append(Violation("I7", f"till says sale {s.sale_id} {s.status} but the acquirer holds "
                                             f"{_money(s.amount)} ({hit.state}): the cashier would take the money "
                                             "twice", payment=hit.ref))
            if s.drawer_opened:
                found.append(Violation("I7", f"till says sale {s.sale_id} {s.status} yet opened the drawer"))
    printed = Counter(r.amount for r in receipts if r.kind in ("sale", "copy"))
    for s in sales:
        if s.receipt == "printed" and s.status == "paid":
            if printed.get(s.amount, 0) > 0:
                printed[s.amount] -= 1
            else:
                found.append(Violation("I7", f"till says the receipt of sale {s.sale_id} ({_money(s.amount)}) "
                                             "was printed, but no such receipt came out of the printer"))
    return found


# I4's evidence scan. Files are read once as bytes; one compiled regex finds every run of 13+ digits (single spaces
# or dashes between them, as receipts print card numbers), and only those runs are looked at further.
CARD_RUN = re.compile(rb"[0-9](?:[ -]?[0-9]){12,}")
CAPTURE_SUFFIXES = (".pcapng", ".pcap")             # protocol bytes: fields glue into long digit runs
SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db")    # also -wal / -journal files: raw bytes, known cards only
SKIP_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".gz", ".zip", ".xz", ".zst")   # pixels / compressed bytes


@lru_cache(maxsize=8)
def _known(known_pans: tuple[str, ...]) -> tuple[tuple[str, ...], re.Pattern[bytes] | None]:
    """The known card numbers as digit strings, and one regex for them as packed BCD (odd lengths F-padded)."""
    digits = tuple(dict.fromkeys("".join(ch for ch in pan if ch.isdigit()) for pan in known_pans))
    bcd = [bytes.fromhex(d if len(d) % 2 == 0 else d + "F") for d in digits if d]
    return digits, (re.compile(b"|".join(re.escape(b) for b in bcd)) if bcd else None)


def scan_evidence(folder: Path, known_pans: Iterable[str] = PANS,
                  since: float | None = None) -> list[tuple[Path, list[str]]]:
    """Evidence files under `folder` that contain a card number in clear, each with the numbers found (masked).

    - every file but images and compressed files: the known test cards (`harness.core.cards.PANS`) as ASCII
      digits (also glued to other digits, as in an ISO 8583 message) and, in binary files, as packed BCD;
    - any Luhn-valid 13-19 digit number, also printed in groups (4111 1111 1111 1111, 4111-1111-...), not
      glued to a mask character or a letter (then it is part of a masked number, 411111******1111, or of a hex
      string such as a digest), in every file but packet captures (protocol fields glue into long digit runs
      that pass Luhn by chance; the link engine masks card numbers as it captures) and the raw bytes of SQLite
      files, whose every cell is read instead (adjacent columns glue the same way in the file).
    `since` (epoch seconds): only files modified since then (the files a scenario wrote).
    """
    digits, bcd = _known(tuple(known_pans))
    found = []
    for path in _files(folder):
        name = path.name.lower()
        suffix = path.suffix.lower()
        if suffix in SKIP_SUFFIXES:
            continue
        try:
            if since is not None and path.stat().st_mtime < since:
                continue
            data = path.read_bytes()
        except OSError:
            continue
        sqlite = suffix in SQLITE_SUFFIXES or any(f"{s}-" in name for s in SQLITE_SUFFIXES)
        generic = not sqlite and suffix not in CAPTURE_SUFFIXES
        pans: set[str] = set()
        runs = False
        if bcd is not None and b"\0" in data and bcd.search(data):
            pans |= {mask_pan(d) for d in digits if bytes.fromhex(d if len(d) % 2 == 0 else d + "F") in data}
        for m in CARD_RUN.finditer(data):
            runs = True
            run = m.group().decode("ascii")
            plain = run.replace(" ", "").replace("-", "")
            pans |= {mask_pan(d) for d in digits if d in plain}
            if generic and not _glued(data, m.start(), m.end()):
                pans |= _card_like(find_unmasked_pans(run))
        if suffix in SQLITE_SUFFIXES and (runs or _wal_has_runs(path)):    # no digit run: no cell holds one
            pans |= _sqlite_pans(path)
        if pans:
            found.append((path, sorted(pans)))
    return found


def _card_like(pans: Iterable[str]) -> set[str]:
    """Luhn-valid runs that can be card numbers: none starts with 0 (ISO/IEC 7812's major industry identifier 0
    is no card scheme's), while a run of zeros (an empty amount or total field) passes Luhn.

    >>> sorted(_card_like(["000000******0000", "411111******1111"]))
    ['411111******1111']
    """
    return {p for p in pans if not p.startswith("0")}


def _files(folder: Path) -> list[Path]:
    """Every regular file under `folder`, sorted (one scandir per directory, no stat per file)."""
    out: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return out
    for e in entries:
        if e.is_dir(follow_symlinks=False):
            out += _files(Path(e.path))
        elif e.is_file(follow_symlinks=False):
            out.append(Path(e.path))
    return sorted(out)


def _wal_has_runs(path: Path) -> bool:
    try:
        return CARD_RUN.search(path.with_name(path.name + "-wal").read_bytes()) is not None
    except OSError:
        return False


def _glued(data: bytes | str, start: int, end: int) -> bool:
    """A digit run glued to a mask character is the visible part of a masked number (411111******1111, or the
    fields after it in a message dump); one glued to a letter is part of a hex string (a digest, a dump), where
    16 digits in a row pass Luhn by chance. Neither is a card number in clear."""
    before, after = data[max(0, start - 1):start], data[end:end + 1]
    if isinstance(data, bytes):
        before, after = before.decode("latin-1"), after.decode("latin-1")
    return any(ch == "*" or ch.isascii() and ch.isalpha() for ch in before + after)


_TEXT_RUN = re.compile(r"\d(?:[ -]?\d){12,}")


def _sqlite_pans(path: Path) -> set[str]:
    """Card numbers in clear in any cell of a SQLite file, each cell on its own. Read-only, and creates no file
    beside it: a database still open by its writer (its -wal and -shm beside it) is read with its WAL, any other
    (or one that cannot be read so) immutable, without its WAL (whose raw bytes are searched for the known cards)."""
    live = all(path.with_name(path.name + end).exists() for end in ("-wal", "-shm"))   # else ro would make -shm
    for mode in (("mode=ro", "immutable=1") if live else ("immutable=1",)):
        try:
            return _cells_pans(path, mode)
        except sqlite3.Error:
            log.debug("SQLite evidence %s could not be read (%s)", path, mode, exc_info=True)
    return set()


def _cells_pans(path: Path, mode: str) -> set[str]:
    pans: set[str] = set()
    db = sqlite3.connect(f"{path.resolve().as_uri()}?{mode}", uri=True, timeout=1.0)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            quoted = table.replace('"', '""')
            for row in db.execute(f'SELECT * FROM "{quoted}"'):
                for cell in row:
                    if isinstance(cell, int) and cell >= 10 ** 12:
                        cell = str(cell)
                    if isinstance(cell, str) and len(cell) >= 13:
                        for m in _TEXT_RUN.finditer(cell):
                            if not _glued(cell, m.start(), m.end()):
                                pans |= _card_like(find_unmasked_pans(m.group()))
    finally:
        db.close()
    return pans


def _money(minor: int | None) -> str:
    return "an unknown amount" if minor is None else f"{minor // 100}.{minor % 100:02d}"

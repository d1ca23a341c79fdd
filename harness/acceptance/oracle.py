"""The settlement oracle: reconciles the acquirer's ledger, the terminal's journal and the printed receipts.

It works on plain records, so it does not care whether they came from emulators or from a physical bench:

>>> result = reconcile(payments=[...], journal=[...], receipts=[...], sales=[...], evidence_dir=path)  # doctest: +SKIP
>>> result.ok, [v.invariant for v in result.violations]                                               # doctest: +SKIP

Invariants (checked once the bench is quiet: stored reversals delivered, faults cleared):
- I1 no sale receipt without a settled payment of that amount (THE incident);
- I2 no settled payment without its sale receipt, unless reversed (money taken without a sale);
- I3 at most one charge per sale;
- I4 receipts and evidence show masked card numbers only;
- I5 no drawer pulse for an unsettled card payment;
- I6 offline approvals printed as offline (and nothing printed as offline that was online);
- I7 what the till tells the cashier agrees with the money: "paid" only when the acquirer holds the payment,
  never "failed"/"declined"/"cancelled" while it does, "printed" only when a receipt came out, "offline" only
  for an offline approval.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.core.cards import PANS
from harness.core.masking import find_unmasked_pans, mask_pan

INVARIANTS = {
    "I1": "no sale receipt without a settled payment of that amount",
    "I2": "no settled payment without its sale receipt unless reversed",
    "I3": "at most one charge per sale",
    "I4": "receipts and evidence show masked card numbers only",
    "I5": "no drawer pulse for an unsettled card payment",
    "I6": "offline approvals printed as offline",
    "I7": "the till's word to the cashier agrees with the acquirer and the printer",
}
NOT_CHARGED = ("failed", "declined", "cancelled")      # the till's words for "the customer has not paid"
HOLDS_MONEY = ("approved", "settled")          # ledger states in which the acquirer holds the customer's money


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


@dataclass(frozen=True)
class Violation:
    invariant: str
    message: str
    payment: str = ""
    receipt: int | None = None
    evidence: tuple[str, ...] = ()

    def __str__(self) -> str:
        where = []
        if self.payment:
            where.append(f"payment {self.payment}")
        if self.receipt is not None:
            where.append(f"receipt #{self.receipt}")
        if self.evidence:
            where.append("evidence: " + ", ".join(self.evidence))
        return f"{self.invariant} ({INVARIANTS[self.invariant]}): {self.message}" + (
            f" [{'; '.join(where)}]" if where else "")


@dataclass
class Reconciliation:
    """What the oracle found: the violations (none = every invariant holds) and which receipt paid which payment."""

    violations: list[Violation] = field(default_factory=list)
    matches: list[tuple[int, str]] = field(default_factory=list)     # (receipt index, payment ref)

    @property
    def ok(self) -> bool:
        return not self.violations

    def of(self, invariant: str) -> list[Violation]:
        return [v for v in self.violations if v.invariant == invariant]

    def to_dict(self) -> dict:
        return {"ok": self.ok, "violations": [asdict(v) | {"text": str(v)} for v in self.violations],
                "matches": [{"receipt": r, "payment": p} for r, p in self.matches]}

    def __str__(self) -> str:
        if self.ok:
            return "oracle: all invariants hold"
        return "oracle: " + "\n".join(str(v) for v in self.violations)


def _match_receipts(receipts: list[PrintedReceipt], payments: list[Payment]) -> dict[int, Payment]:
    """Pair each card sale receipt with one money-holding payment: by auth code first, then by amount."""
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
    return pairs


def reconcile(payments: Iterable[Payment], journal: Iterable[JournalEntry], receipts: Iterable[PrintedReceipt],
              sales: Iterable[Sale] = (), evidence_dir: Path | None = None,
              known_pans: Iterable[str] = PANS) -> Reconciliation:
    """Check I1-I6 over the three records (plus the till's own sales). Call only once the bench is quiet."""
    payments, journal, receipts, sales = list(payments), list(journal), list(receipts), list(sales)
    result = Reconciliation()
    add = result.violations.append
    pairs = _match_receipts(receipts, payments)

    holding = [p for p in payments if p.holds_money]
    for r in receipts:                                                         # I1 (copies)
        if r.kind == "copy" and r.tender == "card":
            hit = next((p for p in holding if p.amount == r.amount and (not r.auth_code or not p.auth_code
                                                                          or p.auth_code == r.auth_code)), None)
            if hit:
                pairs[r.index] = hit
            else:
                add(Violation("I1", f"receipt copy for {_money(r.amount)} but the acquirer holds no such payment",
                              receipt=r.index, evidence=(r.evidence,) if r.evidence else ()))
    for r in receipts:                                                         # I1
        if r.kind == "sale" and r.tender == "card" and r.index not in pairs:
            held = [p for p in payments if p.amount == r.amount]
            states = ", ".join(f"{p.ref}={p.state}" for p in held) or "no payment of that amount at all"
            add(Violation("I1", f"sale receipt for {_money(r.amount)} but the acquirer holds no such payment "
                                f"({states})", payment=held[0].ref if held else "", receipt=r.index,
                          evidence=(r.evidence,) if r.evidence else ()))

    matched = {p.ref for p in pairs.values()}
    for p in payments:                                                         # I2
        if p.holds_money and p.ref not in matched:
            add(Violation("I2", f"acquirer holds {_money(p.amount)} ({p.state}) but no sale receipt was printed "
                                f"for it", payment=p.ref))

    held_by_amount = Counter(p.amount for p in payments if p.holds_money)      # I3
    card_sales = [s for s in sales if s.tender == "card"]
    sales_by_amount = Counter(s.amount for s in card_sales)
    for amount, n in held_by_amount.items():
        allowed = sales_by_amount.get(amount, 0) if card_sales else 1
        if n > max(allowed, 1):
            refs = [p.ref for p in payments if p.holds_money and p.amount == amount]
            add(Violation("I3", f"{n} charges of {_money(amount)} held by the acquirer for {allowed} sale(s) "
                                f"of that amount", payment=", ".join(refs)))

    for r in receipts:                                                         # I4 (receipts)
        for pan in find_unmasked_pans(r.text):
            add(Violation("I4", f"receipt shows an unmasked card number ({pan})", receipt=r.index,
                          evidence=(r.evidence,) if r.evidence else ()))
    if evidence_dir is not None:                                               # I4 (evidence files)
        for path, pans in scan_evidence(Path(evidence_dir), known_pans):
            add(Violation("I4", f"evidence file shows {len(pans)} unmasked card number(s) ({pans[0]})",
                          evidence=(str(path),)))

    for r in receipts:                                                         # I5
        if r.drawer_pulses and r.tender == "card" and r.index not in pairs:
            add(Violation("I5", f"drawer opened {r.drawer_pulses}x on a card receipt whose payment is not settled",
                          receipt=r.index, evidence=(r.evidence,) if r.evidence else ()))

    offline_refs = {p.ref for p in payments if p.offline and p.holds_money}    # I6
    offline_refs |= {e.host_ref or e.trace for e in journal if e.offline and e.result == "approved"}
    for r in receipts:
        p = pairs.get(r.index)
        if p is None:
            continue
        journal_offline = any(e.offline and (e.host_ref == p.ref or (e.auth_code and e.auth_code == p.auth_code))
                              for e in journal)
        is_offline = p.offline or journal_offline
        if is_offline and not r.offline:
            add(Violation("I6", "offline approval printed without saying offline", payment=p.ref, receipt=r.index))
        if r.offline and not is_offline:
            add(Violation("I6", "receipt says offline but the payment was approved online", payment=p.ref,
                          receipt=r.index))
    result.violations += till_word(sales, payments, receipts)                  # I7
    result.matches = sorted((i, p.ref) for i, p in pairs.items())
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


TEXT_SUFFIXES = (".txt", ".json", ".jsonl", ".html", ".log", ".csv", ".xml", ".md", ".yaml")


def scan_evidence(folder: Path, known_pans: Iterable[str] = PANS) -> list[tuple[Path, list[str]]]:
    """Evidence files under `folder` that contain a card number in clear.

    Every file (pcapng, SQLite and images included) is searched for every card number of the one test-card table
    (`harness.core.cards.PANS`), as ASCII digits and as packed BCD; text files are also searched for any
    Luhn-valid 13-19 digit number, so a card posrig does not know is caught too.
    """
    needles = []
    for pan in known_pans:
        digits = "".join(ch for ch in pan if ch.isdigit())
        needles.append((digits, digits.encode()))
        if len(digits) % 2 == 0:
            needles.append((digits, bytes.fromhex(digits)))
    found = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        pans = sorted({mask_pan(d) for d, needle in needles if needle in data})
        if path.suffix in TEXT_SUFFIXES:
            pans = sorted(set(pans) | set(find_unmasked_pans(data.decode("utf-8", "replace"))))
        if pans:
            found.append((path, pans))
    return found


def _money(minor: int | None) -> str:
    return "an unknown amount" if minor is None else f"{minor // 100}.{minor % 100:02d}"

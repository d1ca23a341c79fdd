"""What a test expects beyond the invariants, in one line of the matrix's words.

Clauses are separated by commas or semicolons; each is checked on the oracle's records once the bench is quiet:

>>> [e.text for e in parse("not charged, no sale receipt")]
['not charged', 'no sale receipt']
>>> [e.text for e in parse("sale completes; the till says paid")]
['sale completes', 'the till says paid']
>>> parse("charged thrice")
Traceback (most recent call last):
...
harness.acceptance.expectations.ExpectationError: cannot read expectation 'charged thrice'; say one of: ...

The words: "not charged" (or "the acquirer holds nothing"), "charged once|twice|N times", "no|one|two|N sale
receipt(s)" (sale receipts and their copies), "no|one|N receipt(s)" (anything printed), "no|one|N reversal(s)",
"(the till says) paid|declined|cancelled|failed" (the till's last sale), "every sale paid|...", and "sale
completes" (charged once, one sale receipt, the till says paid).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from harness.acceptance.oracle import EXPECTED, Records, Violation

NUMBERS = {"no": 0, "none": 0, "zero": 0, "one": 1, "a": 1, "once": 1, "two": 2, "twice": 2, "three": 3}
_N = r"(no|none|zero|one|a|two|three|\d+)"
STATUSES = ("paid", "declined", "cancelled", "failed", "unknown")


class ExpectationError(ValueError):
    """An expectation in words posrig cannot read; the message lists the words it can."""


@dataclass(frozen=True)
class Expectation:
    """One clause: its text, the records it reads, and what it checks (None = met, else what was seen)."""

    text: str
    needs: tuple[str, ...]
    seen_instead: Callable[[Records], str | None]

    def violations(self, rec: Records, unavailable: Mapping[str, str] | None = None) -> list[Violation]:
        missing = [why for need, why in (unavailable or {}).items() if need in self.needs]
        if missing:
            return [Violation(EXPECTED, f"cannot check {self.text!r}: {'; '.join(missing)}")]
        seen = self.seen_instead(rec)
        return [] if seen is None else [Violation(EXPECTED, f"expected {self.text}, but {seen}")]


def _count(word: str) -> int:
    return NUMBERS[word] if word in NUMBERS else int(word)


def _held(rec: Records) -> list:
    return [p for p in rec.payments if p.holds_money]


def _charged(n: int) -> Callable[[Records], str | None]:
    def check(rec: Records) -> str | None:
        held = _held(rec)
        if len(held) == n:
            return None
        states = ", ".join(f"{p.ref}={p.state}" for p in rec.payments) or "none booked"
        return f"the acquirer holds {len(held)} payment(s) (ledger: {states})"
    return check


def _receipts(n: int, sale_only: bool) -> Callable[[Records], str | None]:
    def check(rec: Records) -> str | None:
        found = [r for r in rec.receipts if r.kind in ("sale", "copy")] if sale_only else rec.receipts
        if len(found) == n:
            return None
        kinds = ", ".join(f"#{r.index} {r.kind}" for r in rec.receipts) or "nothing"
        return f"{len(found)} {'sale ' if sale_only else ''}receipt(s) came out (printed: {kinds})"
    return check


def _reversals(n: int) -> Callable[[Records], str | None]:
    def check(rec: Records) -> str | None:
        found = [p for p in rec.payments if p.state == "reversed"]
        return None if len(found) == n else f"the acquirer has {len(found)} reversed payment(s)"
    return check


def _till_says(status: str, every: bool) -> Callable[[Records], str | None]:
    def check(rec: Records) -> str | None:
        if not rec.sales:
            return "the till reports no sale"
        judged = rec.sales if every else rec.sales[-1:]
        wrong = [s for s in judged if s.status != status]
        return None if not wrong else "the till says " + ", ".join(f"{s.sale_id} {s.status}" for s in wrong)
    return check


def _all_of(*checks: Callable[[Records], str | None]) -> Callable[[Records], str | None]:
    def check(rec: Records) -> str | None:
        seen = [s for s in (c(rec) for c in checks) if s]
        return "; ".join(seen) if seen else None
    return check


# (pattern, records needed, check built from the match)
_PHRASES: list[tuple[str, tuple[str, ...], Callable[[re.Match], Callable[[Records], str | None]]]] = [
    (r"not charged|no charge|nothing charged|the acquirer holds nothing", ("payments",), lambda m: _charged(0)),
    (r"charged (once|twice|(\d+) times)", ("payments",),
     lambda m: _charged(int(m[2]) if m[2] else _count(m[1]))),
    (rf"{_N} sale receipts?", ("receipts",), lambda m: _receipts(_count(m[1]), sale_only=True)),
    (rf"{_N} receipts?", ("receipts",), lambda m: _receipts(_count(m[1]), sale_only=False)),
    (rf"{_N} reversals?", ("payments",), lambda m: _reversals(_count(m[1]))),
    (rf"(?:the till says )?({'|'.join(STATUSES)})", ("sales",), lambda m: _till_says(m[1], every=False)),
    (rf"every sale ({'|'.join(STATUSES)})", ("sales",), lambda m: _till_says(m[1], every=True)),
    (r"sale completes", ("payments", "receipts", "sales"),
     lambda m: _all_of(_charged(1), _receipts(1, sale_only=True), _till_says("paid", every=False))),
]
SAYABLE = ("not charged | the acquirer holds nothing | charged once|twice|N times | no|one|N sale receipt(s) | "
           "no|one|N receipt(s) | no|one|N reversal(s) | (the till says) paid|declined|cancelled|failed | "
           "every sale paid|... | sale completes")


def parse(text: str | Iterable[str]) -> list[Expectation]:
    """Expectations from one line ("not charged, no sale receipt") or several; raises ExpectationError."""
    lines = [text] if isinstance(text, str) else list(text)
    out = []
    for clause in (c.strip() for line in lines for c in re.split(r"[,;]", line)):
        if not clause:
            continue
        said = re.sub(r"\s+", " ", clause.lower())
        for pattern, needs, build in _PHRASES:
            m = re.fullmatch(pattern, said)
            if m:
                out.append(Expectation(clause, needs, build(m)))
                break
        else:
            raise ExpectationError(f"cannot read expectation {clause!r}; say one of: {SAYABLE}")
    return out

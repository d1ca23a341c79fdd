"""Read the oracle's records off a bench, typed: the host ledger, the terminal journal, the printed receipts, the
till's own sales. Each reader tolerates a device that keeps no such record (a physical terminal has no journal).

Receipts are read from the printer's typed `Receipt` (harness.protocols.escpos.receipt), line by line: the
amounts come as the decoder found them (`line_amounts()`), labelled fields ("Auth code", "Trace") from the
receipt's two-column lines, the image from the files the printer journal wrote (`receipt.files`). Nothing is
joined into text and parsed back.

>>> read_receipt(receipt).amount, read_receipt(receipt).auth_code        # doctest: +SKIP
(488, 'A1B2C3')
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from harness.acceptance.oracle import DrawerKick, JournalEntry, Payment, PrintedReceipt, PrintedReceipts, Sale
from harness.core.events import Event


@dataclass(frozen=True)
class ReceiptWords:
    """How a receipt says what it is: words in its lines, in the till's wording (a vendor's can be added)."""

    not_a_sale: tuple[str, ...] = ("DECLINED", "CANCELLED", "CANCELED", "VOID", "VOIDED", "NOT PAID", "FAILED",
                                   "ABORTED", "REFUSED")
    copy: tuple[str, ...] = ("COPY", "REPRINT", "DUPLICATE")
    offline: tuple[str, ...] = ("OFFLINE",)
    total: tuple[str, ...] = ("TOTAL",)
    cash: tuple[str, ...] = ("CASH",)
    auth_code: tuple[str, ...] = ("AUTH CODE", "AUTHORISATION CODE", "AUTHORIZATION CODE", "AUTH NO", "AUTH")
    trace: tuple[str, ...] = ("TRACE", "TRACE NO")


WORDS = ReceiptWords()
_COLUMNS = re.compile(r"\s{2,}|:\s+")            # "Auth code      A1B2C3" / "Auth code: A1B2C3"


def _has_word(line: str, words: tuple[str, ...]) -> bool:
    upper = line.upper()
    return any(re.search(rf"\b{re.escape(w)}\b", upper) for w in words)


def _starts_with(line: str, words: tuple[str, ...]) -> bool:
    upper = line.strip().upper()
    return any(re.match(rf"{re.escape(w)}\b", upper) for w in words)


def _fields(lines: list[str]) -> dict[str, str]:
    """Two-column lines as {LABEL: value}: the receipt's own layout of label on the left, value on the right."""
    out: dict[str, str] = {}
    for line in lines:
        parts = [p for p in _COLUMNS.split(line.strip(), maxsplit=1) if p]
        if len(parts) == 2:
            out.setdefault(parts[0].strip().upper(), parts[1].strip())
    return out


def _cents(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value())


def read_receipt(receipt: Any, index: int | None = None, words: ReceiptWords = WORDS) -> PrintedReceipt:
    """One typed printer receipt as the oracle reads it."""
    lines: list[str] = list(receipt.lines)
    if any(_has_word(line, words.not_a_sale) for line in lines):
        kind = "declined"
    elif any(_has_word(line, words.copy) for line in lines):
        kind = "copy"
    else:
        kind = "sale"
    tender = "cash" if any(_starts_with(line, words.cash) for line in lines) else "card"
    total = next((a for label, a in receipt.line_amounts() if _starts_with(label, words.total)), None)
    fields = _fields(lines)
    auth = next((fields[w] for w in words.auth_code if w in fields), "")
    trace = next((fields[w] for w in words.trace if w in fields), "")
    files = getattr(receipt, "files", {}) or {}
    return PrintedReceipt(index=receipt.index if index is None else index, kind=kind,
                          amount=_cents(total) if total is not None else None, text="\n".join(lines),
                          auth_code="" if auth in ("-", "") else auth.split()[0],
                          offline=any(_has_word(line, words.offline) for line in lines),
                          drawer_pulses=len(getattr(receipt, "drawer_pulses", []) or []), tender=tender,
                          trace="" if trace in ("-", "") else trace.split()[0],
                          evidence=str(files.get("png", "")))


def printed_receipts(printer: Any, words: ReceiptWords = WORDS) -> PrintedReceipts:
    """Every receipt the printer completed, in order, with every drawer pulse it executed (`.drawer`: inside a
    receipt or outside any, each with its time). A printer that keeps no drawer events (`drawer_events`) leaves
    `.drawer` None: the oracle then counts the pulses off the receipts."""
    receipts = [read_receipt(r, i, words) for i, r in enumerate(getattr(printer, "receipts", []) or [])]
    events = getattr(printer, "drawer_events", None)
    return PrintedReceipts(receipts, None if events is None else drawer_kicks(events))


def drawer_timeline(printer: Any) -> list[Event]:
    """The printer's drawer pulses as timeline events (for `scenario.bench_events`)."""
    out = []
    for d in getattr(printer, "drawer_events", None) or []:
        where = f"in receipt #{d.receipt}" if d.inside_receipt else "outside any receipt"
        out.append(Event(t=d.t, source="printer", what=f"drawer pulse pin {d.pin} ({d.command}) {where}"))
    return out


def drawer_kicks(events: Any) -> list[DrawerKick]:
    """The printer's drawer events (`harness.protocols.escpos.receipt.DrawerEvent`) as the oracle reads them."""
    return [DrawerKick(t=e.t, receipt=e.receipt, inside_receipt=bool(e.inside_receipt), pin=e.pin) for e in events]


def host_payments(host: Any) -> list[Payment]:
    """Every payment the acquirer booked, as the oracle sees them."""
    ledger = getattr(host, "ledger", None)
    if ledger is None:
        return []
    return [Payment(ref=f"{p.terminal}/{p.stan}", amount=p.amount, state=p.state, stan=p.stan, rrn=p.rrn or "",
                    auth_code=p.auth_code or "", offline=p.kind == "advice", t=getattr(p, "created", None))
            for p in ledger.payments()]


def ledger_rows(host: Any) -> list[dict[str, Any]]:
    """The ledger for the report (card numbers are stored masked)."""
    ledger = getattr(host, "ledger", None)
    if ledger is None:
        return []
    keep = ("id", "mti", "terminal", "stan", "rrn", "auth_code", "code", "amount", "state", "reason")
    return [{k: getattr(p, k) for k in keep} for p in ledger.payments()]


def receipt_rows(receipts: list[PrintedReceipt]) -> list[dict[str, Any]]:
    """The printed receipts for the report: index, kind, text and the PNG."""
    return [{"index": r.index, "kind": r.kind, "text": r.text, "png": r.evidence} for r in receipts]


def terminal_journal(terminal: Any) -> list[JournalEntry]:
    journal = getattr(terminal, "journal", None)
    if journal is None or not hasattr(journal, "transactions"):
        return []
    return [JournalEntry(trace=str(t.get("trace") or ""), amount=int(t.get("amount") or 0),
                         result=str(t.get("state")), auth_code=str(t.get("auth_code") or ""), host_ref="",
                         offline=bool(t.get("offline")), stan=str(t.get("stan") or ""),
                         approved_at=first_time(t.get("history"), "approved"))
            for t in journal.transactions(kind="sale")]


def first_time(history: Any, state: str) -> float | None:
    """When a journal's `history` ([{"t", "state"}], or its JSON) first reached `state`; None if never/unknown."""
    if isinstance(history, str):
        try:
            history = json.loads(history)
        except ValueError:
            return None
    for step in history or []:
        if isinstance(step, dict) and step.get("state") == state and step.get("t") is not None:
            return float(step["t"])
    return None


def sale_started(row: dict[str, Any]) -> float | None:
    """When the till opened a sale of its journal: `created`, else the time of its first event."""
    if row.get("created") is not None:
        return float(row["created"])
    events = row.get("events") or []
    first = events[0] if events and isinstance(events[0], dict) else {}
    return float(first["t"]) if first.get("t") is not None else None


def till_sales(till: Any) -> list[Sale]:
    try:
        rows = till.journal()
    except Exception:  # noqa: BLE001 - a till without a journal still gets the other invariants
        return []
    return [Sale(sale_id=str(r.get("id") or r.get("sale_id")), amount=int(r.get("amount_cents") or 0),
                 tender=str(r.get("tender") or "card"), status=str(r.get("status") or ""),
                 started=sale_started(r)) for r in rows]

"""Read the oracle's records off a bench: the host ledger, the terminal journal, the printed receipts, the till's
own sales. Each reader tolerates a device that keeps no such record (a physical terminal has no journal API)."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from harness.acceptance.oracle import JournalEntry, Payment, PrintedReceipt, Sale

# How a receipt says what it is. A vendor's wording can be added through the till's rig options.
NOT_A_SALE = re.compile(r"\b(DECLINED|CANCELL?ED|VOID(ED)?|NOT PAID|FAILED|ABORTED|REFUSED)\b", re.I)
COPY = re.compile(r"\b(COPY|REPRINT|DUPLICATE)\b", re.I)
TOTAL = re.compile(r"^\s*TOTAL\b[^\d\n]*(\d+[.,]\d{2})", re.I | re.M)
AUTH = re.compile(r"\bAuth(?:orisation|orization)?\.?\s*(?:code|no\.?)?\s*:?\s+([A-Z0-9]{2,12})\b", re.I)
CASH = re.compile(r"^\s*CASH\b", re.I | re.M)
OFFLINE = re.compile(r"\bOFFLINE\b", re.I)


def _cents(text: str) -> int:
    return int((Decimal(text.replace(",", ".")) * 100).to_integral_value())


def host_payments(host: Any) -> list[Payment]:
    """Every payment the acquirer booked, as the oracle sees them."""
    ledger = getattr(host, "ledger", None)
    if ledger is None:
        return []
    return [Payment(ref=f"{p.terminal}/{p.stan}", amount=p.amount, state=p.state, stan=p.stan, rrn=p.rrn or "",
                    auth_code=p.auth_code or "", offline=p.kind == "advice") for p in ledger.payments()]


def ledger_rows(host: Any) -> list[dict[str, Any]]:
    """The ledger for the report (card numbers are stored masked)."""
    ledger = getattr(host, "ledger", None)
    if ledger is None:
        return []
    keep = ("id", "mti", "terminal", "stan", "rrn", "auth_code", "code", "amount", "state", "reason")
    return [{k: getattr(p, k) for k in keep} for p in ledger.payments()]


def terminal_journal(terminal: Any) -> list[JournalEntry]:
    journal = getattr(terminal, "journal", None)
    if journal is None or not hasattr(journal, "transactions"):
        return []
    out = []
    for t in journal.transactions(kind="sale"):
        out.append(JournalEntry(trace=str(t.get("trace") or ""), amount=int(t.get("amount") or 0),
                                result=str(t.get("state")), auth_code=str(t.get("auth_code") or ""),
                                host_ref="", offline=bool(t.get("offline"))))
    return out


def classify(text: str) -> tuple[str, str]:
    """(kind, tender) of a printed receipt from its words."""
    if NOT_A_SALE.search(text):
        kind = "declined"
    elif COPY.search(text):
        kind = "copy"
    else:
        kind = "sale"
    return kind, "cash" if CASH.search(text) else "card"


def printed_receipts(printer: Any, evidence_dir: Path | None = None) -> list[PrintedReceipt]:
    out = []
    for i, r in enumerate(getattr(printer, "receipts", []) or []):
        text = r.text if hasattr(r, "text") else str(r)
        kind, tender = classify(text)
        total = TOTAL.search(text)
        amount = _cents(total.group(1)) if total else None
        auth = AUTH.search(text)
        png = ""
        if evidence_dir is not None:
            found = sorted(Path(evidence_dir).rglob(f"receipt-{i + 1:04d}.png"))
            png = str(found[0]) if found else ""
        out.append(PrintedReceipt(index=i, kind=kind, amount=amount, text=text,
                                  auth_code=auth.group(1) if auth else "", offline=bool(OFFLINE.search(text)),
                                  drawer_pulses=len(getattr(r, "drawer_pulses", []) or []), tender=tender,
                                  evidence=png))
    return out


def till_sales(till: Any) -> list[Sale]:
    try:
        rows = till.journal()
    except Exception:  # noqa: BLE001 - a till without a journal still gets the other invariants
        return []
    return [Sale(sale_id=str(r.get("id") or r.get("sale_id")), amount=int(r.get("amount_cents") or 0),
                 tender=str(r.get("tender") or "card"), status=str(r.get("status") or "")) for r in rows]

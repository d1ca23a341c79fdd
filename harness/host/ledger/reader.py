"""`Ledger`: the ledger as tests, the oracle and `posrig host ledger` see it, from any process (WAL readers).

Besides queries it stores the run-time rules a test sets (`add_rule`, `clear_rules`); the running host reads them
before its next request.

>>> ledger = Ledger("evidence/host-ledger.sqlite")  # doctest: +SKIP
>>> ledger.payment(stan="000123", terminal="T0000001").state  # doctest: +SKIP
'approved'
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from harness.host.behaviour import Rule
from harness.host.ledger.schema import HOLDING, STATES, LedgerError, Payment, connect


class Ledger:
    """Query and control API over a ledger file, usable from any process while the host runs (WAL readers)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._opened_lock = threading.Lock()

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            if not self.path.exists():
                raise LedgerError(
                    f"{self.path}: no ledger file here; start the host with --ledger {self.path}"
                )
            db = connect(self.path)
            db.row_factory = sqlite3.Row
            self._local.db = db
            with self._opened_lock:
                self._opened.append(db)
        return db

    def close(self) -> None:
        """Close the connections this object opened (one per thread that queried)."""
        with self._opened_lock:
            opened, self._opened = self._opened, []
        for db in opened:
            db.close()
        self._local = threading.local()

    # -- payments --------------------------------------------------------------------------------
    def payments(self, state: str | None = None, terminal: str | None = None) -> list[Payment]:
        """Every payment, oldest first, optionally of one state and/or terminal."""
        if state is not None and state not in STATES:
            raise ValueError(f"unknown payment state {state!r}; expected one of {', '.join(STATES)}")
        sql, args = "SELECT * FROM payments WHERE 1=1", []
        if state:
            sql, args = sql + " AND state = ?", [*args, state]
        if terminal:
            sql, args = sql + " AND terminal = ?", [*args, terminal]
        return [Payment(**dict(r)) for r in self._db().execute(sql + " ORDER BY id", args)]

    def payment(
        self, stan: str | None = None, terminal: str | None = None, rrn: str | None = None
    ) -> Payment | None:
        """The payment with this RRN, or the latest with this STAN (and terminal); None if there is none."""
        if rrn is None and stan is None:
            raise ValueError("payment(): give stan (optionally with terminal) or rrn")
        sql, args = "SELECT * FROM payments WHERE 1=1", []
        if rrn is not None:
            sql, args = sql + " AND rrn = ?", [*args, rrn]
        if stan is not None:
            sql, args = sql + " AND stan = ?", [*args, str(stan).zfill(6)]
        if terminal is not None:
            sql, args = sql + " AND terminal = ?", [*args, terminal]
        row = self._db().execute(sql + " ORDER BY id DESC LIMIT 1", args).fetchone()
        return Payment(**dict(row)) if row else None

    def holds_money(
        self, stan: str | None = None, terminal: str | None = None, rrn: str | None = None
    ) -> bool:
        """The oracle's question: does the acquirer hold this payment's money (approved or settled)?"""
        p = self.payment(stan=stan, terminal=terminal, rrn=rrn)
        return p is not None and p.holds_money

    def settled_payments(self, pending: bool = True, terminal: str | None = None) -> list[Payment]:
        """Payments whose money the acquirer keeps: settled, plus (pending=True) approved ones that settle at
        the next cut-over unless reversed first."""
        states = HOLDING if pending else ("settled",)
        return [p for p in self.payments(terminal=terminal) if p.state in states]

    def totals(self, terminal: str | None = None) -> dict[str, dict[str, int]]:
        """Count and amount (minor units) per state, plus 'held' (approved + settled)."""
        out = {s: {"count": 0, "amount": 0} for s in (*STATES, "held")}
        for p in self.payments(terminal=terminal):
            out[p.state]["count"] += 1
            out[p.state]["amount"] += p.amount
            if p.holds_money:
                out["held"]["count"] += 1
                out["held"]["amount"] += p.amount
        return out

    def history(self, payment_id: int) -> list[dict[str, Any]]:
        """The state changes of one payment, oldest first."""
        rows = self._db().execute("SELECT * FROM events WHERE payment_id = ? ORDER BY id", (payment_id,))
        return [dict(r) for r in rows]

    # -- messages --------------------------------------------------------------------------------
    def messages(
        self, direction: str | None = None, mti: str | None = None, stan: str | None = None
    ) -> list[dict[str, Any]]:
        """Every message received (rx) and answered (tx), oldest first; fields decoded, PAN masked."""
        sql, args = "SELECT * FROM messages WHERE 1=1", []
        for col, val in (("direction", direction), ("mti", mti), ("stan", stan)):
            if val is not None:
                sql, args = sql + f" AND {col} = ?", [*args, val]
        out = []
        for r in self._db().execute(sql + " ORDER BY id", args):
            d = dict(r)
            d["fields"] = json.loads(d["fields"]) if d["fields"] else None
            out.append(d)
        return out

    def batches(self) -> list[dict[str, Any]]:
        """Reconciliations (0500) with the host's and the terminal's totals."""
        out = []
        for r in self._db().execute("SELECT * FROM batches ORDER BY id"):
            d = dict(r)
            d["host_totals"] = json.loads(d["host_totals"])
            d["terminal_totals"] = json.loads(d["terminal_totals"]) if d["terminal_totals"] else None
            out.append(d)
        return out

    # -- behaviour control (read by the running host before its next request) --------------------
    def add_rule(self, rule: Rule) -> int:
        """Store a run-time rule; the host applies it from its next request on. Returns the rule id."""
        db = self._db()
        cur = db.execute(
            "INSERT INTO rules (created, rule, remaining) VALUES (?, ?, ?)",
            (time.time(), json.dumps(rule.to_dict()), rule.times),
        )
        return int(cur.lastrowid)

    def clear_rules(self) -> None:
        """Deactivate every run-time rule (the file rules, test cards and magic amounts stay)."""
        self._db().execute("UPDATE rules SET active = 0 WHERE active = 1")

    def rules(self, active_only: bool = True) -> list[dict[str, Any]]:
        sql = "SELECT * FROM rules" + (" WHERE active = 1" if active_only else "") + " ORDER BY id"
        return [{**dict(r), "rule": json.loads(r["rule"])} for r in self._db().execute(sql)]

    def summary(self) -> dict[str, Any]:
        """Everything the oracle and a report need, as JSON-able data."""
        return {
            "ledger": str(self.path),
            "payments": [p.to_dict() for p in self.payments()],
            "totals": self.totals(),
            "batches": self.batches(),
            "messages": len(self._db().execute("SELECT id FROM messages").fetchall()),
        }

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

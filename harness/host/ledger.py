"""The acquirer's ledger: one SQLite file (WAL) holding every message, every payment and every state change.

Durability: the host books a request, its payment change and its answer in one transaction, and sends the
answer only after COMMIT returned. The file is in WAL mode with synchronous=FULL: every commit fsyncs the WAL,
so a booked payment survives SIGKILL of the host *and* a power cut of the machine. (NORMAL+WAL would already
survive SIGKILL, since committed pages sit in the OS cache, but may lose the last commits on power loss: an
acquirer may not.) The cost of the fsync is shared: `Bookkeeper` runs concurrent requests' jobs in one
transaction (group commit), each job inside its own SAVEPOINT so one bad job cannot undo another.

Payment states (one per payment):

    approved   authorised online (field 39 = 00); the acquirer holds the money, it can still be reversed
    declined   refused (any other code); no money moved
    reversed   was approved, then undone by 0400/0420/0421; no money held
    settled    approved and closed by a 0500 reconciliation (cut-over); final, no longer reversible

"Does the acquirer hold this money?" is `Ledger.holds_money(...)`: state approved or settled. Approved
payments settle at the terminal's next cut-over unless reversed first, so `Ledger.settled_payments()` answers
the oracle's question by default (approved + settled; `pending=False` gives only those already cut over).

>>> ledger = Ledger("evidence/host-ledger.sqlite")
>>> ledger.payment(stan="000123", terminal="T0000001").state
'approved'
>>> ledger.totals()["held"]
{'count': 1, 'amount': 1000}
"""

from __future__ import annotations

import json
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from harness.host.behaviour import Rule

T = TypeVar("T")
STATES = ("approved", "declined", "reversed", "settled")
HOLDING = ("approved", "settled")
SCHEMA_VERSION = 1
MAX_BATCH = 64

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('rx', 'tx')),
    connection INTEGER,
    peer TEXT,
    mti TEXT,
    stan TEXT,
    terminal TEXT,
    rrn TEXT,
    code TEXT,
    payment_id INTEGER,
    fields TEXT,                 -- decoded fields as JSON, card number masked
    delivery TEXT,               -- tx: answer/silent/twice/close and delay; rx: duplicate, error
    note TEXT
);
CREATE INDEX IF NOT EXISTS messages_key ON messages (terminal, stan);
CREATE TABLE IF NOT EXISTS payments (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,          -- authorization (0100), financial (0200), advice (0220)
    mti TEXT NOT NULL,
    terminal TEXT NOT NULL,
    merchant TEXT,
    stan TEXT NOT NULL,
    rrn TEXT NOT NULL UNIQUE,
    auth_code TEXT,
    code TEXT NOT NULL,
    amount INTEGER NOT NULL,
    currency TEXT,
    pcode TEXT,                  -- processing code (field 3): 00xxxx purchase, 20xxxx refund
    pan TEXT,                    -- masked
    state TEXT NOT NULL CHECK (state IN ('approved', 'declined', 'reversed', 'settled')),
    created REAL NOT NULL,
    updated REAL NOT NULL,
    batch INTEGER,               -- the reconciliation that closed it
    reason TEXT                  -- why the host answered as it did (rule, magic amount, default)
);
CREATE INDEX IF NOT EXISTS payments_key ON payments (terminal, stan);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    payment_id INTEGER NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    message_id INTEGER,
    reason TEXT
);
CREATE TABLE IF NOT EXISTS replies (      -- answers kept for repeated requests (same terminal, STAN, class)
    terminal TEXT NOT NULL,
    stan TEXT NOT NULL,
    class TEXT NOT NULL,
    at REAL NOT NULL,
    digest TEXT NOT NULL,
    response TEXT NOT NULL,
    payment_id INTEGER,
    PRIMARY KEY (terminal, stan, class)
);
CREATE TABLE IF NOT EXISTS orphan_reversals (   -- reversals that arrived before (or without) their original
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    terminal TEXT NOT NULL,
    original_mti TEXT,
    original_stan TEXT NOT NULL,
    message_id INTEGER,
    applied_to INTEGER
);
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    terminal TEXT NOT NULL,
    host_totals TEXT NOT NULL,
    terminal_totals TEXT,
    code TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rules (
    id INTEGER PRIMARY KEY,
    created REAL NOT NULL,
    rule TEXT NOT NULL,
    remaining INTEGER,           -- NULL = unlimited
    used INTEGER NOT NULL DEFAULT 0,
    active INTEGER NOT NULL DEFAULT 1
);
"""


class LedgerError(RuntimeError):
    """The ledger file cannot be opened or used; the message names the file."""


def connect(path: str | Path, synchronous: str = "FULL") -> sqlite3.Connection:
    """Open (and create) the ledger in WAL mode; autocommit mode, transactions are explicit."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(path), timeout=10.0, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA busy_timeout = 10000")
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise LedgerError(f"{path}: SQLite refused WAL mode (got {mode}); put the ledger on a local disk")
        db.execute(f"PRAGMA synchronous = {synchronous}")
        db.executescript(SCHEMA)
        db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
    except sqlite3.Error as exc:
        raise LedgerError(f"{path}: cannot open the host ledger: {exc}") from None
    return db


class Bookkeeper:
    """The ledger's single writer thread. `call(job)` runs `job(db)` in a transaction, returns after COMMIT.

    Jobs waiting at the same time share one transaction (group commit); each runs in its own SAVEPOINT.
    """

    def __init__(
        self,
        path: str | Path,
        synchronous: str = "FULL",
        before_batch: Callable[[sqlite3.Connection], None] | None = None,
    ):
        self.path = Path(path)
        self.db = connect(path, synchronous)
        self.before_batch = before_batch
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="host-ledger", daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[sqlite3.Connection], T]) -> Future[T]:
        fut: Future[T] = Future()
        if self._closed:
            fut.set_exception(LedgerError(f"{self.path}: the ledger is closed"))
        else:
            self._jobs.put((job, fut))
        return fut

    def call(self, job: Callable[[sqlite3.Connection], T], timeout: float | None = 30.0) -> T:
        return self.submit(job).result(timeout)

    def _run(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                break
            batch = [item]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    nxt = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            self._run_batch(batch)
            if stop:
                break
        self.db.close()

    def _run_batch(self, batch: list[tuple[Callable, Future]]) -> None:
        db = self.db
        outcomes: list[tuple[Future, Any, BaseException | None]] = []
        try:
            db.execute("BEGIN IMMEDIATE")
            if self.before_batch:
                self.before_batch(db)
            for job, fut in batch:
                db.execute("SAVEPOINT job")
                try:
                    result = job(db)
                except Exception as exc:  # noqa: BLE001 - handed to the waiting caller
                    db.execute("ROLLBACK TO job")
                    outcomes.append((fut, None, exc))
                else:
                    outcomes.append((fut, result, None))
                db.execute("RELEASE job")
            db.execute("COMMIT")
        except Exception as exc:  # noqa: BLE001 - the whole batch failed: nobody may answer as if booked
            if db.in_transaction:
                db.execute("ROLLBACK")
            err = LedgerError(f"{self.path}: transaction failed, nothing booked: {exc}")
            for _, fut in batch:
                fut.set_exception(err)
            return
        for fut, result, exc in outcomes:
            if exc is None:
                fut.set_result(result)
            else:
                fut.set_exception(exc)

    def close(self, timeout: float = 5.0) -> None:
        if self._closed:
            return
        self._closed = True
        self._jobs.put(None)
        self._thread.join(timeout)


@dataclass(frozen=True)
class Payment:
    """One payment as the acquirer books it."""

    id: int
    kind: str
    mti: str
    terminal: str
    merchant: str | None
    stan: str
    rrn: str
    auth_code: str | None
    code: str
    amount: int
    currency: str | None
    pcode: str | None
    pan: str | None
    state: str
    created: float
    updated: float
    batch: int | None
    reason: str | None

    @property
    def holds_money(self) -> bool:
        """True when the acquirer holds this payment's money (approved or settled)."""
        return self.state in HOLDING

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Ledger:
    """Query and control API over a ledger file, usable from any process while the host runs (WAL readers)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._local = threading.local()

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
        return db

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

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

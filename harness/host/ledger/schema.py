"""The ledger file's tables, how it is opened (WAL, synchronous=FULL), and its row type `Payment`.

>>> db = connect("evidence/host-ledger.sqlite")      # creates the tables when they are missing
>>> db.execute("PRAGMA journal_mode").fetchone()[0]
'wal'
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

STATES = ("approved", "declined", "reversed", "settled")
HOLDING = ("approved", "settled")
SCHEMA_VERSION = 1

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


@dataclass(frozen=True)
class Payment:
    """One payment as the acquirer books it (a row of table `payments`)."""

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

"""The reference till's durable journal: every sale, each state it passed through, every ZVT message (masked)
and everything it printed. One SQLite file, WAL mode, `synchronous=FULL`: each write is on disk before the
till acts on it, so a till killed at any point restarts knowing which sales are unresolved.

    >>> import pathlib, tempfile
    >>> j = Journal(pathlib.Path(tempfile.mkdtemp()) / "till.sqlite")
    >>> sid = j.open_sale([{"sku": "milk", "price": "1.19"}], "card", 119)
    >>> j.transition(sid, "authorizing")
    >>> j.sale(sid)["state"]
    'authorizing'
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from harness.core.masking import mask_obj, mask_pans

SCHEMA = """
CREATE TABLE IF NOT EXISTS sales (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL UNIQUE,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    tender TEXT NOT NULL,
    amount_cents INTEGER NOT NULL,
    currency TEXT NOT NULL DEFAULT 'EUR',
    basket TEXT NOT NULL,
    client_ref TEXT,
    state TEXT NOT NULL,              -- the latest step (open, authorizing, result-lost, querying, ...)
    status TEXT NOT NULL,             -- the sale's status: pending, paid, declined, cancelled, failed, unknown
    receipt TEXT NOT NULL DEFAULT 'none',
    drawer_opened INTEGER NOT NULL DEFAULT 0,
    offline INTEGER NOT NULL DEFAULT 0,
    masked_pan TEXT, auth_code TEXT, trace INTEGER, receipt_no INTEGER, terminal_id TEXT,
    terminal_result INTEGER,
    message TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sale_id TEXT NOT NULL REFERENCES sales(id),
    at REAL NOT NULL,
    state TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS zvt (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sale_id TEXT,
    at REAL NOT NULL,
    direction TEXT NOT NULL,
    summary TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS prints (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sale_id TEXT NOT NULL REFERENCES sales(id),
    at REAL NOT NULL,
    kind TEXT NOT NULL,               -- sale | reprint | drawer
    ok INTEGER NOT NULL,
    text TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS events_sale ON events(sale_id);
CREATE INDEX IF NOT EXISTS prints_sale ON prints(sale_id);
"""

SALE_FIELDS = ("status", "receipt", "drawer_opened", "offline", "masked_pan", "auth_code", "trace",
               "receipt_no",
               "terminal_id", "terminal_result", "message")
FINAL = ("paid", "declined", "cancelled", "failed")


class JournalError(RuntimeError):
    """The journal file cannot be used; the message names the file."""


class Journal:
    """Thread-safe; every method commits before returning."""

    def __init__(self, path: str | Path, till_id: str = "T1"):
        self.path = Path(path)
        self.till_id = till_id
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open the till journal {self.path}: {exc}") from exc
        self._db.row_factory = sqlite3.Row

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _write(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cur = self._db.execute(sql, args)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return cur

    # -- writes ----------------------------------------------------------------------------------------------
    def open_sale(self, basket: list[dict[str, Any]], tender: str, amount_cents: int, currency: str = "EUR",
                  client_ref: str | None = None) -> str:
        """Record a new sale (state 'open', status 'pending') and return its id, e.g. 'T1-000007'."""
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                seq = self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM sales").fetchone()[0]
                sale_id = f"{self.till_id}-{seq:06d}"
                self._db.execute(
                    "INSERT INTO sales (id, seq, created, updated, tender, amount_cents, currency, basket, "
                    "client_ref, state, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', 'pending')",
                    (sale_id, seq, now, now, tender, amount_cents, currency, json.dumps(mask_obj(basket)),
                     client_ref))
                self._db.execute("INSERT INTO events (sale_id, at, state, detail) VALUES (?, ?, 'open', ?)",
                                 (sale_id, now, json.dumps({"amount_cents": amount_cents, "tender": tender})))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return sale_id

    def transition(self, sale_id: str, state: str, **updates: Any) -> None:
        """Move a sale to `state`, updating any of SALE_FIELDS, and log the step with its details."""
        bad = set(updates) - set(SALE_FIELDS) - {"detail"}
        if bad:
            raise ValueError(f"unknown sale fields {sorted(bad)}; known: {', '.join(SALE_FIELDS)}")
        detail = mask_obj(updates.pop("detail", {}) or {})
        updates = {k: (mask_pans(v) if isinstance(v, str) else v) for k, v in updates.items()}
        now = time.time()
        sets = ", ".join(f"{k} = ?" for k in updates)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cur = self._db.execute(f"UPDATE sales SET state = ?, updated = ?{', ' if sets else ''}{sets} "
                                       "WHERE id = ?", (state, now, *updates.values(), sale_id))
                if cur.rowcount != 1:
                    raise KeyError(f"no sale {sale_id!r} in the journal {self.path}")
                self._db.execute("INSERT INTO events (sale_id, at, state, detail) VALUES (?, ?, ?, ?)",
                                 (sale_id, now, state, json.dumps({**updates, **detail}, default=str)))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def record_zvt(self, sale_id: str | None, direction: str, summary: dict[str, Any]) -> None:
        self._write("INSERT INTO zvt (sale_id, at, direction, summary) VALUES (?, ?, ?, ?)",
                    (sale_id, time.time(), direction, json.dumps(mask_obj(summary), default=str)))

    def record_print(self, sale_id: str, kind: str, ok: bool, text: str = "", error: str = "") -> None:
        self._write("INSERT INTO prints (sale_id, at, kind, ok, text, error) VALUES (?, ?, ?, ?, ?, ?)",
                    (sale_id, time.time(), kind, int(ok), mask_pans(text), mask_pans(error)))

    # -- reads -----------------------------------------------------------------------------------------------
    def _rows(self, sql: str, args: tuple = ()) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._db.execute(sql, args).fetchall()]

    def sale(self, sale_id: str, with_history: bool = True) -> dict[str, Any]:
        rows = self._rows("SELECT * FROM sales WHERE id = ?", (sale_id,))
        if not rows:
            raise KeyError(f"no sale {sale_id!r} in the journal {self.path}")
        return self._expand(rows[0], with_history)

    def _expand(self, row: dict[str, Any], with_history: bool) -> dict[str, Any]:
        row["basket"] = json.loads(row["basket"])
        row["drawer_opened"] = bool(row["drawer_opened"])
        row["offline"] = bool(row["offline"])
        if with_history:
            row["events"] = [{**e, "detail": json.loads(e["detail"])} for e in self._rows(
                "SELECT at AS t, state, detail FROM events WHERE sale_id = ? ORDER BY id", (row["id"],))]
            row["prints"] = [{**p, "ok": bool(p["ok"])} for p in self._rows(
                "SELECT at AS t, kind, ok, text, error FROM prints WHERE sale_id = ? ORDER BY id", (row["id"],))]
            row["zvt"] = [{**z, "summary": json.loads(z["summary"])} for z in self._rows(
                "SELECT at AS t, direction, summary FROM zvt WHERE sale_id = ? ORDER BY id", (row["id"],))]
        return row

    def sales(self, with_history: bool = True) -> list[dict[str, Any]]:
        """Every sale, oldest first, with its events, prints and ZVT messages."""
        return [self._expand(r, with_history) for r in self._rows("SELECT * FROM sales ORDER BY seq")]

    def unresolved(self) -> list[dict[str, Any]]:
        """Sales whose payment outcome is not known yet, or whose receipt is still owed."""
        return [self._expand(r, False) for r in self._rows(
            "SELECT * FROM sales WHERE status IN ('pending', 'unknown') "
            "OR (status = 'paid' AND receipt IN ('pending', 'failed')) ORDER BY seq")]

    def known_transactions(self, exclude: str | None = None) -> set[tuple[int | None, int | None]]:
        """(trace, receipt_no) of every terminal transaction already assigned to a sale (but `exclude`)."""
        return {(r["trace"], r["receipt_no"]) for r in self._rows(
            "SELECT trace, receipt_no FROM sales "
            "WHERE (trace IS NOT NULL OR receipt_no IS NOT NULL) AND id != ?",
            (exclude or "",))}

"""The terminal's durable journal (SQLite): every transaction and its final state, the store-and-forward queue
of reversals and advices still owed to the host, and the trace / receipt / STAN counters.

>>> j = Journal(":memory:")
>>> t = j.open("sale", amount=1999, currency=978, masked_pan="411111******1111")
>>> j.update(t, state="approved", stan="000001")["state"]
'approved'

Card numbers are stored masked only. Survives restarts: open the same file again and pending reversals
resume.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS transactions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,                 -- sale | void | end_of_day
    state TEXT NOT NULL,                -- started | approved | declined | aborted | failed | reversed | ...
    amount INTEGER, currency INTEGER,
    masked_pan TEXT, card_name TEXT, card_type INTEGER,
    trace INTEGER, receipt_no INTEGER,
    stan TEXT, rrn TEXT, auth_code TEXT, host_rc TEXT,
    result_code INTEGER,                -- the ZVT result code the till was given
    offline INTEGER NOT NULL DEFAULT 0,
    goods TEXT,                         -- issue of goods: booked | refused | unconfirmed
    reversal TEXT,                      -- none | pending | acknowledged
    reversal_reason TEXT,
    original_id INTEGER,                -- a void's original sale
    created REAL NOT NULL, updated REAL NOT NULL,
    history TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS saf (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    txn_id INTEGER,
    kind TEXT NOT NULL,                 -- reversal | advice
    mti TEXT NOT NULL,                  -- first MTI (0420 / 0220); repeats use 0421 / 0221
    fields TEXT NOT NULL,               -- ISO 8583 fields, without the card number
    attempts INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'pending',   -- pending | acknowledged
    created REAL NOT NULL, updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

COLUMNS = (
    "kind",
    "state",
    "amount",
    "currency",
    "masked_pan",
    "card_name",
    "card_type",
    "trace",
    "receipt_no",
    "stan",
    "rrn",
    "auth_code",
    "host_rc",
    "result_code",
    "offline",
    "goods",
    "reversal",
    "reversal_reason",
    "original_id",
)
COUNTER_LIMITS = {"trace": 999999, "receipt_no": 9999, "stan": 999999}


class PoweredOff(RuntimeError):
    """The terminal lost power: nothing it was still doing is written any more."""


class Journal:
    """Thread-safe SQLite journal. `path` may be ':memory:' for throw-away use."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self.frozen = False
        with self._lock:
            self._db.execute(
                "PRAGMA journal_mode=WAL" if self.path != ":memory:" else "PRAGMA journal_mode=MEMORY"
            )
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def freeze(self) -> None:
        """Power lost: from now on every write raises PoweredOff (the terminal's threads stop where they were);
        what is on disk is what the terminal boots with."""
        with self._lock:
            self.frozen = True

    def _writing(self) -> None:
        if self.frozen:
            raise PoweredOff("the terminal lost power")

    # -- counters --------------------------------------------------------------------------------------------
    def next_number(self, name: str) -> int:
        """Next trace / receipt_no / stan, 1-based, wrapping at the field's limit. Durable."""
        limit = COUNTER_LIMITS[name]
        with self._lock:
            self._writing()
            row = self._db.execute("SELECT value FROM counters WHERE name=?", (name,)).fetchone()
            value = (row["value"] if row else 0) % limit + 1
            self._db.execute("INSERT OR REPLACE INTO counters(name, value) VALUES (?, ?)", (name, value))
            return value

    def counters(self) -> dict[str, int]:
        """The trace / receipt_no / stan counters' current values."""
        with self._lock:
            return {r["name"]: r["value"] for r in self._db.execute("SELECT name, value FROM counters")}

    def seed_counters(self, values: dict[str, int]) -> None:
        """Continue from `values` (a terminal's durable memory carried to a new journal)."""
        with self._lock:
            self._writing()
            for name, value in values.items():
                if name in COUNTER_LIMITS:
                    self._db.execute("INSERT OR REPLACE INTO counters(name, value) VALUES (?, ?)",
                                     (name, int(value)))

    # -- transactions ----------------------------------------------------------------------------------------
    def open(self, kind: str, **fields: Any) -> int:
        now = time.time()
        fields = {k: v for k, v in fields.items() if k in COLUMNS}
        fields.setdefault("state", "started")
        history = json.dumps([{"t": round(now, 3), "state": fields["state"]}])
        cols = ["kind", *fields, "created", "updated", "history"]
        with self._lock:
            self._writing()
            cur = self._db.execute(
                f"INSERT INTO transactions({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                (kind, *fields.values(), now, now, history),
            )
            return int(cur.lastrowid)

    def update(self, txn_id: int, **fields: Any) -> dict[str, Any]:
        """Set columns; a state change is appended to the transaction's history. Returns the row."""
        bad = [k for k in fields if k not in COLUMNS]
        if bad:
            raise KeyError(f"journal has no column {', '.join(bad)}; columns: {', '.join(COLUMNS)}")
        now = time.time()
        with self._lock:
            self._writing()
            row = self.get(txn_id)
            history = json.loads(row["history"]) if row else []
            if "state" in fields and (not history or history[-1]["state"] != fields["state"]):
                history.append({"t": round(now, 3), "state": fields["state"]})
            sets = ", ".join(f"{k}=?" for k in fields)
            self._db.execute(
                f"UPDATE transactions SET {sets}{', ' if sets else ''}updated=?, history=? WHERE id=?",
                (*fields.values(), now, json.dumps(history), txn_id),
            )
            return self.get(txn_id)

    def get(self, txn_id: int) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM transactions WHERE id=?", (txn_id,)).fetchone()
        return dict(row) if row else None

    def transactions(self, kind: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            if kind:
                rows = self._db.execute(
                    "SELECT * FROM transactions WHERE kind=? ORDER BY id", (kind,)
                ).fetchall()
            else:
                rows = self._db.execute("SELECT * FROM transactions ORDER BY id").fetchall()
        return [dict(r) for r in rows]

    def last(self, kind: str | None = None) -> dict[str, Any] | None:
        rows = self.transactions(kind)
        return rows[-1] if rows else None

    def by_receipt(self, receipt_no: int) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM transactions WHERE receipt_no=? AND kind='sale' ORDER BY id DESC LIMIT 1",
                (receipt_no,),
            ).fetchone()
        return dict(row) if row else None

    # -- store and forward -----------------------------------------------------------------------------------
    def saf_add(self, txn_id: int | None, kind: str, mti: str, fields: dict[str, Any]) -> int:
        now = time.time()
        clean = {k: v for k, v in fields.items() if k != "2"}
        with self._lock:
            self._writing()
            cur = self._db.execute(
                "INSERT INTO saf(txn_id, kind, mti, fields, created, updated) VALUES (?, ?, ?, ?, ?, ?)",
                (txn_id, kind, mti, json.dumps(clean), now, now),
            )
            return int(cur.lastrowid)

    def saf_pending(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM saf WHERE state='pending' ORDER BY id").fetchall()
        out = []
        for r in rows:
            d = dict(r)
            d["fields"] = json.loads(d["fields"])
            out.append(d)
        return out

    def saf_attempted(self, saf_id: int) -> None:
        with self._lock:
            self._writing()
            self._db.execute(
                "UPDATE saf SET attempts=attempts+1, updated=? WHERE id=?", (time.time(), saf_id)
            )

    def saf_acknowledged(self, saf_id: int) -> None:
        with self._lock:
            self._writing()
            self._db.execute(
                "UPDATE saf SET state='acknowledged', updated=? WHERE id=?", (time.time(), saf_id)
            )

    def saf_all(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM saf ORDER BY id").fetchall()
        return [{**dict(r), "fields": json.loads(r["fields"])} for r in rows]

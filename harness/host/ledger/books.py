"""The ledger's write side: `Books` (every statement the host writes) and `Bookkeeper` (its one writer thread).

The acquirer decides (ISO 8583 semantics, response codes); `Books` stores, inside the transaction the
`Bookkeeper` opened for it. A job is a function of `Books`:

>>> keeper = Bookkeeper("evidence/host-ledger.sqlite")
>>> keeper.call(lambda books: books.next_payment_id())      # returns after COMMIT
1
>>> keeper.close()

Durability: one transaction per batch of waiting jobs (group commit: one fsync for all of them), each job in its
own SAVEPOINT so one failing job cannot undo another, WAL + synchronous=FULL, and `call()` returns only after
COMMIT, so the host answers only what is booked.
"""

from __future__ import annotations

import json
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from harness.core.masking import mask_pan
from harness.host.behaviour import Rule
from harness.host.ledger.schema import STATES, LedgerError, Payment, connect

T = TypeVar("T")
MAX_BATCH = 64


@dataclass(frozen=True)
class StoredAnswer:
    """The answer kept for a request, given again to its repeats."""

    at: float
    digest: str  # of the request's content: a repeat must have the same
    response: dict[str, Any]
    payment_id: int | None


class Books:
    """What the host writes to (and looks up in) the ledger, on the Bookkeeper's connection and transaction.

    Only the Bookkeeper's thread calls these methods; none opens or ends a transaction.
    """

    def __init__(self, db: sqlite3.Connection):
        self.db = db  # the writer connection, for inspection (PRAGMAs) in tests

    # -- run-time rules (written by `Ledger.add_rule` from any process) ---------------------------
    def data_version(self) -> int:
        """Changes when another connection committed to the file (PRAGMA data_version)."""
        return self.db.execute("PRAGMA data_version").fetchone()[0]

    def active_rules(self) -> list[Rule]:
        """Run-time rules still in force, oldest first, each with its ledger id and remaining uses."""
        rules = []
        for rid, text, remaining in self.db.execute(
            "SELECT id, rule, remaining FROM rules WHERE active = 1 "
            "AND (remaining IS NULL OR remaining > 0) ORDER BY id"
        ):
            rule = Rule.from_dict(json.loads(text), source="test")
            rule.id, rule.times = rid, remaining
            rules.append(rule)
        return rules

    def count_rule_use(self, rule_id: int, remaining: int | None = None) -> None:
        """A run-time rule was applied once; `remaining` = uses left for a rule given `times`."""
        if remaining is None:
            self.db.execute("UPDATE rules SET used = used + 1 WHERE id = ?", (rule_id,))
        else:
            self.db.execute("UPDATE rules SET remaining = ?, used = used + 1 WHERE id = ?", (remaining, rule_id))

    # -- messages ------------------------------------------------------------------------------------
    def log_message(
        self,
        direction: str,
        *,
        at: float,
        connection: int,
        peer: str,
        fields: dict[str, Any],
        mti: str | None = None,
        stan: str | None = None,
        terminal: str | None = None,
        rrn: str | None = None,
        code: str | None = None,
        payment_id: int | None = None,
        delivery: str | None = None,
        note: str | None = None,
    ) -> int:
        """Keep one received ('rx') or sent ('tx') message; `fields` already masked. Returns its id."""
        cur = self.db.execute(
            "INSERT INTO messages (at, direction, connection, peer, mti, stan, terminal, rrn, code, payment_id, "
            "fields, delivery, note) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (at, direction, connection, peer, mti, stan, terminal, rrn, code, payment_id, json.dumps(fields),
             delivery, note),
        )
        return int(cur.lastrowid)

    def link_message(self, message_id: int, payment_id: int | None, delivery: str | None) -> None:
        """Name the payment a received message concerns, and mark it (e.g. 'duplicate')."""
        self.db.execute(
            "UPDATE messages SET payment_id = ?, delivery = ? WHERE id = ?", (payment_id, delivery, message_id)
        )

    def note_message(self, message_id: int, note: str) -> None:
        self.db.execute("UPDATE messages SET note = ? WHERE id = ?", (note, message_id))

    # -- payments ------------------------------------------------------------------------------------
    def next_payment_id(self) -> int:
        """The id the next booked payment gets (the acquirer derives its RRN and auth code from it)."""
        (next_id,) = self.db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM payments").fetchone()
        return int(next_id)

    def book_payment(
        self,
        *,
        id: int,
        kind: str,
        mti: str,
        terminal: str,
        merchant: str | None,
        stan: str,
        rrn: str,
        auth_code: str | None,
        code: str,
        amount: int,
        currency: str | None,
        pcode: str | None,
        pan: str | None,
        state: str,
        reason: str,
        at: float,
    ) -> None:
        """Book a new payment in `state` at time `at` (and its first event). `pan` as received: it is stored
        masked."""
        if state not in STATES:
            raise ValueError(f"unknown payment state {state!r}; expected one of {', '.join(STATES)}")
        self.db.execute(
            "INSERT INTO payments (id, kind, mti, terminal, merchant, stan, rrn, auth_code, code, amount, "
            "currency, pcode, pan, state, created, updated, reason) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (id, kind, mti, terminal, merchant, stan, rrn, auth_code, code, amount, currency, pcode,
             mask_pan(pan) if pan else None, state, at, at, reason),
        )
        self._event(id, None, state, reason)

    def find_payment(self, terminal: str, stan: str, mti: str | None = None, since: float = 0.0) -> Payment | None:
        """The latest payment of `terminal` with this STAN (and request class `mti`) booked at `since` or later."""
        sql = "SELECT * FROM payments WHERE terminal = ? AND stan = ? AND created >= ?"
        args: list[Any] = [terminal, stan, since]
        if mti:
            sql, args = sql + " AND mti = ?", [*args, mti]
        cur = self.db.execute(sql + " ORDER BY id DESC LIMIT 1", args)
        row = cur.fetchone()
        if row is None:
            return None
        return Payment(**dict(zip((c[0] for c in cur.description), row, strict=True)))

    def set_state(self, payment_id: int, old: str, new: str, reason: str) -> bool:
        """Move a payment from state `old` to `new`; False (and no event) when it is not in state `old`."""
        cur = self.db.execute(
            "UPDATE payments SET state = ?, updated = ? WHERE id = ? AND state = ?",
            (new, time.time(), payment_id, old),
        )
        if cur.rowcount != 1:
            return False
        self._event(payment_id, old, new, reason)
        return True

    def set_amount(self, payment_id: int, amount: int, state: str, reason: str) -> None:
        """Change the amount of a payment in `state` (an authorization completed for another amount)."""
        self.db.execute(
            "UPDATE payments SET amount = ?, updated = ? WHERE id = ?", (amount, time.time(), payment_id)
        )
        self._event(payment_id, state, state, reason)

    def _event(self, payment_id: int, old: str | None, new: str, reason: str) -> None:
        self.db.execute(
            "INSERT INTO events (at, payment_id, from_state, to_state, reason) VALUES (?, ?, ?, ?, ?)",
            (time.time(), payment_id, old, new, reason),
        )

    # -- reversals that arrive before their original -------------------------------------------------
    def remember_orphan_reversal(self, terminal: str, original_mti: str | None, original_stan: str) -> None:
        """Keep a reversal whose original is not booked (yet); once per original."""
        known = self.db.execute(
            "SELECT 1 FROM orphan_reversals WHERE terminal = ? AND original_stan = ? "
            "AND applied_to IS NULL AND original_mti IS ?",
            (terminal, original_stan, original_mti),
        ).fetchone()
        if not known:
            self.db.execute(
                "INSERT INTO orphan_reversals (at, terminal, original_mti, original_stan) VALUES (?,?,?,?)",
                (time.time(), terminal, original_mti, original_stan),
            )

    def claim_orphan_reversal(self, terminal: str, stan: str, mti: str, since: float, payment_id: int) -> bool:
        """True when a reversal kept since `since` names this request: it is now applied to `payment_id`."""
        row = self.db.execute(
            "SELECT id FROM orphan_reversals WHERE terminal = ? AND original_stan = ? AND applied_to IS "
            "NULL AND (original_mti IS NULL OR original_mti = ?) AND at >= ? ORDER BY id LIMIT 1",
            (terminal, stan, mti, since),
        ).fetchone()
        if row is None:
            return False
        self.db.execute("UPDATE orphan_reversals SET applied_to = ? WHERE id = ?", (payment_id, row[0]))
        return True

    # -- answers kept for repeats --------------------------------------------------------------------
    def stored_answer(self, terminal: str, stan: str, cls: str) -> StoredAnswer | None:
        """The answer kept for this terminal, STAN and message class, if any."""
        row = self.db.execute(
            "SELECT at, digest, response, payment_id FROM replies WHERE terminal = ? AND stan = ? AND class = ?",
            (terminal, stan, cls),
        ).fetchone()
        if row is None:
            return None
        at, digest, response, payment_id = row
        return StoredAnswer(at, digest, json.loads(response), payment_id)

    def remember_answer(
        self, terminal: str, stan: str, cls: str, digest: str, response: dict[str, Any], payment_id: int | None
    ) -> None:
        """Keep the answer for this terminal, STAN and class (replacing an older one)."""
        self.db.execute(
            "INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?, ?, ?, ?)",
            (terminal, stan, cls, time.time(), digest, json.dumps(response), payment_id),
        )

    # -- reconciliation ------------------------------------------------------------------------------
    def open_payments(self, terminal: str) -> list[tuple[str, int, str | None]]:
        """(state, amount, processing code) of the terminal's payments not yet cut over."""
        return self.db.execute(
            "SELECT state, amount, pcode FROM payments WHERE terminal = ? AND batch IS NULL", (terminal,)
        ).fetchall()

    def cut_over(
        self,
        terminal: str,
        host_totals: dict[str, int],
        terminal_totals: dict[str, int] | None,
        code: str,
        reason: str,
    ) -> int:
        """Close the terminal's open batch: keep both totals, approved -> settled, every open payment gets the
        batch. The events' reason is `reason (batch N)`. Returns the batch id."""
        cur = self.db.execute(
            "INSERT INTO batches (at, terminal, host_totals, terminal_totals, code) VALUES (?,?,?,?,?)",
            (time.time(), terminal, json.dumps(host_totals),
             json.dumps(terminal_totals) if terminal_totals else None, code),
        )
        batch = int(cur.lastrowid)
        for (pid,) in self.db.execute(
            "SELECT id FROM payments WHERE terminal = ? AND batch IS NULL AND state = 'approved'", (terminal,)
        ).fetchall():
            self.set_state(pid, "approved", "settled", f"{reason} (batch {batch})")
        self.db.execute("UPDATE payments SET batch = ? WHERE terminal = ? AND batch IS NULL", (batch, terminal))
        return batch


class Bookkeeper:
    """The ledger's single writer thread. `call(job)` runs `job(books)` in a transaction, returns after COMMIT.

    Jobs waiting at the same time share one transaction (group commit); each runs in its own SAVEPOINT.
    `before_batch(books)` runs first in every transaction (the host re-reads run-time rules there).
    """

    def __init__(
        self,
        path: str | Path,
        synchronous: str = "FULL",
        before_batch: Callable[[Books], None] | None = None,
    ):
        self.path = Path(path)
        self.db = connect(path, synchronous)
        self.books = Books(self.db)
        self.before_batch = before_batch
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="host-ledger", daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[Books], T]) -> Future[T]:
        fut: Future[T] = Future()
        if self._closed:
            fut.set_exception(LedgerError(f"{self.path}: the ledger is closed"))
        else:
            self._jobs.put((job, fut))
        return fut

    def call(self, job: Callable[[Books], T], timeout: float | None = 30.0) -> T:
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
                self.before_batch(self.books)
            for job, fut in batch:
                db.execute("SAVEPOINT job")
                try:
                    result = job(self.books)
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

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

>>> ledger = Ledger("evidence/host-ledger.sqlite")  # doctest: +SKIP
>>> ledger.payment(stan="000123", terminal="T0000001").state  # doctest: +SKIP
'approved'
>>> ledger.totals()["held"]  # doctest: +SKIP
{'count': 1, 'amount': 1000}

The package: `schema` (tables, `connect`, `Payment`), `books` (the host's writes: `Books`, inside the transaction
of the one writer thread `Bookkeeper`), `reader` (`Ledger`: queries and run-time rules, from any process). Every
SQL statement on the ledger file lives in these modules.
"""

from __future__ import annotations

from harness.host.ledger.books import Bookkeeper, Books, StoredAnswer
from harness.host.ledger.reader import Ledger
from harness.host.ledger.schema import HOLDING, STATES, LedgerError, Payment, connect

__all__ = ["HOLDING", "STATES", "Bookkeeper", "Books", "Ledger", "LedgerError", "Payment", "StoredAnswer", "connect"]

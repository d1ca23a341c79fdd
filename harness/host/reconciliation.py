"""Reconciliation (0500/0501 -> 0510): the host's totals of the open batch, compared, then the cut-over.

Totals (0500 from the terminal, 0510 from the host), for the terminal's payments not yet cut over: 76/88 debits
(purchases, processing code not 20xxxx) approved and not reversed, count/amount; 77/89 debits reversed; 74/86
credits (processing code 20xxxx, refunds) approved; 75/87 credits reversed; 97 net = 88 - 86 as 'D'/'C' + 16
digits. Only the totals the terminal sends are compared; when they differ the answer is 95, and the cut-over
still happens (the host's books are what is charged): approved -> settled, no longer reversible.
"""

from __future__ import annotations

from typing import Any

from harness.host.answers import FORMAT_ERROR, RECONCILE_ERROR, Decision, answer, refuse, terminal_of
from harness.host.behaviour import APPROVED, Choice
from harness.host.ledger import Books
from harness.protocols import iso8583 as iso
from harness.protocols.iso8583 import STAN

TOTALS = (
    iso.CREDITS_COUNT,
    iso.CREDITS_REVERSAL_COUNT,
    iso.DEBITS_COUNT,
    iso.DEBITS_REVERSAL_COUNT,
    iso.CREDITS_AMOUNT,
    iso.CREDITS_REVERSAL_AMOUNT,
    iso.DEBITS_AMOUNT,
    iso.DEBITS_REVERSAL_AMOUNT,
)
COUNT_WIDTH, AMOUNT_WIDTH = 10, 16


def open_totals(books: Books, terminal: str) -> dict[str, int]:
    """The reconciliation totals (field number -> value) of a terminal's payments not yet cut over."""
    t = dict.fromkeys(TOTALS, 0)
    for state, amount, pcode in books.open_payments(terminal):
        credit = str(pcode or "").startswith("20")
        if state == "approved":
            count, total = (
                (iso.CREDITS_COUNT, iso.CREDITS_AMOUNT) if credit else (iso.DEBITS_COUNT, iso.DEBITS_AMOUNT)
            )
        elif state == "reversed":
            count, total = (
                (iso.CREDITS_REVERSAL_COUNT, iso.CREDITS_REVERSAL_AMOUNT)
                if credit
                else (iso.DEBITS_REVERSAL_COUNT, iso.DEBITS_REVERSAL_AMOUNT)
            )
        else:
            continue
        t[count] += 1
        t[total] += amount
    return t


def reconcile(books: Books, fields: dict[str, Any], resp_mti: str, choice: Choice) -> Decision:
    """Compare the terminal's totals with the host's, cut over, answer the host's totals."""
    terminal = terminal_of(fields)
    if not choice.behaviour.approves:
        resp = answer(fields, resp_mti, choice.behaviour.code)
        return Decision(resp, choice.behaviour, f"{choice.reason}; no cut-over")
    host = open_totals(books, terminal)
    theirs = {}
    for f in TOTALS:
        if f in fields:
            try:
                theirs[f] = int(fields[f])
            except ValueError:
                return refuse(fields, resp_mti, FORMAT_ERROR, f"format error: field {f} = {fields[f]!r}")
    differ = {f: (theirs[f], host[f]) for f in theirs if theirs[f] != host[f]}
    code = RECONCILE_ERROR if differ else APPROVED
    batch = books.cut_over(terminal, host, theirs or None, code, f"cut-over by 0500 STAN {fields[STAN]}")
    resp = answer(fields, resp_mti, code)
    for f in TOTALS:
        resp[f] = str(host[f]).zfill(COUNT_WIDTH if f in TOTALS[:4] else AMOUNT_WIDTH)
    net = host[iso.DEBITS_AMOUNT] - host[iso.CREDITS_AMOUNT]
    resp[iso.NET_SETTLEMENT] = ("D" if net >= 0 else "C") + str(abs(net)).zfill(AMOUNT_WIDTH)
    reason = f"cut-over batch {batch}" + (f"; totals differ (terminal, host): {differ}" if differ else "")
    return Decision(resp, choice.behaviour, reason)

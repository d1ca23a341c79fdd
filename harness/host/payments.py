"""Money movements: authorizations and financial requests (0100/0200), advices (0220), reversals (0400/0420).

Each function decides one request's answer and books it through `Books`, inside the Bookkeeper's transaction.
`since` is the oldest booking time still recognised (now minus the host's repeat window).

    0100/0101  authorization       -> 0110  books a payment (kind authorization); approved holds the money
    0200/0201  financial request   -> 0210  books a payment (kind financial)
    0220/0221  financial advice    -> 0230  completes the 0100 named in field 90, else books an advice payment
    0400/0401  reversal request    -> 0410  original found by terminal (41) + field 90 (original MTI, STAN),
    0420/0421  reversal advice     -> 0430    or field 11 when 90 is absent; approved -> reversed

Reversals are full reversals (a differing field 4 is noted; partial reversals are not emulated). A reversal whose
original is not booked gets 25 and is remembered: an original arriving later is booked reversed.
"""

from __future__ import annotations

import time
from typing import Any

from harness.host.answers import INVALID, NOT_FOUND, Decision, answer, message_class, terminal_of
from harness.host.behaviour import APPROVED, Choice
from harness.host.ledger import Books
from harness.protocols import iso8583 as iso
from harness.protocols.iso8583 import AMOUNT, CURRENCY, MERCHANT_ID, ORIGINAL_DATA, PAN, PROCESSING_CODE, STAN

KINDS = {"0100": "authorization", "0200": "financial", "0220": "advice"}


def rrn_for(payment_id: int, at: float) -> str:
    """The retrieval reference number (field 37) of a payment: YDDDHH + 6-digit payment id."""
    t = time.gmtime(at)
    return time.strftime("%y%j", t)[1:] + time.strftime("%H", t) + f"{payment_id:06d}"


def auth_code_for(payment_id: int) -> str:
    """The approval code (field 38) of an approved payment."""
    return f"{(payment_id * 7919) % 1000000:06d}"


def book(
    books: Books, fields: dict[str, Any], cls: str, resp_mti: str, choice: Choice, since: float,
    kind: str | None = None,
) -> Decision:
    """Book a payment as the rule book chose (approved or declined) and answer it."""
    code = choice.behaviour.code
    state = "approved" if code == APPROVED else "declined"
    pid, now = books.next_payment_id(), time.time()
    rrn = rrn_for(pid, now)
    auth = auth_code_for(pid) if state == "approved" else None
    books.book_payment(
        id=pid,
        kind=kind or KINDS[cls],
        mti=cls,
        terminal=terminal_of(fields),
        merchant=fields.get(MERCHANT_ID),
        stan=fields[STAN],
        rrn=rrn,
        auth_code=auth,
        code=code,
        amount=int(fields[AMOUNT]),
        currency=fields.get(CURRENCY),
        pcode=fields.get(PROCESSING_CODE),
        pan=fields.get(PAN),
        state=state,
        reason=choice.reason,
        at=now,
    )
    decision = Decision(answer(fields, resp_mti, code, rrn=rrn, auth=auth), choice.behaviour, choice.reason, pid)
    if books.claim_orphan_reversal(terminal_of(fields), fields[STAN], cls, since, pid):
        books.set_state(pid, "approved", "reversed", "its reversal arrived before it")  # if approved
        decision.notes.append("a reversal for this request arrived earlier: booked reversed")
    return decision


def advice(books: Books, fields: dict[str, Any], resp_mti: str, choice: Choice, since: float) -> Decision:
    """0220: completes the approved 0100 named in field 90 (its amount becomes field 4), else books an advice."""
    if ORIGINAL_DATA in fields and choice.behaviour.approves:
        omti, ostan = iso.parse_original_data(fields[ORIGINAL_DATA])
        if message_class(omti) == "0100":
            auth = books.find_payment(terminal_of(fields), ostan, "0100", since)
            if auth is not None and auth.state == "approved":
                amount = int(fields[AMOUNT])
                books.set_amount(
                    auth.id,
                    amount,
                    "approved",
                    f"completed by 0220 STAN {fields[STAN]}: amount {auth.amount} -> {amount}",
                )
                resp = answer(fields, resp_mti, APPROVED, rrn=auth.rrn, auth=auth.auth_code)
                return Decision(resp, choice.behaviour, f"completion of 0100 STAN {ostan}", auth.id)
    return book(books, fields, "0220", resp_mti, choice, since, kind="advice")


def reversal(books: Books, fields: dict[str, Any], resp_mti: str, choice: Choice, since: float) -> Decision:
    """0400/0420: reverse the original in full (approved -> reversed); 12 when it is settled, 25 when unknown."""
    terminal = terminal_of(fields)
    if ORIGINAL_DATA in fields:
        omti, ostan = iso.parse_original_data(fields[ORIGINAL_DATA])
        omti = message_class(omti) if omti.strip("0") else None
    else:
        omti, ostan = None, fields[STAN]
    if not choice.behaviour.approves:
        resp = answer(fields, resp_mti, choice.behaviour.code)
        return Decision(resp, choice.behaviour, f"{choice.reason}; reversal refused, nothing changed")
    original = books.find_payment(terminal, ostan, omti, since)
    if original is None:
        books.remember_orphan_reversal(terminal, omti, ostan)
        return Decision(
            answer(fields, resp_mti, NOT_FOUND),
            choice.behaviour,
            f"original {omti or 'request'} STAN {ostan} of terminal {terminal} not found; remembered",
        )
    pid, state = original.id, original.state
    resp = answer(fields, resp_mti, APPROVED, rrn=original.rrn)
    if state == "approved":
        books.set_state(pid, "approved", "reversed", f"{fields['t']} STAN {fields[STAN]}")
        decision = Decision(resp, choice.behaviour, f"reversed payment {pid} ({original.mti} STAN {ostan})", pid)
        if AMOUNT in fields and fields[AMOUNT].isdigit() and int(fields[AMOUNT]) != original.amount:
            decision.notes.append(
                f"reversal amount {int(fields[AMOUNT])} differs from the payment's {original.amount}: "
                "reversed in full (partial reversals are not emulated)"
            )
        return decision
    if state == "settled":
        resp[iso.RESPONSE_CODE] = INVALID
        return Decision(resp, choice.behaviour, f"payment {pid} is settled (cut over); not reversible", pid)
    return Decision(resp, choice.behaviour, f"payment {pid} already {state}; nothing to reverse", pid)

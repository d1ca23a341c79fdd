"""The acquirer's front desk: every received ISO 8583 message checked, recognised as a repeat or routed to its
message class, logged, and answered; all booked through the ledger's `Books` inside the caller's transaction.

Runs only on the ledger's writer thread (`Bookkeeper`), so requests are decided one at a time in arrival
order: a reversal can never overtake the payment it undoes.

    0100 0200 0220 0400 0420   money movements        harness.host.payments
    0500                       reconciliation         harness.host.reconciliation
    0800/0801                  network management     -> 0810  echo / sign-on, field 70 echoed
    other requests             40 unsupported; a request missing a mandatory field (or with a bad field 4): 30
    responses, garbage         booked, not answered

Repeats (all but 0800): a request whose terminal, STAN and message class (0200 = 0201) were seen within
`window` seconds with the same content (every field but MTI and field 7) gets the stored answer again and
books nothing; the same terminal and STAN with other content gets 94.

>>> acquirer = Acquirer(window=600)  # doctest: +SKIP
>>> keeper = Bookkeeper("ledger.sqlite", before_batch=acquirer.refresh_rules)  # doctest: +SKIP
>>> peer = Connection(1, "10.0.0.2:40000")  # doctest: +SKIP
>>> keeper.call(lambda books: acquirer.handle(books, fields, peer, time.time()))  # doctest: +SKIP
Decision(response={'t': '0210', ..., '39': '00'}, ...)
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from harness.core.masking import printable
from harness.host import payments, reconciliation
from harness.host.answers import (
    DUPLICATE,
    FORMAT_ERROR,
    UNSUPPORTED,
    Decision,
    answer,
    message_class,
    refuse,
    response_mti,
    terminal_of,
)
from harness.host.behaviour import APPROVED, Behaviour, Choice, Rule, RuleBook
from harness.host.ledger import Books
from harness.protocols import iso8583 as iso
from harness.protocols.iso8583 import AMOUNT, RESPONSE_CODE, RRN, STAN, TERMINAL_ID

# Answers to reversals and reconciliations that a repeat gets again. Others (refused by a test's rule,
# original not found yet) are not kept: the repeat is processed afresh, idempotently (reversed only once).
FINAL_ANSWERS = ("00", "12", "95")
# Fields a request must carry, by message class.
REQUIRED: dict[str, tuple[str, ...]] = {
    "0100": (STAN, TERMINAL_ID, AMOUNT),
    "0200": (STAN, TERMINAL_ID, AMOUNT),
    "0220": (STAN, TERMINAL_ID, AMOUNT),
    "0400": (STAN, TERMINAL_ID),
    "0420": (STAN, TERMINAL_ID),
    "0500": (STAN, TERMINAL_ID),
    "0800": (STAN,),
}
# Fields that may differ between a request and its repeat (every other field must be equal).
REPEAT_MAY_CHANGE = ("t", "p", "1", iso.TRANSMISSION_TIME)


@dataclass
class Connection:
    """Where a message came from: the host's connection number and the peer address."""

    id: int
    peer: str


class Acquirer:
    """Decides and books. `handle()` and `handle_malformed()` run inside a ledger transaction."""

    def __init__(self, file_rules: list[Rule] | None = None, window: float = 600.0):
        self.book = RuleBook(file_rules=list(file_rules or []))
        self.window = window
        self._data_version: int | None = None

    # -- rules set at run time (ledger table `rules`, written by the test process) -------------------
    def refresh_rules(self, books: Books) -> None:
        """Reload run-time rules when another connection changed the ledger (cheap: PRAGMA data_version)."""
        version = books.data_version()
        if version == self._data_version:
            return
        self._data_version = version
        self.book.runtime = books.active_rules()

    def _choose(self, books: Books, fields: dict[str, Any]) -> Choice:
        choice = self.book.choose(fields)
        rule = choice.rule
        if rule is not None and rule.times is not None:
            rule.times -= 1
            if rule.id is not None:
                books.count_rule_use(rule.id, remaining=rule.times)
        elif rule is not None and rule.id is not None:
            books.count_rule_use(rule.id)
        return choice

    # -- entry points ----------------------------------------------------------------------------
    def handle(self, books: Books, fields: dict[str, Any], conn: Connection, at: float) -> Decision:
        """Book one decoded message and decide the answer."""
        mti = str(fields.get("t", ""))
        rx_id = self._log(books, "rx", conn, fields, at=at)
        resp_mti = response_mti(mti)
        if resp_mti is None:
            decision = Decision(None, Behaviour.approve(), f"{mti} is not a request; ignored")
            books.note_message(rx_id, decision.reason)
            return decision
        cls = message_class(mti)
        missing = [f for f in REQUIRED.get(cls, ()) if not str(fields.get(f, "")).strip()]
        bad_amount = AMOUNT in fields and not str(fields[AMOUNT]).isdigit()
        if cls not in REQUIRED:
            decision = refuse(fields, resp_mti, UNSUPPORTED, f"message type {mti} is not supported")
        elif missing or bad_amount:
            what = f"missing field(s) {', '.join(missing)}" if missing else f"field 4 amount {fields[AMOUNT]!r}"
            decision = refuse(fields, resp_mti, FORMAT_ERROR, f"format error: {what}")
        else:
            decision = self._repeat(books, fields, cls, resp_mti) or self._dispatch(books, fields, cls, resp_mti)
        books.link_message(rx_id, decision.payment_id, "duplicate" if decision.duplicate else None)
        if decision.notes:
            books.note_message(rx_id, "; ".join(decision.notes))
        self._log(
            books,
            "tx",
            conn,
            decision.response,
            payment_id=decision.payment_id,
            delivery=decision.describe_delivery(),
            note=decision.reason,
        )
        return decision

    def handle_malformed(
        self, books: Books, raw: bytes, error: str, conn: Connection, at: float, respond: bool = True
    ) -> Decision:
        """Book a frame that does not decode; answer format error when its MTI is readable (and `respond`)."""
        mti = raw[:4].decode("ascii", "replace")
        books.log_message(
            "rx",
            at=at,
            connection=conn.id,
            peer=conn.peer,
            mti=mti if mti.isdigit() else None,
            fields={"raw": printable(raw)},
            delivery="error",
            note=error,
        )
        resp_mti = response_mti(mti) if mti.isdigit() and respond else None
        if resp_mti is None:
            return Decision(None, Behaviour.approve(), f"malformed frame, no readable MTI: {error}")
        decision = refuse({}, resp_mti, FORMAT_ERROR, f"malformed {mti}: {error}")
        self._log(books, "tx", conn, decision.response, delivery="answer", note=decision.reason)
        return decision

    # -- routing by message class ----------------------------------------------------------------
    def _dispatch(self, books: Books, fields: dict[str, Any], cls: str, resp_mti: str) -> Decision:
        choice = self._choose(books, fields)
        since = time.time() - self.window
        if cls in ("0100", "0200"):
            decision = payments.book(books, fields, cls, resp_mti, choice, since)
        elif cls == "0220":
            decision = payments.advice(books, fields, resp_mti, choice, since)
        elif cls in ("0400", "0420"):
            decision = payments.reversal(books, fields, resp_mti, choice, since)
        elif cls == "0500":
            decision = reconciliation.reconcile(books, fields, resp_mti, choice)
        else:
            decision = Decision(answer(fields, resp_mti, choice.behaviour.code), choice.behaviour, choice.reason)
        if cls in payments.KINDS or decision.response.get(RESPONSE_CODE) in FINAL_ANSWERS:
            books.remember_answer(
                terminal_of(fields), fields[STAN], cls, _digest(fields), decision.response, decision.payment_id
            )
        return decision

    # -- repeats ---------------------------------------------------------------------------------
    def _repeat(self, books: Books, fields: dict[str, Any], cls: str, resp_mti: str) -> Decision | None:
        if cls == "0800":
            return None  # network management moves no money: every echo is answered afresh
        stored = books.stored_answer(terminal_of(fields), fields[STAN], cls)
        if stored is None or stored.at < time.time() - self.window:
            return None
        choice = self._choose(books, fields)  # delivery and delay may differ; the content may not
        behaviour = Behaviour(
            APPROVED, choice.behaviour.delay_ms, choice.behaviour.delivery, choice.behaviour.scaled
        )
        if stored.digest != _digest(fields):
            return Decision(
                answer(fields, resp_mti, DUPLICATE),
                behaviour,
                f"terminal {terminal_of(fields)} STAN {fields[STAN]} reused for a different request; "
                "nothing booked",
                stored.payment_id,
                duplicate=True,
            )
        return Decision(
            {**stored.response, "t": resp_mti},
            behaviour,
            f"repeat of {cls} STAN {fields[STAN]}: same answer, nothing booked",
            stored.payment_id,
            duplicate=True,
        )

    # -- the message log -------------------------------------------------------------------------
    @staticmethod
    def _log(
        books: Books,
        direction: str,
        conn: Connection,
        fields: dict[str, Any] | None,
        at: float | None = None,
        payment_id: int | None = None,
        delivery: str | None = None,
        note: str | None = None,
    ) -> int | None:
        if fields is None:
            return None
        return books.log_message(
            direction,
            at=at or time.time(),
            connection=conn.id,
            peer=conn.peer,
            mti=fields.get("t"),
            stan=fields.get(STAN),
            terminal=terminal_of(fields) or None,
            rrn=fields.get(RRN),
            code=fields.get(RESPONSE_CODE),
            payment_id=payment_id,
            fields=iso.mask_fields(fields),
            delivery=delivery,
            note=note,
        )


def _digest(fields: dict[str, Any]) -> str:
    same = {f: v for f, v in fields.items() if f not in REPEAT_MAY_CHANGE}
    return hashlib.sha256(json.dumps(same, sort_keys=True).encode()).hexdigest()[:32]

"""What the acquirer decides for each ISO 8583 request, booked in the ledger inside the caller's transaction.

Runs only on the ledger's writer thread (`Bookkeeper`), so requests are decided one at a time in arrival
order: a reversal can never overtake the payment it undoes.

    0100/0101  authorization       -> 0110  books a payment (kind authorization); approved holds the money
    0200/0201  financial request   -> 0210  books a payment (kind financial)
    0220/0221  financial advice    -> 0230  completes the 0100 named in field 90, else books an advice payment
    0400/0401  reversal request    -> 0410  original found by terminal (41) + field 90 (original MTI, STAN),
    0420/0421  reversal advice     -> 0430    or field 11 when 90 is absent; approved -> reversed
    0500/0501  reconciliation      -> 0510  host totals of the open batch; cut-over: approved -> settled
    0800/0801  network management  -> 0810  echo / sign-on, field 70 echoed

Response codes the host itself uses: 00 approved / acknowledged, 12 reversal of a settled payment, 25 original
not found (remembered: an original arriving later is booked reversed), 30 format error (missing or bad field),
40 unsupported message type, 94 same terminal + STAN repeated with different content, 95 reconciliation totals
differ (the cut-over still happens: the host's books are what is charged).

Reversals are full reversals (a differing field 4 is noted; partial reversals are not emulated).

Repeats (all but 0800): a request whose terminal, STAN and message class (0200 = 0201) were seen within
`window` seconds with the same content (every field but MTI and field 7) gets the stored answer again and
books nothing; the same terminal and STAN with other content gets 94.

Reconciliation totals (0500 from the terminal, 0510 from the host), for the terminal's payments not yet cut
over: 76/88 debits (purchases, processing code not 20xxxx) approved and not reversed, count/amount; 77/89
debits reversed; 74/86 credits (processing code 20xxxx, refunds) approved; 75/87 credits reversed; 97 net = 88
- 86 as 'D'/'C' + 16 digits. Only the totals the terminal sends are compared.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from harness.core.masking import mask_pan, printable
from harness.host.behaviour import APPROVED, Behaviour, Choice, Rule, RuleBook
from harness.protocols import iso8583 as iso
from harness.protocols.iso8583 import (
    AMOUNT,
    AUTH_CODE,
    CURRENCY,
    MERCHANT_ID,
    NETWORK_CODE,
    ORIGINAL_DATA,
    PAN,
    PROCESSING_CODE,
    RESPONSE_CODE,
    RRN,
    STAN,
    TERMINAL_ID,
)

FORMAT_ERROR, NOT_FOUND, UNSUPPORTED, DUPLICATE, RECONCILE_ERROR, INVALID = "30", "25", "40", "94", "95", "12"
KINDS = {"0100": "authorization", "0200": "financial", "0220": "advice"}
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
# Request fields copied into the answer when present.
ECHOED = (
    PROCESSING_CODE,
    AMOUNT,
    iso.TRANSMISSION_TIME,
    STAN,
    iso.LOCAL_TIME,
    iso.LOCAL_DATE,
    TERMINAL_ID,
    MERCHANT_ID,
    CURRENCY,
    ORIGINAL_DATA,
    NETWORK_CODE,
)
# Fields that may differ between a request and its repeat (every other field must be equal).
REPEAT_MAY_CHANGE = ("t", "p", "1", iso.TRANSMISSION_TIME)
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


def message_class(mti: str) -> str:
    """'0201' -> '0200': a repeat belongs to the class of the request it repeats."""
    return mti[:3] + "0" if len(mti) == 4 and mti[3] == "1" else mti


def response_mti(mti: str) -> str | None:
    """The answer's MTI for a request MTI; None when `mti` is not a request (a response, garbage)."""
    if mti in iso.RESPONSE_MTI:
        return iso.RESPONSE_MTI[mti]
    if len(mti) == 4 and mti.isdigit() and mti[2] in "02468" and mti[3] in "01":
        return mti[:2] + str(int(mti[2]) + 1) + "0"
    return None


@dataclass
class Connection:
    """Where a message came from: the host's connection number and the peer address."""

    id: int
    peer: str


@dataclass
class Decision:
    """What to send back for one received message, and how. `response` None = nothing to send."""

    response: dict[str, Any] | None
    behaviour: Behaviour
    reason: str
    payment_id: int | None = None
    duplicate: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def delivery(self) -> str:
        return self.behaviour.delivery if self.response is not None else "none"


class Acquirer:
    """Decides and books. `handle()` and `handle_malformed()` run inside a ledger transaction."""

    def __init__(self, file_rules: list[Rule] | None = None, window: float = 600.0):
        self.book = RuleBook(file_rules=list(file_rules or []))
        self.window = window
        self._data_version: int | None = None

    # -- rules set at run time (ledger table `rules`, written by the test process) -------------------
    def refresh_rules(self, db: sqlite3.Connection) -> None:
        """Reload run-time rules when another connection changed the ledger (cheap: PRAGMA data_version)."""
        version = db.execute("PRAGMA data_version").fetchone()[0]
        if version == self._data_version:
            return
        self._data_version = version
        rules = []
        for rid, text, remaining in db.execute(
            "SELECT id, rule, remaining FROM rules WHERE active = 1 "
            "AND (remaining IS NULL OR remaining > 0) ORDER BY id"
        ):
            rule = Rule.from_dict(json.loads(text), source="test")
            rule.id, rule.times = rid, remaining
            rules.append(rule)
        self.book.runtime = rules

    def _choose(self, db: sqlite3.Connection, fields: dict[str, Any]) -> Choice:
        choice = self.book.choose(fields)
        rule = choice.rule
        if rule is not None and rule.times is not None:
            rule.times -= 1
            if rule.id is not None:
                db.execute(
                    "UPDATE rules SET remaining = ?, used = used + 1 WHERE id = ?", (rule.times, rule.id)
                )
        elif rule is not None and rule.id is not None:
            db.execute("UPDATE rules SET used = used + 1 WHERE id = ?", (rule.id,))
        return choice

    # -- entry points ----------------------------------------------------------------------------
    def handle(self, db: sqlite3.Connection, fields: dict[str, Any], conn: Connection, at: float) -> Decision:
        """Book one decoded message and decide the answer."""
        mti = str(fields.get("t", ""))
        rx_id = self._log(db, "rx", conn, fields, at=at)
        resp_mti = response_mti(mti)
        if resp_mti is None:
            decision = Decision(None, Behaviour.approve(), f"{mti} is not a request; ignored")
            self._note(db, rx_id, decision.reason)
            return decision
        cls = message_class(mti)
        missing = [f for f in REQUIRED.get(cls, ()) if not str(fields.get(f, "")).strip()]
        bad_amount = AMOUNT in fields and not str(fields[AMOUNT]).isdigit()
        if cls not in REQUIRED:
            decision = self._refuse(fields, resp_mti, UNSUPPORTED, f"message type {mti} is not supported")
        elif missing or bad_amount:
            what = (
                f"missing field(s) {', '.join(missing)}" if missing else f"field 4 amount {fields[AMOUNT]!r}"
            )
            decision = self._refuse(fields, resp_mti, FORMAT_ERROR, f"format error: {what}")
        else:
            decision = self._repeat(db, fields, cls, resp_mti) or self._dispatch(
                db, fields, cls, resp_mti, at
            )
        self._link(db, rx_id, decision)
        if decision.notes:
            self._note(db, rx_id, "; ".join(decision.notes))
        self._log(
            db,
            "tx",
            conn,
            decision.response,
            payment_id=decision.payment_id,
            delivery=_delivery_text(decision),
            note=decision.reason,
        )
        return decision

    def handle_malformed(
        self, db: sqlite3.Connection, raw: bytes, error: str, conn: Connection, at: float, answer: bool = True
    ) -> Decision:
        """Book a frame that does not decode; answer format error when its MTI is readable, else nothing."""
        mti = raw[:4].decode("ascii", "replace")
        shown = printable(raw)
        db.execute(
            "INSERT INTO messages (at, direction, connection, peer, mti, fields, delivery, note) "
            "VALUES (?, 'rx', ?, ?, ?, ?, 'error', ?)",
            (at, conn.id, conn.peer, mti if mti.isdigit() else None, json.dumps({"raw": shown}), error),
        )
        resp_mti = response_mti(mti) if mti.isdigit() and answer else None
        if resp_mti is None:
            return Decision(None, Behaviour.approve(), f"malformed frame, no readable MTI: {error}")
        decision = self._refuse({}, resp_mti, FORMAT_ERROR, f"malformed {mti}: {error}")
        self._log(db, "tx", conn, decision.response, delivery="answer", note=decision.reason)
        return decision

    # -- per message class -----------------------------------------------------------------------
    def _dispatch(
        self, db: sqlite3.Connection, fields: dict[str, Any], cls: str, resp_mti: str, at: float
    ) -> Decision:
        choice = self._choose(db, fields)
        if cls in ("0100", "0200"):
            decision = self._payment(db, fields, cls, resp_mti, choice)
        elif cls == "0220":
            decision = self._advice(db, fields, resp_mti, choice)
        elif cls in ("0400", "0420"):
            decision = self._reversal(db, fields, resp_mti, choice)
        elif cls == "0500":
            decision = self._reconciliation(db, fields, resp_mti, choice)
        else:
            decision = Decision(
                self._answer(fields, resp_mti, choice.behaviour.code), choice.behaviour, choice.reason
            )
        if cls in KINDS or decision.response.get(RESPONSE_CODE) in FINAL_ANSWERS:
            self._remember(db, fields, cls, decision)
        return decision

    def _payment(
        self,
        db: sqlite3.Connection,
        fields: dict[str, Any],
        cls: str,
        resp_mti: str,
        choice: Choice,
        kind: str | None = None,
    ) -> Decision:
        code = choice.behaviour.code
        pid, rrn, auth = self._book_payment(db, fields, cls, kind or KINDS[cls], code, choice.reason)
        resp = self._answer(fields, resp_mti, code, rrn=rrn, auth=auth)
        decision = Decision(resp, choice.behaviour, choice.reason, pid)
        self._apply_orphan_reversal(db, fields, cls, pid, decision)
        return decision

    def _advice(
        self, db: sqlite3.Connection, fields: dict[str, Any], resp_mti: str, choice: Choice
    ) -> Decision:
        terminal = _terminal(fields)
        if ORIGINAL_DATA in fields and choice.behaviour.approves:
            omti, ostan = iso.parse_original_data(fields[ORIGINAL_DATA])
            if message_class(omti) == "0100":
                auth = self._find(db, terminal, ostan, "0100")
                if auth is not None and auth["state"] == "approved":
                    amount = int(fields[AMOUNT])
                    now = time.time()
                    db.execute(
                        "UPDATE payments SET amount = ?, updated = ? WHERE id = ?", (amount, now, auth["id"])
                    )
                    self._event(
                        db,
                        auth["id"],
                        "approved",
                        "approved",
                        f"completed by 0220 STAN {fields[STAN]}: amount {auth['amount']} -> {amount}",
                    )
                    resp = self._answer(fields, resp_mti, APPROVED, rrn=auth["rrn"], auth=auth["auth_code"])
                    return Decision(resp, choice.behaviour, f"completion of 0100 STAN {ostan}", auth["id"])
        return self._payment(db, fields, "0220", resp_mti, choice, kind="advice")

    def _reversal(
        self, db: sqlite3.Connection, fields: dict[str, Any], resp_mti: str, choice: Choice
    ) -> Decision:
        terminal = _terminal(fields)
        if ORIGINAL_DATA in fields:
            omti, ostan = iso.parse_original_data(fields[ORIGINAL_DATA])
            omti = message_class(omti) if omti.strip("0") else None
        else:
            omti, ostan = None, fields[STAN]
        if not choice.behaviour.approves:
            resp = self._answer(fields, resp_mti, choice.behaviour.code)
            return Decision(resp, choice.behaviour, f"{choice.reason}; reversal refused, nothing changed")
        original = self._find(db, terminal, ostan, omti)
        if original is None:
            known = db.execute(
                "SELECT 1 FROM orphan_reversals WHERE terminal = ? AND original_stan = ? "
                "AND applied_to IS NULL AND original_mti IS ?",
                (terminal, ostan, omti),
            ).fetchone()
            if not known:
                db.execute(
                    "INSERT INTO orphan_reversals (at, terminal, original_mti, original_stan) "
                    "VALUES (?,?,?,?)",
                    (time.time(), terminal, omti, ostan),
                )
            resp = self._answer(fields, resp_mti, NOT_FOUND)
            return Decision(
                resp,
                choice.behaviour,
                f"original {omti or 'request'} STAN {ostan} of terminal {terminal} not found; remembered",
            )
        pid, state = original["id"], original["state"]
        resp = self._answer(fields, resp_mti, APPROVED, rrn=original["rrn"])
        if state == "approved":
            self._set_state(db, pid, "approved", "reversed", f"{fields['t']} STAN {fields[STAN]}")
            decision = Decision(
                resp, choice.behaviour, f"reversed payment {pid} ({original['mti']} STAN {ostan})", pid
            )
            if AMOUNT in fields and fields[AMOUNT].isdigit() and int(fields[AMOUNT]) != original["amount"]:
                decision.notes.append(
                    f"reversal amount {int(fields[AMOUNT])} differs from the payment's {original['amount']}: "
                    "reversed in full (partial reversals are not emulated)"
                )
            return decision
        if state == "settled":
            resp[RESPONSE_CODE] = INVALID
            return Decision(
                resp, choice.behaviour, f"payment {pid} is settled (cut over); not reversible", pid
            )
        return Decision(resp, choice.behaviour, f"payment {pid} already {state}; nothing to reverse", pid)

    def _reconciliation(
        self, db: sqlite3.Connection, fields: dict[str, Any], resp_mti: str, choice: Choice
    ) -> Decision:
        terminal = _terminal(fields)
        if not choice.behaviour.approves:
            resp = self._answer(fields, resp_mti, choice.behaviour.code)
            return Decision(resp, choice.behaviour, f"{choice.reason}; no cut-over")
        host = self.open_totals(db, terminal)
        theirs = {}
        for f in TOTALS:
            if f in fields:
                try:
                    theirs[f] = int(fields[f])
                except ValueError:
                    return self._refuse(
                        fields, resp_mti, FORMAT_ERROR, f"format error: field {f} = {fields[f]!r}"
                    )
        differ = {f: (theirs[f], host[f]) for f in theirs if theirs[f] != host[f]}
        code = RECONCILE_ERROR if differ else APPROVED
        now = time.time()
        cur = db.execute(
            "INSERT INTO batches (at, terminal, host_totals, terminal_totals, code) VALUES (?,?,?,?,?)",
            (now, terminal, json.dumps(host), json.dumps(theirs) if theirs else None, code),
        )
        batch = cur.lastrowid
        for (pid,) in db.execute(
            "SELECT id FROM payments WHERE terminal = ? AND batch IS NULL AND state = 'approved'", (terminal,)
        ).fetchall():
            self._set_state(
                db, pid, "approved", "settled", f"cut-over by 0500 STAN {fields[STAN]} (batch {batch})"
            )
        db.execute("UPDATE payments SET batch = ? WHERE terminal = ? AND batch IS NULL", (batch, terminal))
        resp = self._answer(fields, resp_mti, code)
        for f in TOTALS:
            resp[f] = str(host[f]).zfill(COUNT_WIDTH if f in TOTALS[:4] else AMOUNT_WIDTH)
        net = host[iso.DEBITS_AMOUNT] - host[iso.CREDITS_AMOUNT]
        resp[iso.NET_SETTLEMENT] = ("D" if net >= 0 else "C") + str(abs(net)).zfill(AMOUNT_WIDTH)
        reason = f"cut-over batch {batch}" + (f"; totals differ (terminal, host): {differ}" if differ else "")
        return Decision(resp, choice.behaviour, reason)

    @staticmethod
    def open_totals(db: sqlite3.Connection, terminal: str) -> dict[str, int]:
        """The reconciliation totals (field number -> value) of a terminal's payments not yet cut over."""
        t = dict.fromkeys(TOTALS, 0)
        rows = db.execute(
            "SELECT state, amount, pcode FROM payments WHERE terminal = ? AND batch IS NULL", (terminal,)
        )
        for state, amount, pcode in rows:
            credit = str(pcode or "").startswith("20")
            if state == "approved":
                count, total = (
                    (iso.CREDITS_COUNT, iso.CREDITS_AMOUNT)
                    if credit
                    else (iso.DEBITS_COUNT, iso.DEBITS_AMOUNT)
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

    # -- repeats ---------------------------------------------------------------------------------
    def _repeat(
        self, db: sqlite3.Connection, fields: dict[str, Any], cls: str, resp_mti: str
    ) -> Decision | None:
        if cls == "0800":
            return None  # network management moves no money: every echo is answered afresh
        row = db.execute(
            "SELECT at, digest, response, payment_id FROM replies WHERE terminal = ? AND stan = ? "
            "AND class = ?",
            (_terminal(fields), fields[STAN], cls),
        ).fetchone()
        if row is None or row[0] < time.time() - self.window:
            return None
        at, digest, response, pid = row
        choice = self._choose(db, fields)  # delivery and delay may differ; the content may not
        behaviour = Behaviour(
            APPROVED, choice.behaviour.delay_ms, choice.behaviour.delivery, choice.behaviour.scaled
        )
        if digest != _digest(fields):
            resp = self._answer(fields, resp_mti, DUPLICATE)
            return Decision(
                resp,
                behaviour,
                f"terminal {_terminal(fields)} STAN {fields[STAN]} reused for a "
                "different request; nothing booked",
                pid,
                duplicate=True,
            )
        resp = json.loads(response)
        resp["t"] = resp_mti
        return Decision(
            resp,
            behaviour,
            f"repeat of {cls} STAN {fields[STAN]}: same answer, nothing booked",
            pid,
            duplicate=True,
        )

    def _remember(self, db: sqlite3.Connection, fields: dict[str, Any], cls: str, decision: Decision) -> None:
        if decision.response is None:
            return
        db.execute(
            "INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                _terminal(fields),
                fields[STAN],
                cls,
                time.time(),
                _digest(fields),
                json.dumps(decision.response),
                decision.payment_id,
            ),
        )

    # -- booking helpers -------------------------------------------------------------------------
    def _book_payment(
        self, db: sqlite3.Connection, fields: dict[str, Any], cls: str, kind: str, code: str, reason: str
    ) -> tuple[int, str, str | None]:
        now = time.time()
        state = "approved" if code == APPROVED else "declined"
        (next_id,) = db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM payments").fetchone()
        rrn = (
            time.strftime("%y%j", time.gmtime(now))[1:]
            + time.strftime("%H", time.gmtime(now))
            + f"{next_id:06d}"
        )
        auth = f"{(next_id * 7919) % 1000000:06d}" if state == "approved" else None
        pan = fields.get(PAN)
        db.execute(
            "INSERT INTO payments (id, kind, mti, terminal, merchant, stan, rrn, auth_code, code, amount, "
            "currency, pcode, pan, state, created, updated, reason) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                next_id,
                kind,
                cls,
                _terminal(fields),
                fields.get(MERCHANT_ID),
                fields[STAN],
                rrn,
                auth,
                code,
                int(fields[AMOUNT]),
                fields.get(CURRENCY),
                fields.get(PROCESSING_CODE),
                mask_pan(pan) if pan else None,
                state,
                now,
                now,
                reason,
            ),
        )
        self._event(db, next_id, None, state, reason)
        return next_id, rrn, auth

    def _apply_orphan_reversal(
        self, db: sqlite3.Connection, fields: dict[str, Any], cls: str, pid: int, decision: Decision
    ) -> None:
        row = db.execute(
            "SELECT id FROM orphan_reversals WHERE terminal = ? AND original_stan = ? AND applied_to IS "
            "NULL AND (original_mti IS NULL OR original_mti = ?) AND at >= ? ORDER BY id LIMIT 1",
            (_terminal(fields), fields[STAN], cls, time.time() - self.window),
        ).fetchone()
        if row is None:
            return
        db.execute("UPDATE orphan_reversals SET applied_to = ? WHERE id = ?", (pid, row[0]))
        state = db.execute("SELECT state FROM payments WHERE id = ?", (pid,)).fetchone()[0]
        if state == "approved":
            self._set_state(db, pid, "approved", "reversed", "its reversal arrived before it")
        decision.notes.append("a reversal for this request arrived earlier: booked reversed")

    def _find(self, db: sqlite3.Connection, terminal: str, stan: str, cls: str | None) -> sqlite3.Row | None:
        sql = (
            "SELECT id, mti, state, rrn, auth_code, amount FROM payments WHERE terminal = ? AND stan = ? "
            "AND created >= ?"
        )
        args: list[Any] = [terminal, stan, time.time() - self.window]
        if cls:
            sql, args = sql + " AND mti = ?", [*args, cls]
        row = db.execute(sql + " ORDER BY id DESC LIMIT 1", args).fetchone()
        if row is None:
            return None
        return dict(zip(("id", "mti", "state", "rrn", "auth_code", "amount"), row, strict=True))

    def _set_state(self, db: sqlite3.Connection, pid: int, old: str, new: str, reason: str) -> None:
        db.execute(
            "UPDATE payments SET state = ?, updated = ? WHERE id = ? AND state = ?",
            (new, time.time(), pid, old),
        )
        self._event(db, pid, old, new, reason)

    @staticmethod
    def _event(db: sqlite3.Connection, pid: int, old: str | None, new: str, reason: str) -> None:
        db.execute(
            "INSERT INTO events (at, payment_id, from_state, to_state, reason) VALUES (?, ?, ?, ?, ?)",
            (time.time(), pid, old, new, reason),
        )

    @staticmethod
    def _answer(
        fields: dict[str, Any], resp_mti: str, code: str, rrn: str | None = None, auth: str | None = None
    ) -> dict[str, Any]:
        resp = {"t": resp_mti, **{f: fields[f] for f in ECHOED if f in fields}}
        if rrn:
            resp[RRN] = rrn
        elif RRN in fields:
            resp[RRN] = fields[RRN]
        if auth and code == APPROVED:
            resp[AUTH_CODE] = auth
        resp[RESPONSE_CODE] = code
        return resp

    def _refuse(self, fields: dict[str, Any], resp_mti: str, code: str, reason: str) -> Decision:
        return Decision(self._answer(fields, resp_mti, code), Behaviour.approve(), reason)

    @staticmethod
    def _log(
        db: sqlite3.Connection,
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
        cur = db.execute(
            "INSERT INTO messages (at, direction, connection, peer, mti, stan, terminal, rrn, code, "
            "payment_id, "
            "fields, delivery, note) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                at or time.time(),
                direction,
                conn.id,
                conn.peer,
                fields.get("t"),
                fields.get(STAN),
                _terminal(fields) or None,
                fields.get(RRN),
                fields.get(RESPONSE_CODE),
                payment_id,
                json.dumps(iso.mask_fields(fields)),
                delivery,
                note,
            ),
        )
        return cur.lastrowid

    @staticmethod
    def _link(db: sqlite3.Connection, rx_id: int | None, decision: Decision) -> None:
        if rx_id is not None:
            db.execute(
                "UPDATE messages SET payment_id = ?, delivery = ? WHERE id = ?",
                (decision.payment_id, "duplicate" if decision.duplicate else None, rx_id),
            )

    @staticmethod
    def _note(db: sqlite3.Connection, rx_id: int | None, note: str) -> None:
        if rx_id is not None:
            db.execute("UPDATE messages SET note = ? WHERE id = ?", (note, rx_id))


def _terminal(fields: dict[str, Any]) -> str:
    return str(fields.get(TERMINAL_ID, "")).strip()


def _digest(fields: dict[str, Any]) -> str:
    same = {f: v for f, v in fields.items() if f not in REPEAT_MAY_CHANGE}
    return hashlib.sha256(json.dumps(same, sort_keys=True).encode()).hexdigest()[:32]


def _delivery_text(decision: Decision) -> str:
    b = decision.behaviour
    text = decision.delivery
    if b.delay_ms and decision.response is not None:
        text += f" after {b.delay_ms:g} ms" + (" (scaled)" if b.scaled else "")
    return text

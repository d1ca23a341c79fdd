"""What the emulated terminal says to each ZVT command of the ECR, once it has acknowledged it (80 00): the
intermediate statuses, the Status-Information and the issue of goods, the receipt lines, the completion (06 0F)
or abort (06 1E). The connection side (`harness.terminal.ecr`) runs one of these at a time.

    06 00 registration     config byte (intermediate status, who prints receipts and how), currency check
    05 01 status enquiry   06 0F with the software version and terminal status
    06 01 authorization    a sale (`core.payments`), then 04 0F answered 80 00 / 84 9C / 84 xx
    06 20 repeat receipt   the last sale or void, whatever its outcome
    06 30 reversal         the void of a receipt number (`core.admin`)
    06 50 end of day       the batch, after every owed reversal (`core.admin`)
    06 02 log off
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from harness.protocols import zvt
from harness.terminal.outcome import Outcome
from harness.terminal.receipt import receipt_lines
from harness.terminal.reversals import REASON_CANCELLED

if TYPE_CHECKING:
    from harness.terminal.ecr import EcrServer, EcrSession

SW_VERSION = "posrig-emulated-terminal 1.0"
# The order of the BMPs in a Status-Information (04 0F).
STATUS_ORDER = (
    "result_code",
    "amount",
    "trace",
    "original_trace",
    "time",
    "date",
    "pan",
    "card_name",
    "card_type",
    "terminal_id",
    "aid",
    "receipt_no",
    "currency",
    "additional_text",
    "totals",
)


class EcrCommands:
    """The command dialogues of one terminal, and what the ECR registered for (config byte, currency)."""

    def __init__(self, server: EcrServer, ecr_receipts: bool | None = None):
        self.server = server
        self.core = server.core
        # None: as the ECR asked in Registration (config-byte bits 02/04 and 80, `zvt.receipt_printout`);
        # True: always 06 D1 print lines; False: never.
        self.ecr_receipts = ecr_receipts
        self.config_byte = zvt.CONFIG_INTERMEDIATE_STATUS
        self.registered_currency: int | None = None
        self.handlers: dict[str, Callable[[EcrSession, zvt.Message], None]] = {
            "registration": self.registration,
            "authorization": self.authorization,
            "repeat_receipt": self.repeat_receipt,
            "status_enquiry": self.status_enquiry,
            "reversal": self.reversal,
            "end_of_day": self.end_of_day,
            "log_off": self.log_off,
        }

    # -- helpers ---------------------------------------------------------------------------------------------
    @property
    def t3(self) -> float:
        return self.core.seconds("t3")

    def _printout(self, admin: bool = False) -> str:
        """Who prints this receipt (`zvt.receipt_printout`): 06 D1 lines to the ECR only for 'print_lines'. With
        the config byte's print-type bit (80) clear the ECR compiles the receipt itself from the status
        information and gets no lines; with 02/04 clear the PT prints it on its own printer."""
        if self.ecr_receipts is not None:
            return zvt.RECEIPT_PRINT_LINES if self.ecr_receipts else zvt.RECEIPT_BY_PT
        return zvt.receipt_printout(self.config_byte, admin)

    def _print_receipt(self, s: EcrSession, row: dict[str, Any], status: dict[str, Any], admin: bool = False) -> None:
        lines = receipt_lines(row, status)
        printout = self._printout(admin)
        self.server.note("receipt", txn=row["id"], printed_by=printout, text="\n".join(lines))
        if printout != zvt.RECEIPT_PRINT_LINES:
            return
        for i, line in enumerate(lines):
            attr = zvt.PRINT_LAST_LINE if i == len(lines) - 1 else zvt.PRINT_NORMAL
            if s.request(zvt.encode("print_line", attribute=attr, text=line), self.t3) is None:
                return

    def _finish(self, s: EcrSession, ok: bool, code: int) -> None:
        if ok:
            s.request(zvt.encode("completion"), self.t3)
        else:
            s.request(zvt.encode("abort", result_code=code), self.t3)

    @staticmethod
    def _status_apdu(status: dict[str, Any]) -> bytes:
        return zvt.encode(
            "status_information", **{k: status[k] for k in STATUS_ORDER if status.get(k) is not None}
        )

    def _deliver_status(self, s: EcrSession, status: dict[str, Any]) -> str:
        """Send the Status-Information; the ECR's answer decides the issue of goods:
        80 00 booked, 84 9C wait and repeat, other 84 xx refused, nothing = unconfirmed."""
        core = self.core
        deadline = time.monotonic() + core.seconds("t4")
        while True:
            reply = s.request(self._status_apdu(status), self.t3)
            if reply is None:
                return "unconfirmed"
            if reply.name in ("ack", "ack_84"):
                return "booked"
            if reply.fields.get("result_code") == zvt.RESULT_PLEASE_WAIT:
                if time.monotonic() + core.seconds("goods_retry") > deadline:
                    return "unconfirmed"
                self.server.note("goods_wait", seconds=round(core.seconds("goods_retry"), 3))
                if core.wait_abort(core.seconds("goods_retry")):
                    return "aborted"  # the cashier gave up while the till waited
                continue
            return "refused"

    def _intermediate(self, s: EcrSession, limit: int | None) -> Callable[..., None]:
        sent = [0]

        def status(code: int, timeout: int | None = None) -> None:
            if not self.config_byte & zvt.CONFIG_INTERMEDIATE_STATUS:
                return
            if limit is not None and sent[0] >= limit:
                return
            sent[0] += 1
            fields = {"status": code} if timeout is None else {"status": code, "timeout": timeout}
            s.request(zvt.encode("intermediate_status", **fields), self.t3)

        return status

    # -- commands --------------------------------------------------------------------------------------------
    def registration(self, s: EcrSession, msg: zvt.Message) -> None:
        self.config_byte = int(msg.fields.get("config_byte", 0))
        self.registered_currency = msg.fields.get("currency")
        if self.registered_currency is not None and self.registered_currency != self.core.currency:
            self._finish(s, False, zvt.RESULT_WRONG_CURRENCY)
            return
        s.request(
            zvt.encode(
                "completion",
                payment_type=0x00,
                terminal_id=self.core.terminal_id,
                currency=self.registered_currency,
            ),
            self.t3,
        )

    def log_off(self, s: EcrSession, msg: zvt.Message) -> None:
        return

    def status_enquiry(self, s: EcrSession, msg: zvt.Message) -> None:
        s.request(
            zvt.encode("completion", sw_version=SW_VERSION, terminal_status=zvt.TERMINAL_STATUS_READY),
            self.t3,
        )

    def authorization(self, s: EcrSession, msg: zvt.Message) -> None:
        f = msg.fields
        if f.get("amount") is None:
            self._finish(s, False, zvt.RESULT_NOT_POSSIBLE)
            return
        currency = f.get("currency")
        if currency is not None and currency != self.core.currency:
            self._finish(s, False, zvt.RESULT_WRONG_CURRENCY)
            return
        card_timeout = self.core.timing.seconds(f["timeout"]) if f.get("timeout") else None
        outcome = self.core.payments.authorize(
            int(f["amount"]), currency, card_timeout, status=self._intermediate(s, f.get("max_status_infos"))
        )
        self._report(s, outcome)
        if outcome.has_card_data:
            self.core.after_payment()    # its merchant copy, if it prints one: still busy

    def _report(self, s: EcrSession, outcome: Outcome) -> None:
        core = self.core
        journal = core.journal
        if not outcome.has_card_data:
            self._finish(s, False, outcome.result_code)
            return
        status = dict(outcome.status)
        status["receipt_no"] = journal.next_number("receipt_no")
        journal.update(outcome.txn_id, receipt_no=status["receipt_no"])
        code = outcome.result_code
        decision = self._deliver_status(s, status)
        if outcome.approved:
            if decision == "booked" and core.aborted:
                decision = "aborted"
            self.server.note("issue_of_goods", txn=outcome.txn_id, decision=decision)
            if decision == "booked":
                journal.update(outcome.txn_id, goods="booked")
            elif decision == "refused":
                journal.update(outcome.txn_id, goods="refused")
                core.reversals.reverse(outcome.txn_id, REASON_CANCELLED, zvt.RESULT_PROCESSING_ERROR)
                code = zvt.RESULT_PROCESSING_ERROR
            elif decision == "aborted":
                core.reversals.reverse(outcome.txn_id, REASON_CANCELLED, zvt.RESULT_ABORTED)
                code = zvt.RESULT_ABORTED
            else:
                journal.update(outcome.txn_id, goods="unconfirmed")
                if core.unconfirmed == "reverse":
                    core.reversals.reverse(outcome.txn_id, REASON_CANCELLED, zvt.RESULT_ABORTED)
                    code = zvt.RESULT_ABORTED
        row = journal.get(outcome.txn_id)
        self._print_receipt(s, row, {**status, "result_code": code}, admin=row["kind"] == "end_of_day")
        self._finish(s, code == zvt.RESULT_SUCCESS, code)

    def repeat_receipt(self, s: EcrSession, msg: zvt.Message) -> None:
        # The last payment or reversal, whatever its outcome: a till asking after an abort must not be shown
        # an older approval as if it were the answer.
        rows = [r for r in self.core.journal.transactions() if r["kind"] in ("sale", "void")]
        if not rows:
            self._finish(s, False, zvt.RESULT_NOT_POSSIBLE)
            return
        row = rows[-1]
        when = datetime.fromtimestamp(row["created"])
        status = {
            "result_code": row["result_code"] if row["result_code"] is not None else zvt.RESULT_SYSTEM_ERROR,
            "amount": row["amount"],
            "trace": row["trace"],
            "time": when.strftime("%H%M%S"),
            "date": when.strftime("%m%d"),
            "pan": row["masked_pan"] or None,
            "card_name": row["card_name"],
            "card_type": row["card_type"],
            "terminal_id": self.core.terminal_id,
            "aid": (row["auth_code"] or "")[:8] or None,
            "receipt_no": row["receipt_no"],
            "currency": row["currency"],
            "additional_text": f"OFFLINE {row['host_rc']}" if row["offline"] else None,
        }
        s.request(self._status_apdu(status), self.t3)
        self._print_receipt(s, row, status)
        self._finish(s, True, zvt.RESULT_SUCCESS)

    def reversal(self, s: EcrSession, msg: zvt.Message) -> None:
        receipt_no = msg.fields.get("receipt_no")
        if receipt_no is None:
            self._finish(s, False, zvt.RESULT_NOT_POSSIBLE)
            return
        self._report(s, self.core.admin.void(int(receipt_no)))

    def end_of_day(self, s: EcrSession, msg: zvt.Message) -> None:
        # 0F names the PT's own automatic (time-controlled) end-of-day batch; one the ECR asked for is announced
        # as 0E "please wait" (ZVT intermediate status table; as Portalum.Zvt's and kotlin-zvt-library's tables).
        self._intermediate(s, None)(zvt.STATUS_PLEASE_WAIT)
        outcome = self.core.admin.end_of_day()
        s.request(self._status_apdu(outcome.status), self.t3)
        row = self.core.journal.get(outcome.txn_id)
        self._print_receipt(s, row, outcome.status, admin=True)
        self._finish(s, outcome.result_code == zvt.RESULT_SUCCESS, outcome.result_code)

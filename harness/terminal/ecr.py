"""The emulated terminal's ZVT ECR interface: a TCP server speaking to the till (the ECR) on port 20007.

Each connection has a reader thread (acknowledgements, 06 B0 abort and new commands arrive at any time) and runs
one command at a time in a worker thread. Malformed bytes are answered with 84 9A and the connection keeps serving.
Every APDU is written, decoded and card-number-masked, to the transcript.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from datetime import datetime
from typing import Any

from harness.protocols import zvt
from harness.terminal.core import REASON_CANCELLED, Outcome, TerminalCore

log = logging.getLogger(__name__)

SW_VERSION = "posrig-emulated-terminal 1.0"
ACK = zvt.encode("ack")


def receipt_lines(row: dict[str, Any], status: dict[str, Any], merchant: str = "POSRIG TEST MERCHANT") -> list[str]:
    """The customer receipt as text lines (PCI: masked card number, no expiry date)."""
    result = status.get("result_code", row.get("result_code"))
    kind = {"sale": "CARD PAYMENT", "void": "REVERSAL", "end_of_day": "END OF DAY"}.get(row["kind"], row["kind"])
    amount = status.get("amount", row.get("amount")) or 0
    when = datetime.fromtimestamp(row["created"])
    lines = [merchant, kind, f"TERMINAL-ID {status.get('terminal_id', '')}", when.strftime("DATE %d.%m.%Y TIME %H:%M:%S"),
             f"TRACE {status.get('trace', row.get('trace'))}"]
    if status.get("receipt_no") is not None:
        lines.append(f"RECEIPT {status['receipt_no']}")
    if status.get("pan"):
        lines += [f"{status.get('card_name', '')}", f"CARD {status['pan']}"]
    if status.get("aid"):
        lines.append(f"AUTH CODE {status['aid']}")
    lines.append(f"AMOUNT EUR {amount // 100}.{amount % 100:02d}")
    if status.get("additional_text"):
        lines.append(str(status["additional_text"]))
    lines.append("APPROVED" if result == 0 else f"NOT APPROVED ({zvt.RESULT_CODES.get(result, 'declined')})")
    return lines


class EcrSession:
    """One TCP connection from the ECR."""

    def __init__(self, server: EcrServer, sock: socket.socket, peer: str):
        self.server = server
        self.sock = sock
        self.peer = peer
        self.replies: queue.Queue[zvt.Message] = queue.Queue()
        self.closed = threading.Event()
        self._send_lock = threading.Lock()
        self.thread = threading.Thread(target=self._read_loop, name=f"zvt-ecr-{peer}", daemon=True)

    # -- I/O ----------------------------------------------------------------------------------------------------------
    def send(self, raw: bytes) -> bool:
        msg = zvt.decode_apdu(zvt.ApduReader().feed(raw)[0])
        self.server.note("tx", peer=self.peer, apdu=raw.hex(" "), decoded=zvt.describe(msg))
        try:
            with self._send_lock:
                self.sock.sendall(raw)
            return True
        except OSError as exc:
            self.server.note("send_failed", peer=self.peer, error=str(exc))
            self.closed.set()
            return False

    def request(self, raw: bytes, timeout: float) -> zvt.Message | None:
        """Send and wait for the ECR's 80 00 / 84 xx; None when none arrives in time or the link is gone."""
        while not self.replies.empty():
            self.replies.get_nowait()
        if not self.send(raw):
            return None
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or (self.closed.is_set() and self.replies.empty()):
                self.server.note("no_acknowledgement", peer=self.peer, seconds=round(timeout, 3))
                return None
            try:
                return self.replies.get(timeout=min(left, 0.05))
            except queue.Empty:
                continue

    def _read_loop(self) -> None:
        reader = zvt.ApduReader()
        while not self.closed.is_set():
            try:
                chunk = self.sock.recv(4096)
            except OSError:
                chunk = b""
            if not chunk:
                if reader.pending:
                    self.server.note("half_apdu_dropped", peer=self.peer, bytes=len(reader.pending))
                break
            try:
                apdus = reader.feed(chunk)
            except zvt.ZvtError as exc:
                self.server.note("malformed", peer=self.peer, error=str(exc))
                self.send(zvt.encode("nack", result_code=exc.code))
                continue
            for apdu in apdus:
                self._dispatch(apdu)
        self.closed.set()
        self.server.note("disconnected", peer=self.peer)
        try:
            self.sock.close()
        except OSError:
            pass

    def _dispatch(self, apdu: zvt.Apdu) -> None:
        try:
            msg = zvt.decode_apdu(apdu)
        except zvt.ZvtError as exc:
            self.server.note("malformed", peer=self.peer, apdu=_hex(apdu), error=str(exc))
            self.send(zvt.encode("nack", result_code=exc.code))
            return
        self.server.note("rx", peer=self.peer, apdu=_hex(apdu, msg), decoded=zvt.describe(msg))
        if msg.name in ("ack", "ack_84", "nack"):
            self.replies.put(msg)
        elif msg.name == "ecr_abort":
            self.send(ACK)
            self.server.core.abort(source="ecr")
        elif msg.name in self.server.handlers:
            self.server.submit(self, msg)
        else:
            self.server.note("unsupported", peer=self.peer, command=msg.name)
            self.send(zvt.encode("nack", result_code=0x83))

    def close(self) -> None:
        self.closed.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def _hex(apdu: zvt.Apdu, msg: zvt.Message | None = None) -> str:
    """APDU bytes for the transcript; withheld when the ECR sent card data in clear (manual entry)."""
    if msg is not None and any(k in msg.fields for k in ("pan", "track1", "track2", "track3")):
        return f"{apdu.cls:02x} {apdu.ins:02x} <{len(apdu.data)} bytes with card data withheld>"
    return apdu.to_bytes().hex(" ")


class EcrServer:
    """Accepts ECR connections on a listening socket and runs their ZVT commands against a TerminalCore."""

    def __init__(self, core: TerminalCore, listener: socket.socket, *, transcript: Any = None,
                 ecr_receipts: bool | None = None):
        self.core = core
        self.listener = listener
        self.transcript = transcript
        self.ecr_receipts = ecr_receipts          # None: as the ECR asked in Registration (config-byte bit 02)
        self.config_byte = zvt.CONFIG_INTERMEDIATE_STATUS
        self.registered_currency: int | None = None
        self.sessions: list[EcrSession] = []
        self.workers: list[threading.Thread] = []
        self._closed = threading.Event()
        self._accept = threading.Thread(target=self._accept_loop, name="zvt-accept", daemon=True)
        self.handlers = {
            "registration": self._registration, "authorization": self._authorization,
            "repeat_receipt": self._repeat_receipt, "status_enquiry": self._status_enquiry,
            "reversal": self._reversal, "end_of_day": self._end_of_day, "log_off": self._log_off,
        }

    @property
    def address(self) -> tuple[str, int]:
        return self.listener.getsockname()[:2]

    def start(self) -> None:
        self._accept.start()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                sock, peer = self.listener.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            session = EcrSession(self, sock, f"{peer[0]}:{peer[1]}")
            self.note("connected", peer=session.peer)
            self.sessions = [s for s in self.sessions if not s.closed.is_set()] + [session]
            session.thread.start()

    def submit(self, session: EcrSession, msg: zvt.Message) -> None:
        if not self.core.busy.acquire(blocking=False):
            self.note("busy", peer=session.peer, command=msg.name)
            session.send(zvt.encode("nack", result_code=0xA0))
            return
        worker = threading.Thread(target=self._run, args=(session, msg), name=f"zvt-{msg.name}", daemon=True)
        self.workers = [w for w in self.workers if w.is_alive()] + [worker]
        worker.start()

    def _run(self, session: EcrSession, msg: zvt.Message) -> None:
        self.core.begin()
        try:
            session.send(ACK)
            self.handlers[msg.name](session, msg)
        except Exception as exc:  # noqa: BLE001 - a failing command must not stop the terminal
            log.exception("ZVT %s failed", msg.name)
            self.note("command_failed", command=msg.name, error=repr(exc))
            session.send(zvt.encode("abort", result_code=0xFF))
        finally:
            self.core.end()
            self.core.busy.release()

    # -- helpers -------------------------------------------------------------------------------------------------------
    @property
    def t3(self) -> float:
        return self.core.seconds("t3")

    def _prints(self, admin: bool = False) -> bool:
        if self.ecr_receipts is not None:
            return self.ecr_receipts
        return bool(self.config_byte & (zvt.CONFIG_ECR_PRINTS_ADMIN if admin else zvt.CONFIG_ECR_PRINTS_PAYMENT))

    def _print_receipt(self, s: EcrSession, row: dict[str, Any], status: dict[str, Any]) -> None:
        lines = receipt_lines(row, status)
        self.note("receipt", txn=row["id"], text="\n".join(lines))
        for i, line in enumerate(lines):
            attr = zvt.PRINT_LAST_LINE if i == len(lines) - 1 else zvt.PRINT_NORMAL
            if s.request(zvt.encode("print_line", attribute=attr, text=line), self.t3) is None:
                return

    def _finish(self, s: EcrSession, ok: bool, code: int) -> None:
        if ok:
            s.request(zvt.encode("completion"), self.t3)
        else:
            s.request(zvt.encode("abort", result_code=code), self.t3)

    def _status_apdu(self, status: dict[str, Any]) -> bytes:
        order = ("result_code", "amount", "trace", "original_trace", "time", "date", "pan", "card_name", "card_type",
                 "terminal_id", "aid", "receipt_no", "currency", "additional_text", "totals")
        return zvt.encode("status_information", **{k: status[k] for k in order if status.get(k) is not None})

    def _deliver_status(self, s: EcrSession, status: dict[str, Any]) -> str:
        """Send the Status-Information; the ECR's answer decides the issue of goods:
        80 00 booked, 84 9C wait and repeat, other 84 xx refused, nothing = unconfirmed."""
        deadline = time.monotonic() + self.core.seconds("t4")
        while True:
            reply = s.request(self._status_apdu(status), self.t3)
            if reply is None:
                return "unconfirmed"
            if reply.name in ("ack", "ack_84"):
                return "booked"
            if reply.fields.get("result_code") == 0x9C:
                if time.monotonic() + self.core.seconds("goods_retry") > deadline:
                    return "unconfirmed"
                self.note("goods_wait", seconds=round(self.core.seconds("goods_retry"), 3))
                time.sleep(self.core.seconds("goods_retry"))
                continue
            return "refused"

    def _intermediate(self, s: EcrSession, limit: int | None) -> Any:
        sent = [0]

        def status(code: int) -> None:
            if not self.config_byte & zvt.CONFIG_INTERMEDIATE_STATUS:
                return
            if limit is not None and sent[0] >= limit:
                return
            sent[0] += 1
            s.request(zvt.encode("intermediate_status", status=code), self.t3)
        return status

    # -- commands ---------------------------------------------------------------------------------------------------
    def _registration(self, s: EcrSession, msg: zvt.Message) -> None:
        self.config_byte = int(msg.fields.get("config_byte", 0))
        self.registered_currency = msg.fields.get("currency")
        if self.registered_currency is not None and self.registered_currency != self.core.currency:
            self._finish(s, False, 0x6F)
            return
        s.request(zvt.encode("completion", payment_type=0x00, terminal_id=self.core.terminal_id,
                             currency=self.registered_currency), self.t3)

    def _log_off(self, s: EcrSession, msg: zvt.Message) -> None:
        return

    def _status_enquiry(self, s: EcrSession, msg: zvt.Message) -> None:
        s.request(zvt.encode("completion", sw_version=SW_VERSION, terminal_status=zvt.TERMINAL_STATUS_READY), self.t3)

    def _authorization(self, s: EcrSession, msg: zvt.Message) -> None:
        f = msg.fields
        if f.get("amount") is None:
            self._finish(s, False, 0x83)
            return
        currency = f.get("currency")
        if currency is not None and currency != self.core.currency:
            self._finish(s, False, 0x6F)
            return
        card_timeout = self.core.timing.seconds(f["timeout"]) if f.get("timeout") else None
        outcome = self.core.authorize(int(f["amount"]), currency, card_timeout,
                                      status=self._intermediate(s, f.get("max_status_infos")))
        self._report(s, outcome)

    def _report(self, s: EcrSession, outcome: Outcome) -> None:
        journal = self.core.journal
        if not outcome.has_card_data:
            self._finish(s, False, outcome.result_code)
            return
        status = dict(outcome.status)
        status["receipt_no"] = journal.next_number("receipt_no")
        journal.update(outcome.txn_id, receipt_no=status["receipt_no"])
        code = outcome.result_code
        decision = self._deliver_status(s, status)
        if outcome.approved:
            if decision == "booked" and self.core.aborted:
                decision = "aborted"
            self.note("issue_of_goods", txn=outcome.txn_id, decision=decision)
            if decision == "booked":
                journal.update(outcome.txn_id, goods="booked")
            elif decision == "refused":
                journal.update(outcome.txn_id, goods="refused")
                self.core.reverse(outcome.txn_id, REASON_CANCELLED, 0x66)
                code = 0x66
            elif decision == "aborted":
                self.core.reverse(outcome.txn_id, REASON_CANCELLED, 0x6C)
                code = 0x6C
            else:
                journal.update(outcome.txn_id, goods="unconfirmed")
                if self.core.unconfirmed == "reverse":
                    self.core.reverse(outcome.txn_id, REASON_CANCELLED, 0x6C)
                    code = 0x6C
        row = journal.get(outcome.txn_id)
        if self._prints(admin=row["kind"] == "end_of_day"):
            self._print_receipt(s, row, {**status, "result_code": code})
        self._finish(s, code == 0, code)

    def _repeat_receipt(self, s: EcrSession, msg: zvt.Message) -> None:
        rows = [r for r in self.core.journal.transactions() if r["receipt_no"] is not None]
        if not rows:
            self._finish(s, False, 0x83)
            return
        row = rows[-1]
        when = datetime.fromtimestamp(row["created"])
        status = {"result_code": row["result_code"] if row["result_code"] is not None else 0xFF,
                  "amount": row["amount"], "trace": row["trace"], "time": when.strftime("%H%M%S"),
                  "date": when.strftime("%m%d"), "pan": row["masked_pan"], "card_name": row["card_name"],
                  "terminal_id": self.core.terminal_id, "aid": (row["auth_code"] or "")[:8] or None,
                  "receipt_no": row["receipt_no"], "currency": row["currency"],
                  "additional_text": f"OFFLINE {row['host_rc']}" if row["offline"] else None}
        s.request(self._status_apdu(status), self.t3)
        if self._prints():
            self._print_receipt(s, row, status)
        self._finish(s, True, 0)

    def _reversal(self, s: EcrSession, msg: zvt.Message) -> None:
        receipt_no = msg.fields.get("receipt_no")
        if receipt_no is None:
            self._finish(s, False, 0x83)
            return
        self._report(s, self.core.void(int(receipt_no)))

    def _end_of_day(self, s: EcrSession, msg: zvt.Message) -> None:
        self._intermediate(s, None)(0x0F)
        outcome = self.core.end_of_day()
        s.request(self._status_apdu(outcome.status), self.t3)
        row = self.core.journal.get(outcome.txn_id)
        if self._prints(admin=True):
            self._print_receipt(s, row, outcome.status)
        self._finish(s, outcome.result_code == 0, outcome.result_code)

    # -- lifecycle ---------------------------------------------------------------------------------------------------
    def note(self, event: str, **fields: Any) -> None:
        if self.transcript is not None:
            self.transcript.write(event, link="zvt", **fields)

    def close(self, timeout: float = 2.0) -> None:
        self._closed.set()
        try:
            self.listener.shutdown(socket.SHUT_RDWR)      # wakes the accept() of the accept thread
        except OSError:
            pass
        try:
            self.listener.close()
        except OSError:
            pass
        for s in list(self.sessions):
            s.close()
        deadline = time.monotonic() + timeout
        for t in [self._accept, *(s.thread for s in self.sessions), *self.workers]:
            if t.is_alive() and t is not threading.current_thread():
                t.join(max(0.0, deadline - time.monotonic()))

"""A physical ZVT payment terminal on the bench, driven over TCP (the ECR side of ZVT, via the shared codec).

posrig holds no ECR session of its own: many physical terminals accept one, the till's. Nothing connects at
start; the terminal's record for the oracle (`journal`) is decoded from the till-terminal link's capture
(`harness.terminal.capture_journal`), or read from the terminal's own journal export when the rig names one
(`options.journal_export`). The ZVT commands below (05 01 status, 06 20 last receipt, 06 00, 06 01) open a
connection only when called, for bench self-tests and `posrig terminal status`.

>>> t = RealTerminal(spec, ctx); t.start()  # spec.address = '192.0.2.40:20007'  # doctest: +SKIP
>>> t.status()["terminal_status"]                      # doctest: +SKIP
0
>>> t.repeat_last_receipt()["status"]["result_code"]   # doctest: +SKIP

Transport tcp (address IP:PORT) or serial (address /dev/ttyUSB0; options baudrate 9600, stopbits 2).
Options: password (6 digits, default 000000), config_byte (registration, default 0x8A = intermediate status +
payment receipts printed by the ECR + as 06 D1 print lines, the ECR print-type bit 0x80; without 0x80 a terminal
sends no lines and the ECR compiles the receipt from the status information), timeout (nominal seconds for a
whole command, default T4 = 180), journal_export
(a JSON export or SQLite journal of the terminal), capture_link (the link whose capture holds the till's ZVT;
default the rig's link between a till and this terminal).
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from harness.core.device import DeviceContext
from harness.protocols import zvt
from harness.terminal import PaymentTerminal
from harness.terminal.capture_journal import CaptureJournal, ExportJournal
from harness.terminal.emulated import DEFAULT_ECR_PORT, parse_address

T3 = 5.0
T4 = 180.0


class TerminalError(RuntimeError):
    """The terminal did not answer as ZVT requires; the message says what was expected and what came."""


class RealTerminal(PaymentTerminal):
    """A ZVT terminal reached over TCP at the rig's address."""

    close_timeout = 3.0

    def __init__(self, spec: Any, ctx: DeviceContext, **bound: Any):
        super().__init__(spec, ctx, **bound)
        if not getattr(spec, "address", None):
            raise TerminalError(
                f"terminal {spec.name!r}: a real terminal needs `address: IP:PORT` (tcp) or a device path "
                "such as /dev/ttyUSB0 (serial) in the rig"
            )
        self.serial_device = spec.address if getattr(spec, "transport", "tcp") == "serial" else None
        self._address = ("", 0) if self.serial_device else parse_address(spec.address, DEFAULT_ECR_PORT)
        opts = dict(getattr(spec, "options", {}) or {})
        self.baudrate = int(opts.get("baudrate", 9600))
        self.stopbits = int(opts.get("stopbits", 2))
        self.password = int(opts.get("password", 0))
        self.config_byte = int(
            opts.get(
                "config_byte",
                zvt.CONFIG_INTERMEDIATE_STATUS | zvt.CONFIG_ECR_PRINTS_PAYMENT | zvt.CONFIG_ECR_PRINT_LINES,
            )
        )
        self.command_timeout = ctx.timing.seconds(float(opts.get("timeout", T4)))
        self.t3 = ctx.timing.seconds(T3)
        self.observed: list[dict[str, Any]] = []  # every command's outcome, in order
        self._sock: Any = None  # a TCP socket, or a SerialLink on RS-232
        self._port: Any = None  # the pyserial port under the SerialLink
        self._reader = zvt.ApduReader()
        self._pending: list[zvt.Apdu] = []
        self._lock = threading.Lock()
        self._transcript = None
        self.journal_export = opts.get("journal_export")
        self.capture_link = opts.get("capture_link") or self._till_link()

    def _till_link(self) -> str | None:
        """The rig's link between a till and this terminal (its capture carries the till's ZVT)."""
        rig = getattr(self.ctx, "rig", None)
        for link in (getattr(rig, "links", None) or {}).values():
            kinds = {rig.devices[e].kind for e in link.ends if e in rig.devices}
            if self.name in link.ends and "till" in kinds:
                return link.name
        return None

    # -- device ----------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Nothing to connect: the till holds the terminal's ECR session (see the module docstring)."""
        self._transcript = self.ctx.evidence.transcript(self.name)

    def _connect(self) -> Any:
        if self._sock is None and self.serial_device:
            self._sock = self._open_serial()
            self._reader = zvt.ApduReader()
            self._pending = []
        if self._sock is None:
            ns = self.ctx.namespace
            try:
                if ns is not None:
                    self._sock = ns.connect(self._address, self.t3 * 2)
                else:
                    self._sock = socket.create_connection(self._address, timeout=self.t3 * 2)
            except OSError as exc:
                raise TerminalError(
                    f"cannot reach the ZVT terminal at {self._address[0]}:{self._address[1]}: "
                    f"{exc}; check its IP, that ECR-over-TCP is enabled and the port"
                ) from exc
            self._reader = zvt.ApduReader()
            self._pending = []
        return self._sock

    def _open_serial(self) -> Any:
        """ZVT over RS-232: 8 data bits, no parity, `stopbits` (2 by default), at `baudrate` (9600)."""
        import serial

        from harness.terminal.serial_link import SerialLink

        try:
            self._port = serial.Serial(
                self.serial_device, self.baudrate, bytesize=8, parity="N", stopbits=self.stopbits, timeout=0
            )
        except (OSError, serial.SerialException) as exc:
            raise TerminalError(
                f"cannot open the ZVT terminal's serial port {self.serial_device}: {exc}; check the cable, "
                "the device path and that this user may open it (group dialout)"
            ) from exc
        return SerialLink(self._port.fileno(), self.t3, self._transcript)

    def close(self) -> None:
        if self._port is not None:
            if self._sock is not None:
                self._sock.close()
                self._sock = None
            self._port.close()
            self._port = None
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None
        if self._transcript is not None:
            self._transcript.close()
            self._transcript = None
        self._write_journal()

    def _write_journal(self) -> None:
        """The terminal's record as the oracle saw it, kept as evidence (`terminal-journal.json`)."""
        journal = self.journal
        if journal is None:
            return
        source = f"export {self.journal_export}" if self.journal_export else f"capture of link {self.capture_link}"
        try:
            rows = journal.transactions()
        except (OSError, ValueError) as exc:
            rows, source = [], f"{source}: unreadable ({exc})"
        self.ctx.evidence.write_json("terminal-journal.json", {"source": source, "transactions": rows},
                                     "the physical terminal's payments, decoded from " + source)

    @property
    def ecr_address(self) -> tuple[str, int]:
        if self.serial_device:
            raise TerminalError(f"terminal {self.name!r} is on a serial line: see ecr_device")
        return self._address

    @property
    def ecr_device(self) -> str | None:
        """The serial device of a terminal on RS-232, else None."""
        return self.serial_device

    @property
    def journal(self) -> CaptureJournal | ExportJournal | None:
        """The terminal's record: its own export when the rig names one, else decoded from the till-terminal
        capture; None when there is neither (no link between a till and this terminal)."""
        if self.journal_export:
            return ExportJournal(self.journal_export)
        if self.capture_link is None or self.serial_device:     # ZVT over RS-232 never crosses the link
            return None
        safe = self.capture_link.replace("/", "_")
        ports = getattr(self.ctx.rig.links.get(self.capture_link), "ports", {}) or {}
        port = int(ports.get("zvt") or (self._address[1] if not self.serial_device else DEFAULT_ECR_PORT))
        return CaptureJournal(self.ctx.evidence.path / f"link-{safe}.pcapng", port)

    # -- ZVT commands ----------------------------------------------------------------------------------------
    def register(self, config_byte: int | None = None, currency: int | None = 978) -> dict[str, Any]:
        """06 00 Registration."""
        cb = self.config_byte if config_byte is None else config_byte
        return self._command(
            zvt.encode("registration", password=self.password, config_byte=cb, currency=currency)
        )

    def status(self) -> dict[str, Any]:
        """05 01 Status Enquiry: {'sw_version', 'terminal_status', ...} from the completion."""
        out = self._command(zvt.encode("status_enquiry", password=self.password))
        return {**out["completion"], "ok": out["ok"]}

    def repeat_last_receipt(self) -> dict[str, Any]:
        """06 20 Repeat Receipt: {'status': Status-Information fields, 'receipt': [lines], 'ok': bool}."""
        return self._command(zvt.encode("repeat_receipt", password=self.password))

    def authorize(self, amount: int, currency: int = 978, goods: bytes | None = None) -> dict[str, Any]:
        """06 01 Authorization of `amount` minor units; `goods` answers the 04 0F (default 80 00 00)."""
        return self._command(zvt.encode("authorization", amount=amount, currency=currency), goods)

    def _command(self, raw: bytes, status_answer: bytes | None = None) -> dict[str, Any]:
        with self._lock:
            sock = self._connect()
            result: dict[str, Any] = {
                "ok": False,
                "status": None,
                "statuses": [],
                "receipt": [],
                "intermediate": [],
                "completion": {},
                "result_code": None,
            }
            self._send(sock, raw)
            first = self._receive(sock, self.t3)
            if first.name != "ack":
                raise TerminalError(f"expected 80 00 00 after {zvt.decode(raw).name}, got {zvt.describe(first)}")
            deadline = time.monotonic() + self.command_timeout
            while True:
                msg = self._receive(sock, max(0.01, deadline - time.monotonic()))
                if msg.name == "status_information":
                    result["statuses"].append(msg.fields)
                    result["status"] = msg.fields
                    self._send(sock, status_answer or zvt.encode("ack"))
                    continue
                self._send(sock, zvt.encode("ack"))
                if msg.name == "intermediate_status":
                    result["intermediate"].append(msg.fields.get("status"))
                elif msg.name == "print_line":
                    result["receipt"].append(msg.fields.get("text", ""))
                elif msg.name == "completion":
                    result.update(ok=True, completion=msg.fields, result_code=0)
                    break
                elif msg.name == "abort":
                    result.update(ok=False, result_code=msg.fields.get("result_code"))
                    break
            self.observed.append(result)
            return result

    def _send(self, sock: socket.socket, raw: bytes) -> None:
        self._note("tx", raw)
        try:
            sock.sendall(raw)
        except OSError as exc:
            self._sock = None
            raise TerminalError(f"connection to the terminal lost while sending: {exc}") from exc

    def _receive(self, sock: socket.socket, timeout: float) -> zvt.Message:
        deadline = time.monotonic() + timeout
        while True:
            if self._pending:
                apdu = self._pending.pop(0)
                msg = zvt.decode_apdu(apdu)
                self._note("rx", apdu.to_bytes(), msg)
                return msg
            left = deadline - time.monotonic()
            if left <= 0:
                raise TerminalError(f"no answer from the terminal within {timeout:.2f}s")
            sock.settimeout(left)
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError as exc:
                self._sock = None
                raise TerminalError(f"connection to the terminal lost: {exc}") from exc
            if not chunk:
                self._sock = None
                raise TerminalError("the terminal closed the connection")
            self._pending += self._reader.feed(chunk)

    def _note(self, direction: str, raw: bytes, msg: zvt.Message | None = None) -> None:
        if self._transcript is None:
            return
        if msg is None:
            msg = zvt.decode(raw)
        self._transcript.write(direction, link="zvt", apdu=zvt.hexdump(raw), decoded=zvt.describe(msg))

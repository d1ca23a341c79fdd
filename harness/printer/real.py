"""Real (physical) printers: a tap that passes a till's bytes through to the printer while decoding them,
and a status reader (DLE EOT 1-4, and over USB the printer-class GET_PORT_STATUS / GET_DEVICE_ID).

    tap = PrinterTap(socket.create_server(("0.0.0.0", 9100)), TcpUpstream("192.0.2.30", 9100))
    tap.start(); ...; tap.log.wait_for_receipt(30)
    read_status("usb", "04b8:0202")  ->  {"online": True, "paper": "ok", "cover_open": False, ...}

Rig entry (`printer.real`): transport/address name the physical printer; `options.tap` (HOST:PORT, or
NODE:PORT) makes posrig listen there as the printer and forward to it; without a tap only the status is
read.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
from typing import Any

from harness.core.address import parse_hostport
from harness.core.device import DeviceContext
from harness.core.masking import mask_bytes
from harness.printer import ReceiptPrinter
from harness.printer.core import ReceiptLog
from harness.printer.journal import ReceiptJournal
from harness.printer.profiles import get_profile
from harness.printer.transports import TcpEndpoint, received
from harness.protocols.escpos import commands as C
from harness.protocols.escpos.receipt import Receipt

log = logging.getLogger(__name__)


class StatusError(RuntimeError):
    """The printer did not answer status, or answered something that is not a status byte."""


# -- status ---------------------------------------------------------------------------------------------
def parse_status(replies: dict[int, int]) -> dict[str, Any]:
    """Flags from DLE EOT n reply bytes {n: byte}; raises StatusError for a byte not of the form 0xx1xx10."""
    for n, b in replies.items():
        if b & C.STATUS_FIXED_MASK != C.STATUS_FIXED:
            raise StatusError(f"DLE EOT {n} answer 0x{b:02x} is not a status byte (0xx1xx10): wrong port, "
                              "or a printer that is not ESC/POS")
    s1, s2, s3, s4 = (replies.get(n) for n in (1, 2, 3, 4))
    out: dict[str, Any] = {"raw": {str(n): f"0x{b:02x}" for n, b in replies.items()}}
    if s1 is not None:
        out["online"] = not s1 & C.ST1_OFFLINE
        out["drawer_pin3_high"] = bool(s1 & C.ST1_DRAWER_PIN3)
    if s2 is not None:
        out["cover_open"] = bool(s2 & C.ST2_COVER_OPEN)
        out["feed_button"] = bool(s2 & C.ST2_FEED_BUTTON)
        out["stopped_by_paper_end"] = bool(s2 & C.ST2_PAPER_END_STOP)
        out["error"] = bool(s2 & C.ST2_ERROR)
    if s3 is not None:
        out["mechanical_error"] = bool(s3 & C.ST3_MECHANICAL)
        out["autocutter_error"] = bool(s3 & C.ST3_AUTOCUTTER)
        out["unrecoverable_error"] = bool(s3 & C.ST3_UNRECOVERABLE)
        out["auto_recoverable_error"] = bool(s3 & C.ST3_AUTO_RECOVERABLE)
    if s4 is not None:
        out["paper"] = "end" if s4 & C.ST4_PAPER_END else "near_end" if s4 & C.ST4_NEAR_END else "ok"
    return out


class _Port:
    """A byte pipe to a printer: write(bytes), read_one(timeout) -> int | None, close()."""

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def read_one(self, timeout: float) -> int | None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class _TcpPort(_Port):
    def __init__(self, address: str, timeout: float):
        self.sock = socket.create_connection(parse_hostport(address, what="printer address"), timeout=timeout)

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_one(self, timeout: float) -> int | None:
        self.sock.settimeout(timeout)
        try:
            b = self.sock.recv(1)
        except TimeoutError:
            return None
        return b[0] if b else None

    def close(self) -> None:
        self.sock.close()


class _SerialPort(_Port):
    def __init__(self, path: str, timeout: float, baudrate: int = 9600):
        import serial

        self.port = serial.Serial(path, baudrate=baudrate, timeout=timeout, dsrdtr=True)
        self.port.reset_input_buffer()

    def write(self, data: bytes) -> None:
        self.port.write(data)
        self.port.flush()

    def read_one(self, timeout: float) -> int | None:
        self.port.timeout = timeout
        b = self.port.read(1)
        return b[0] if b else None

    def close(self) -> None:
        self.port.close()


class _UsbPort(_Port):
    """A USB printer found by vendor:product with pyusb (any backend: libusb, or ours over USB/IP)."""

    def __init__(self, address: str, timeout: float, backend=None):
        import usb.core
        import usb.util

        vid, pid = (int(x, 16) for x in address.split(":"))
        kwargs = {"idVendor": vid, "idProduct": pid}
        if backend is not None:
            kwargs["backend"] = backend
        dev = usb.core.find(**kwargs)
        if dev is None:
            raise StatusError(f"no USB device {address} found: check `lsusb`, the cable, and permissions "
                              "(udev rule or run as root)")
        self.dev = dev
        with contextlib.suppress(NotImplementedError, usb.core.USBError):
            if dev.is_kernel_driver_active(0):
                dev.detach_kernel_driver(0)
        with contextlib.suppress(usb.core.USBError):
            dev.set_configuration()
        intf = dev.get_active_configuration()[(0, 0)]
        self.ep_out = usb.util.find_descriptor(intf, custom_match=lambda e: not e.bEndpointAddress & 0x80)
        self.ep_in = usb.util.find_descriptor(intf, custom_match=lambda e: e.bEndpointAddress & 0x80)
        self.timeout = timeout

    def write(self, data: bytes) -> None:
        self.ep_out.write(data, int(self.timeout * 1000))

    def read_one(self, timeout: float) -> int | None:
        import usb.core

        try:
            data = self.ep_in.read(64, max(1, int(timeout * 1000)))
        except usb.core.USBTimeoutError:
            return None
        return data[0] if len(data) else None

    def port_status(self) -> int:
        return self.dev.ctrl_transfer(C.USB_CLASS_IN_REQUEST, C.USB_GET_PORT_STATUS, 0, 0, 1)[0]

    def device_id(self) -> str:
        raw = bytes(self.dev.ctrl_transfer(C.USB_CLASS_IN_REQUEST, C.USB_GET_DEVICE_ID, 0, 0, 1024))
        return raw[2:int.from_bytes(raw[:2], "big")].decode("ascii", errors="replace")

    def close(self) -> None:
        import usb.util

        usb.util.dispose_resources(self.dev)


def open_port(transport: str, address: str, timeout: float = 2.0, usb_backend=None) -> _Port:
    """A pipe to a physical printer: transport 'tcp' (HOST:PORT), 'serial' (PATH) or 'usb'
    (VENDOR:PRODUCT)."""
    if transport == "tcp":
        return _TcpPort(address, timeout)
    if transport == "serial":
        return _SerialPort(address, timeout)
    if transport == "usb":
        return _UsbPort(address, timeout, usb_backend)
    raise ValueError(f"unknown printer transport {transport!r}: use tcp, serial or usb")


def read_status(transport: str, address: str, timeout: float = 2.0, usb_backend=None,
                port: _Port | None = None) -> dict[str, Any]:
    """Ask a physical printer DLE EOT 1-4 and return its flags (plus USB port status and device id over
    USB)."""
    own = port is None
    port = port or open_port(transport, address, timeout, usb_backend)
    try:
        replies: dict[int, int] = {}
        for n in (1, 2, 3, 4):
            port.write(C.DLE_EOT + bytes([n]))
            b = port.read_one(timeout)
            if b is None:
                raise StatusError(f"printer at {transport} {address} did not answer DLE EOT {n} within "
                                  f"{timeout:.1f}s: switched off, wrong port, or busy with a fault that "
                                  "blocks it")
            parse_status({n: b})                     # a wrong answer stops here, before more is sent
            replies[n] = b
        status = parse_status(replies)
        if isinstance(port, _UsbPort):
            ps = port.port_status()
            status["usb_port_status"] = f"0x{ps:02x}"
            status["device_id"] = port.device_id()
        status["transport"], status["address"] = transport, address
        return status
    finally:
        if own:
            port.close()


# -- tap ------------------------------------------------------------------------------------------------
class TcpUpstream:
    """The physical printer reached over TCP (a LAN printer, port 9100)."""

    def __init__(self, address: str, timeout: float = 5.0):
        self.address = address
        self.timeout = timeout

    def connect(self):
        sock = socket.create_connection(parse_hostport(self.address, what="printer address"), timeout=self.timeout)
        sock.settimeout(None)
        return sock

    def describe(self) -> str:
        return f"tcp {self.address}"


class SerialUpstream:
    """The physical printer on a serial port (9600 8N1, DTR/DSR flow control by default)."""

    def __init__(self, path: str, baudrate: int = 9600):
        self.path = path
        self.baudrate = baudrate

    def connect(self):
        import serial

        return serial.Serial(self.path, baudrate=self.baudrate, timeout=0.1, dsrdtr=True)

    def describe(self) -> str:
        return f"serial {self.path}"


class PrinterTap(TcpEndpoint):
    """Listens where the till prints (TCP) and forwards every byte to the physical printer, and every printer
    reply back to the till, unchanged, while decoding the till's bytes into receipts (`log`). One till at a
    time, in order of arrival, as the printer's own port 9100."""

    def __init__(self, listener: socket.socket, upstream, profile: str | None = None, poll: float = 0.1):
        super().__init__(listener, self._serve, name="printer-tap", concurrent=False)
        self.upstream = upstream
        self.poll = poll                      # how often the printer-to-till pump checks for close
        self.log = ReceiptLog(profile)
        self.replies = bytearray()
        self.errors: list[str] = []
        self._pumps: list[threading.Thread] = []

    def _serve(self, till: socket.socket, peer: tuple) -> None:
        try:
            printer = self.upstream.connect()
        except OSError as exc:
            self._error(f"cannot reach the printer ({self.upstream.describe()}): {exc}")
            return                            # the service closes the till's connection
        back = threading.Thread(target=self._printer_to_till, args=(printer, till), name="printer-tap-back",
                                daemon=True)
        self._pumps = [t for t in self._pumps if t.is_alive()] + [back]
        back.start()
        try:
            self._till_to_printer(till, printer)
        finally:
            if isinstance(printer, socket.socket):
                with contextlib.suppress(OSError):
                    printer.shutdown(socket.SHUT_RDWR)        # wakes the pump at once
            with contextlib.suppress(Exception):
                printer.close()
            back.join(max(1.0, 4 * self.poll))

    def _error(self, what: str) -> None:
        """Log a connection the tap had to give up, and keep it in `errors` for the test to see."""
        msg = f"tap: {what}"
        log.error(msg)
        self.errors.append(msg)

    def _till_to_printer(self, till: socket.socket, printer) -> None:
        for data in received(till, self.service):
            self.log.record(data)
            try:
                _send(printer, data)
            except OSError as exc:            # serial.SerialException is an OSError too
                self._error(f"the printer ({self.upstream.describe()}) stopped taking bytes: {exc}")
                return
            self.log.feed(data)

    def _printer_to_till(self, printer, till: socket.socket) -> None:
        while not self.service.closing:
            try:
                data = _recv(printer, self.poll)
            except Exception:  # noqa: BLE001 - the printer side closed (socket or serial port)
                return
            if data is None:
                return
            if data:
                self.replies += data
                try:
                    till.sendall(data)
                except OSError:
                    return

    def close(self, timeout: float = 2.0) -> None:
        super().close(timeout)
        for t in self._pumps:
            t.join(timeout)


def _send(printer, data: bytes) -> None:
    if isinstance(printer, socket.socket):
        printer.sendall(data)
    else:
        printer.write(data)
        printer.flush()


def _recv(printer, poll: float) -> bytes | None:
    """Bytes from the printer: b'' when none yet, None when it went away."""
    if isinstance(printer, socket.socket):
        ready, _, _ = select.select([printer], [], [], poll)
        if not ready:
            return b""
        data = printer.recv(4096)
        return data or None
    data = printer.read(max(1, printer.in_waiting or 1))
    return data


# -- driver ---------------------------------------------------------------------------------------------
class RealPrinter(ReceiptPrinter):
    """`printer.real`: a physical printer. Status is read over its own transport; receipts are seen only when
    the till prints through the tap (`options.tap: HOST:PORT`)."""

    def __init__(self, spec: Any, ctx: DeviceContext, **bound: Any):
        super().__init__(spec, ctx, **bound)
        self.options = dict(getattr(spec, "options", {}) or {})
        self.profile = get_profile(getattr(spec, "profile", None))
        self.transport = spec.transport
        self.target = spec.address
        self.tap: PrinterTap | None = None
        self._journal: ReceiptJournal | None = None
        self._closed = False

    def start(self) -> None:
        tap_at = self.options.get("tap")
        if tap_at:
            if self.transport == "usb":
                raise ValueError(f"printer {self.name}: a tap forwards to a TCP or serial printer; for USB "
                                 "printers only the status is read (drop options.tap)")
            upstream = TcpUpstream(self.target) if self.transport == "tcp" else SerialUpstream(self.target)
            host, port = parse_hostport(str(tap_at), what="options.tap", default_host="")
            ns = self.ctx.namespace
            sock = ns.listen(("0.0.0.0", port)) if ns is not None else socket.create_server(
                (host if host not in ("", "till") else "127.0.0.1", port))
            self.tap = PrinterTap(sock, upstream, self.profile.name)
            self._journal = ReceiptJournal(self.ctx.evidence.inside(self.name), background=True)  # forwards first
            self.tap.log.add_receipt_listener(self._journal.write)
            self.tap.start()

    def read_status(self, timeout: float = 2.0, usb_backend=None) -> dict[str, Any]:
        """The physical printer's status now (DLE EOT 1-4, USB port status)."""
        backend = usb_backend or self.options.get("usb_backend")
        return read_status(self.transport, self.target, timeout, backend)

    @property
    def address(self) -> dict[str, Any]:
        out: dict[str, Any] = {self.transport: self.target}
        if self.tap is not None:
            out["tap"] = self.tap.address
        return out

    @property
    def receipts(self) -> list[Receipt]:
        if self._journal:
            self._journal.settle()
        return list(self.tap.log.receipts) if self.tap else []

    @property
    def drawer_events(self) -> list:
        """Drawer pulses the tap saw the till send, with their times (empty without a tap)."""
        return self.tap.log.drawer_events if self.tap else []

    def wait_for_receipt(self, timeout: float) -> Receipt:
        if self.tap is None:
            raise RuntimeError(f"printer {self.name} is real and not tapped: posrig cannot see what it "
                               "prints; set options.tap in the rig and point the till at that address")
        receipt = self.tap.log.wait_for_receipt(timeout)
        if self._journal:
            self._journal.settle()
        return receipt

    def set_fault(self, fault: str | None) -> None:
        action = {"paper_out": "take the paper roll out", "cover_open": "open the printer cover",
                  "offline": "switch the printer offline", None: "restore the printer (paper in, cover shut)"}
        raise RuntimeError(f"printer {self.name} is physical: posrig cannot set {fault!r}; "
                           f"{action.get(fault, 'create the fault by hand')} and confirm with read_status()")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.tap is not None:
            self.tap.close()
            if self._journal:
                self._journal.close()
            self.ctx.evidence.write_bytes(f"{self.name}-stream.bin", mask_bytes(bytes(self.tap.log.stream)),
                                          "bytes the till sent through the tap")
            self.ctx.evidence.write_bytes(f"{self.name}-replies.bin", bytes(self.tap.replies),
                                          "bytes the printer sent back")

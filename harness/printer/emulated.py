"""`printer.emulated`: the emulated ESC/POS receipt printer as a bench device.

Rig entry (rigs/emulated.yaml):

    printer: {kind: printer, mode: emulated, transport: tcp, address: "till:9100", profile: tm-t88,
              options: {slow_delay: 2.0, journal: true}}

transport tcp: listens on PORT inside the node's namespace (the till's own), or on 127.0.0.1 with an ephemeral
port when the bench has no namespaces. serial: a pty (`address: pty`); usb: a USB printer-class device served
over USB/IP (`address: VENDOR:PRODUCT`, options.usbip_port, default 3240 in a namespace, ephemeral otherwise).

>>> printer.wait_for_receipt(5).lines      # the fixture `printer` is this object   # doctest: +SKIP
>>> printer.set_fault("paper_out")         # status changes at once; nothing prints  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import socket
from typing import Any

from harness.core.address import port_of
from harness.core.device import DeviceContext
from harness.core.masking import mask_bytes
from harness.printer import ReceiptPrinter
from harness.printer.core import PrinterCore
from harness.printer.journal import ReceiptJournal
from harness.printer.profiles import get_profile
from harness.protocols.escpos.receipt import DrawerEvent, Receipt

log = logging.getLogger(__name__)


class EmulatedPrinter(ReceiptPrinter):
    close_timeout = 5.0

    def __init__(self, spec: Any, ctx: DeviceContext, **bound: Any):
        super().__init__(spec, ctx, **bound)
        self.options = dict(getattr(spec, "options", {}) or {})
        self.profile = get_profile(getattr(spec, "profile", None) or self.options.get("profile"))
        slow = float(self.options.get("slow_delay", ctx.timing.seconds(2.0)))
        self.core = PrinterCore(self.profile, slow_delay=slow)
        self.transport = getattr(spec, "transport", "tcp") or "tcp"
        self._servers: list[Any] = []
        self._address: dict[str, Any] = {}
        self._transcript = None
        self._journal: ReceiptJournal | None = None
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        ev = self.ctx.evidence
        self._transcript = ev.transcript(self.name)
        if self.options.get("journal", True):
            self._journal = ReceiptJournal(ev.inside(self.name), background=True)   # DLE EOT never waits on a PNG
        self.core.add_receipt_listener(self._record)
        if self.transport == "tcp":
            self._start_tcp()
        elif self.transport == "serial":
            self._start_serial()
        elif self.transport == "usb":
            self._start_usb()
        else:
            raise ValueError(f"printer {self.name}: transport {self.transport!r} is not one of tcp, serial, "
                             "usb")
        self._transcript.write("ready", address=self._address, profile=self.profile.name)

    def _port(self, default: int) -> int:
        return port_of(getattr(self.spec, "address", None), default)

    def _listener(self, port: int) -> tuple[socket.socket, str]:
        ns = self.ctx.namespace
        if ns is None:
            sock = socket.create_server(("127.0.0.1", 0))
            return sock, "127.0.0.1"
        return ns.listen(("0.0.0.0", port)), ns.ip or "127.0.0.1"

    def _start_tcp(self) -> None:
        from harness.printer.transports.tcp import TcpPrinterServer

        sock, ip = self._listener(self._port(9100))
        srv = TcpPrinterServer(self.core, sock)
        srv.start()
        self._servers.append(srv)
        self._address["tcp"] = f"{ip}:{sock.getsockname()[1]}"

    def _start_serial(self) -> None:
        from harness.printer.transports.serial_pty import PtyPrinterServer

        link = self.options.get("link")
        srv = PtyPrinterServer(self.core, link=link)
        srv.start()
        self._servers.append(srv)
        self._address["serial"] = srv.address

    def _start_usb(self) -> None:
        from harness.printer.transports.usbip_device import UsbipPrinterServer

        sock, ip = self._listener(int(self.options.get("usbip_port", 3240)))
        srv = UsbipPrinterServer(self.core, sock)
        srv.start()
        self._servers.append(srv)
        self._address["usb"] = f"{self.profile.usb_vendor:04x}:{self.profile.usb_product:04x}"
        self._address["usbip"] = f"{ip}:{sock.getsockname()[1]}"

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for srv in self._servers:
            with contextlib.suppress(Exception):
                srv.close()
        self.core.close()
        ev = self.ctx.evidence
        with contextlib.suppress(Exception):
            tail = self.core.flush()
            if tail is not None and self._transcript:
                self._transcript.write("uncut", lines=tail.lines, bytes=len(tail.raw))
        if self._journal:
            self._journal.close()
        ev.write_bytes(f"{self.name}-stream.bin", mask_bytes(bytes(self.core.stream)),
                       "every byte the printer received (card numbers masked in place)")
        ev.write_json(f"{self.name}-summary.json", {
            "profile": self.profile.name, "address": self._address, "status": self.core.status.to_dict(),
            "bytes_received": len(self.core.stream), "bytes_held_unprinted": len(self.core.held),
            "bytes_lost": self.core.lost_bytes, "crash_points": self.core.crashes,
            "receipts": [r.to_dict() for r in self.core.receipts],
            "drawer_events": [d.to_dict() for d in self.core.drawer_events],
            "replies": [{"t": t, "hex": b.hex()} for t, b in self.core.replies]})
        if self._transcript:
            self._transcript.close()

    def _record(self, receipt: Receipt) -> None:
        if self._transcript:
            self._transcript.write("receipt", index=receipt.index, cut=receipt.cut, lines=receipt.lines,
                                   amounts=[str(a) for a in receipt.amounts], qr=receipt.qr_codes)
        if self._journal:
            for p in self._journal.write(receipt):
                self.ctx.evidence.file(f"{self.name}/{p.name}", f"receipt {receipt.index + 1}")

    # -- ReceiptPrinter ----------------------------------------------------------------------------
    @property
    def address(self) -> dict[str, Any]:
        return dict(self._address)

    def _settled(self) -> None:
        """Every receipt handed out has its files on disk (PNGs are drawn in the background)."""
        if self._journal and not self._journal.settle():
            log.warning("printer %s: receipt images still drawing after 30 s", self.name)

    @property
    def receipts(self) -> list[Receipt]:
        self._settled()
        return list(self.core.receipts)

    @property
    def drawer_events(self) -> list[DrawerEvent]:
        """Every drawer pulse so far with its time, inside a receipt or not (see `PrinterCore.drawer_events`)."""
        return self.core.drawer_events

    def wait_for_receipt(self, timeout: float) -> Receipt:
        receipt = self.core.wait_for_receipt(timeout)
        self._settled()
        return receipt

    def set_fault(self, fault: str | None) -> None:
        self.core.set_fault(fault)
        if self._transcript:
            self._transcript.write("fault", fault=fault, status=self.core.status.to_dict())

    @property
    def status(self):
        return self.core.status

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "profile": self.profile.name, "model": f"{self.profile.vendor} "
                f"{self.profile.model}", "firmware": self.profile.firmware, "transport": self.transport,
                "address": self._address}

"""The emulated printer as a USB printer-class device (class 7/1/2: bulk OUT 0x01, bulk IN 0x82) served over
USB/IP (TCP, usbipd-compatible: the Linux `usbip attach` or our pyusb backend `harness.printer.pyusb_usbip`
can import it).

Built on PyPI `usbip` (MIT): its `USBDevice`/`Interface` give descriptors and URB handling, its
`protocol.serve_connection` the wire protocol. We run our own accept loop on a socket we bind (so it can
live in a network namespace, on an ephemeral port, and close within the device's close_timeout), instead of
usbip's process-wide listener table.

Printer-class requests: GET_DEVICE_ID (IEEE 1284 id from the profile), GET_PORT_STATUS (from the same state
machine as DLE EOT), SOFT_RESET. OUT data goes to `PrinterCore.receive`; replies are queued on bulk IN,
where a host's IN transfer waits for them (NAK until data), as on a real printer.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading

from usbip import In, Interface, Out, Setup, Stall, USBDevice
from usbip import protocol as usbip_protocol
from usbip.core import CLASS

from harness.printer.core import PrinterCore
from harness.protocols.escpos import commands as C

log = logging.getLogger(__name__)

BULK_OUT, BULK_IN = 0x01, 0x82


class PrinterInterface(Interface):
    bInterfaceClass = C.USB_CLASS_PRINTER
    bInterfaceSubClass = C.USB_SUBCLASS_PRINTER
    bInterfaceProtocol = C.USB_PROTOCOL_BIDIRECTIONAL
    bulk_out = Out(BULK_OUT, "bulk", mps=64)
    bulk_in = In(BULK_IN & 0x0F, "bulk", mps=64)

    def __init__(self, core: PrinterCore):
        super().__init__()
        self.core = core

    def on_out(self, ep, data):
        self.core.receive(bytes(data), self.bulk_in.write)

    def on_control(self, setup: Setup, data: bytes = b""):
        if setup.type == CLASS:
            if setup.bRequest == C.USB_GET_DEVICE_ID:
                return self.core.profile.device_id()
            if setup.bRequest == C.USB_GET_PORT_STATUS:
                return bytes([self.core.status.usb_port_status()])
            if setup.bRequest == C.USB_SOFT_RESET:
                return b""
        raise Stall


def printer_device(core: PrinterCore) -> tuple[USBDevice, PrinterInterface]:
    """A USB device presenting `core` as its profile's model (vendor/product ids, strings)."""
    p = core.profile
    dev = USBDevice(p.usb_vendor, p.usb_product, product=p.model, manufacturer=p.vendor, serial="POSRIG0001")
    iface = dev.add(PrinterInterface(core))
    dev.busid = "1-1"
    dev.busnum, dev.devnum = 1, 2
    return dev, iface


class UsbipPrinterServer:
    """Serve the printer over USB/IP on `listener` (TCP). One importer at a time, as a USB port."""

    def __init__(self, core: PrinterCore, listener: socket.socket, poll: float = 0.1):
        self.core = core
        self.listener = listener
        self.listener.settimeout(poll)
        self.device, self.interface = printer_device(core)
        self._stop = threading.Event()
        self._conns: set[socket.socket] = set()
        self._workers: list[threading.Thread] = []
        self._thread = threading.Thread(target=self._accept, name="printer-usbip", daemon=True)

    @property
    def address(self) -> str:
        host, port = self.listener.getsockname()[:2]
        return f"{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            conn.settimeout(None)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conns.add(conn)
            t = threading.Thread(target=self._serve, args=(conn,), name="printer-usbip-conn", daemon=True)
            self._workers = [w for w in self._workers if w.is_alive()] + [t]
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            usbip_protocol.serve_connection(conn, [self.device])
        finally:
            self._conns.discard(conn)

    def close(self, timeout: float = 2.0) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self.listener.close()
        for conn in list(self._conns):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for t in [self._thread, *self._workers]:
            if t.is_alive():
                t.join(timeout)

"""The emulated printer as a USB printer-class device (class 7/1/2: bulk OUT 0x01, bulk IN 0x82) served over
USB/IP (TCP, usbipd-compatible: the Linux `usbip attach` or our pyusb backend `harness.printer.pyusb_usbip`
can import it).

Built on PyPI `usbip` (MIT): its `USBDevice`/`Interface` give descriptors and URB handling, its
`protocol.serve_connection` the wire protocol. Connections are accepted by `harness.core.service.TcpService` on a
socket we bind (so it can live in a network namespace, on an ephemeral port, and close within the device's
close_timeout), instead of usbip's process-wide listener table.

Printer-class requests: GET_DEVICE_ID (IEEE 1284 id from the profile), GET_PORT_STATUS (from the same state
machine as DLE EOT), SOFT_RESET. OUT data goes to `PrinterCore.receive`; replies are queued on bulk IN,
where a host's IN transfer waits for them (NAK until data), as on a real printer.
"""

from __future__ import annotations

import contextlib
import logging
import socket

from usbip import In, Interface, Out, Setup, Stall, USBDevice
from usbip import protocol as usbip_protocol
from usbip.core import CLASS

from harness.printer.core import PowerOff, PrinterCore
from harness.printer.transports import TcpEndpoint
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
        with contextlib.suppress(PowerOff):                 # switched off: the bytes are lost
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


class UsbipPrinterServer(TcpEndpoint):
    """Serve the printer over USB/IP on `listener` (TCP). Connections are served side by side (a host lists the
    devices on one connection and imports on another); the device itself is one, as a USB port."""

    def __init__(self, core: PrinterCore, listener: socket.socket):
        super().__init__(listener, self._serve, name="printer-usbip", concurrent=True)
        self.core = core
        self.device, self.interface = printer_device(core)

    def _serve(self, conn: socket.socket, peer: tuple) -> None:
        usbip_protocol.serve_connection(conn, [self.device])

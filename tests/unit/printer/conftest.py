"""Printer test helpers: an emulated printer served on a real transport, and python-escpos clients for it."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest

from harness.printer.core import PrinterCore



class Served:
    """A PrinterCore behind one transport, with a factory for a python-escpos client reaching it."""

    def __init__(self, transport: str, profile: str, slow_delay: float = 0.3):
        self.transport = transport
        self.core = PrinterCore(profile, slow_delay=slow_delay)
        self.clients: list = []
        if transport == "tcp":
            from harness.printer.transports.tcp import TcpPrinterServer

            self.server = TcpPrinterServer(self.core, socket.create_server(("127.0.0.1", 0)))
        elif transport == "serial":
            from harness.printer.transports.serial_pty import PtyPrinterServer

            self.server = PtyPrinterServer(self.core)
        else:
            from harness.printer.transports.usbip_device import UsbipPrinterServer

            self.server = UsbipPrinterServer(self.core, socket.create_server(("127.0.0.1", 0)))
        self.server.start()

    def client(self):
        """A python-escpos printer object (unchanged library) connected to the emulator."""
        if self.transport == "tcp":
            from escpos.printer import Network

            host, port = self.server.address.split(":")
            p = Network(host, int(port), timeout=5)
        elif self.transport == "serial":
            from escpos.printer import Serial

            p = Serial(devfile=self.server.address, timeout=0.3)
        else:
            from escpos.printer import Usb

            from harness.printer.pyusb_usbip import get_backend

            host, port = self.server.address.split(":")
            prof = self.core.profile
            p = Usb(prof.usb_vendor, prof.usb_product, usb_args={"backend": get_backend(host, int(port))})
        if not p.device:
            p.open()
        self.clients.append(p)
        return p

    def close(self) -> None:
        for p in self.clients:
            try:
                p.close()
            except Exception:  # noqa: BLE001 - closing a client already gone
                pass
        self.server.close()
        self.core.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    """serve(transport, profile='tm-t88') -> Served; everything is closed after the test."""
    made: list[Served] = []

    def factory(transport: str, profile: str = "tm-t88", **kw) -> Served:
        s = Served(transport, profile, **kw)
        made.append(s)
        return s

    yield factory
    for s in made:
        s.close()

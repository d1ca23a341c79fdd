"""Receipt printers (ESC/POS): the interface every printer driver implements, emulated or real."""

from __future__ import annotations

import abc
from typing import Any

from harness.core.device import Device


class ReceiptPrinter(Device):
    """A receipt printer the till prints to. Emulated: we decode what it receives. Real: we tap and decode."""

    kind = "printer"

    @property
    @abc.abstractmethod
    def address(self) -> dict[str, Any]:
        """Where the till reaches the printer, per transport.

        {'tcp': 'IP:PORT'}, {'serial': PATH} or {'usb': 'VENDOR:PRODUCT', 'usbip': 'IP:PORT'}."""

    @property
    @abc.abstractmethod
    def receipts(self) -> list:
        """Receipts completed so far (what lay between cuts), oldest first."""

    @abc.abstractmethod
    def wait_for_receipt(self, timeout: float) -> Any:
        """Block until the next receipt completes; raise TimeoutError naming what was received instead."""

    @abc.abstractmethod
    def set_fault(self, fault: str | None) -> None:
        """Put the printer in a fault mode ('paper_out', 'cover_open', 'offline', 'silent', 'slow'), or None.

        Several at once are joined by commas ('paper_out,slow'); see `harness.printer.status.FAULTS`."""

"""Receipts of the reference till: what goes on the slip, and printing it with python-escpos over TCP.

The till asks the printer for its status (DLE EOT 1: online; DLE EOT 4: paper) before it accepts a card
payment and again after the receipt, because a TCP printer takes the bytes whether or not it has paper.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from escpos.exceptions import Error as EscposError
from escpos.printer import Network

from harness.core.masking import mask_pan, mask_pans

log = logging.getLogger(__name__)

SHOP = ("POSRIG MARKET", "1 Reference Street")
WIDTH = 42


class PrintError(RuntimeError):
    """The receipt did not (entirely) come out of the printer; the message says why."""


@dataclass
class ReceiptContent:
    """The receipt as text lines plus the QR payload; `text` is what the journal keeps."""

    lines: list[str]
    qr: str | None

    @property
    def text(self) -> str:
        return "\n".join(self.lines) + (f"\n[QR] {self.qr}" if self.qr else "")


def money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _row(left: str, right: str) -> str:
    left = left[: WIDTH - len(right) - 1]
    return left + " " * (WIDTH - len(left) - len(right)) + right


def sale_receipt(sale: dict[str, Any], *, reprint: bool = False) -> ReceiptContent:
    """The customer's sale receipt: items, total, tender; for cards the masked PAN, auth code, trace, and the
    words OFFLINE APPROVED when the terminal approved without the host."""
    lines = [*SHOP, "", f"Sale {sale['id']}"]
    if reprint:
        lines.append("*** COPY / REPRINT ***")
    for item in sale["basket"]:
        qty = int(item.get("qty", 1))
        name = str(item.get("name") or item.get("sku") or "item")
        from harness.till.outcome import price_cents
        cents = price_cents(item["price"]) * qty
        lines.append(_row(f"{qty} x {name}" if qty > 1 else name, money(cents)))
    lines += ["-" * WIDTH, _row("TOTAL " + sale.get("currency", "EUR"), money(sale["amount_cents"])), ""]
    if sale["tender"] == "card":
        pan = sale.get("masked_pan") or ""
        lines += [
            "CARD PAYMENT",
            _row("Card", mask_pan(pan) if pan and "*" not in pan else pan or "-"),
            _row("Auth code", str(sale.get("auth_code") or "-")),
            _row("Trace", str(sale.get("trace") or "-")),
            _row("Receipt no", str(sale.get("receipt_no") or "-")),
            _row("Terminal", str(sale.get("terminal_id") or "-")),
            "OFFLINE APPROVED" if sale.get("offline") else "APPROVED",
        ]
    else:
        lines += [_row("CASH", money(sale["amount_cents"]))]
    lines += ["", "Thank you"]
    qr = f"posrig:{sale['id']}:{sale['amount_cents']}:{sale.get('auth_code') or sale['tender']}"
    return ReceiptContent([mask_pans(line) for line in lines], qr)


class ReceiptPrinterClient:
    """The till's side of the receipt printer (ESC/POS over TCP, e.g. port 9100)."""

    def __init__(self, address: tuple[str, int], timeout: float):
        self.address = address
        self.timeout = timeout

    def _open(self) -> Network:
        p = Network(self.address[0], self.address[1], timeout=self.timeout)
        try:
            p.open()
        except EscposError as exc:
            raise PrintError(f"printer {self.address[0]}:{self.address[1]} unreachable: {exc}") from exc
        return p

    @staticmethod
    def _state(p: Network) -> str | None:
        """None when ready, else why not."""
        try:
            if not p.is_online():
                return "printer offline or not answering its status (DLE EOT 1)"
            if p.paper_status() == 0:
                return "printer out of paper (DLE EOT 4)"
        except (TimeoutError, OSError) as exc:
            return f"printer did not answer its status: {exc}"
        return None

    def ready(self) -> tuple[bool, str]:
        """(True, 'ready') when the printer is online with paper, else (False, why)."""
        try:
            p = self._open()
        except PrintError as exc:
            return False, str(exc)
        try:
            why = self._state(p)
        finally:
            p.close()
        return (why is None), why or "ready"

    def kick_drawer(self) -> None:
        """Pulse the cash drawer (ESC p, pin 2); needs the printer online, not paper. PrintError otherwise."""
        p = self._open()
        try:
            if not p.is_online():
                raise PrintError("printer offline: the drawer cannot be opened")
            p.cashdraw(2)
        except (OSError, EscposError) as exc:
            raise PrintError(f"drawer pulse failed: {exc}") from exc
        finally:
            p.close()

    def print(self, content: ReceiptContent | None, *, kick_drawer: bool = False) -> None:
        """Print `content` (and/or pulse the drawer on pin 2, inside the receipt: before its cut); PrintError when
        it did not all come out."""
        p = self._open()
        try:
            why = self._state(p)
            if why:
                raise PrintError(why)
            try:
                if content is not None:
                    p.set(align="center", bold=True)
                    p.textln(content.lines[0])
                    p.set(align="left", bold=False)
                    for line in content.lines[1:]:
                        p.textln(line)
                    if content.qr:
                        p.set(align="center")
                        p.qr(content.qr, native=True, size=4)
                        p.set(align="left")
                if kick_drawer:                     # with the receipt, before its cut: the pulse is in the slip
                    p.cashdraw(2)
                if content is not None:
                    p.cut()
            except (OSError, EscposError) as exc:
                raise PrintError(f"printer connection failed while printing: {exc}") from exc
            except Exception as exc:  # noqa: BLE001 - whatever broke, the receipt did not come out
                raise PrintError(f"receipt could not be rendered: {type(exc).__name__}: {exc}") from exc
            why = self._state(p)
            if why:
                raise PrintError(f"receipt not completed: {why}")
        finally:
            p.close()

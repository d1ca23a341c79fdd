"""Tills: the system under test. Drivers run the reference till, call a vendor's till, or prompt an operator.

Every driver answers the same questions: sell a basket and say how the sale ended (a `SaleOutcome`, the till's
own view), show its journal, and resolve what it left open. The oracle compares that view with the host
ledger, the terminal journal and the printed receipts.
"""

from __future__ import annotations

import abc
from typing import Any

from harness.core.device import Device
from harness.till.outcome import ContractError, SaleOutcome, basket_total

__all__ = ["Till", "SaleOutcome", "ContractError", "basket_total"]


class Till(Device):
    """The point-of-sale till under test."""

    kind = "till"
    # Started before the till; drivers that drive a vendor till may pass their addresses on, or ignore them.
    bindings = {"printer": "printer?", "terminal": "terminal?"}

    @abc.abstractmethod
    def sell(self, basket: list[dict[str, Any]], tender: str = "card") -> SaleOutcome:
        """Ring up a basket and take payment; return what the till reports (its own view of the sale).
        basket: [{"sku": "milk", "name": "Milk 1l", "price": "1.19", "qty": 2}, ...]; tender: card | cash."""

    def journal(self) -> list[dict[str, Any]]:
        """The till's own record of every sale, oldest first (as much as the till exposes; may be empty)."""
        return []

    def abort(self) -> None:
        """The cashier presses abort during the running sale (not every till can be told to)."""
        raise NotImplementedError(f"{type(self).__name__} cannot abort a running sale")

    def recover(self) -> list[SaleOutcome]:
        """Let the till resolve what it left open (unknown payments, owed receipts); its updated outcomes."""
        return []

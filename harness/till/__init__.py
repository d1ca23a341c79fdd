"""Tills: the system under test. Drivers run the reference till, call a vendor's till, or prompt an operator."""

from __future__ import annotations

import abc
from typing import Any

from harness.devices import Device


class Till(Device):
    """The point-of-sale till under test."""

    kind = "till"
    needs = ("printer", "terminal")

    @abc.abstractmethod
    def sell(self, basket: list[dict[str, Any]], tender: str = "card") -> Any:
        """Ring up a basket and take payment; return what the till reports (its own view of the sale)."""

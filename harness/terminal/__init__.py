"""Payment terminals (ZVT to the till, ISO 8583 to the host): the interface every driver implements."""

from __future__ import annotations

import abc
from typing import Any

from harness.core.device import Device


class PaymentTerminal(Device):
    """The card terminal the till drives over ZVT."""

    kind = "terminal"
    bindings = {"host": "host?"}       # the acquirer it reaches (started first); absent on some benches

    @property
    @abc.abstractmethod
    def ecr_address(self) -> tuple[str, int]:
        """(ip, port) where the till reaches the terminal's ECR interface."""

    @property
    @abc.abstractmethod
    def journal(self) -> Any:
        """The terminal's journal: every transaction and its final state."""

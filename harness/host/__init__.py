"""Acquirer hosts (ISO 8583): the interface of the card acquirer the payment terminal talks to."""

from __future__ import annotations

import abc
from typing import Any

from harness.core.device import Device


class AcquirerHost(Device):
    """The acquirer: authorises, reverses and settles payments, and keeps the ledger the oracle trusts."""

    kind = "host"

    @property
    @abc.abstractmethod
    def address(self) -> tuple[str, int]:
        """(ip, port) the terminal connects to."""

    @property
    @abc.abstractmethod
    def ledger(self) -> Any:
        """The durable ledger (harness.host.ledger.Ledger): settled payments, payments by STAN/RRN, totals."""

    def behave(self, what: str = "approve", **kwargs: Any) -> int:
        """Set how the host answers matching requests from now on (see harness.host.emulated). Emulated hosts
        only: a real acquirer cannot be told to misbehave."""
        raise NotImplementedError(f"{type(self).__name__} cannot be given behaviours; use the emulated host")

    def clear_behaviours(self) -> None:
        """Drop the behaviours set by the test."""
        raise NotImplementedError(f"{type(self).__name__} cannot be given behaviours; use the emulated host")

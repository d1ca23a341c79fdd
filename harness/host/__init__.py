"""Acquirer hosts (ISO 8583): the interface of the card acquirer the payment terminal talks to."""

from __future__ import annotations

import abc
from typing import Any

from harness.devices import Device


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
        """The durable ledger: query API for settled payments, payments by STAN/RRN, totals."""

"""What one terminal transaction ends with, as the ZVT side reports it to the till."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class TransactionAborted(Exception):
    """The cashier or the ECR aborted the running transaction."""


@dataclass
class Outcome:
    """One transaction's end: result code for the ECR, and the Status-Information fields when a card was read."""

    txn_id: int
    result_code: int  # 00 = approved
    status: dict[str, Any] = field(default_factory=dict)  # Status-Information fields (empty = no card data)
    approved: bool = False
    offline: bool = False

    @property
    def has_card_data(self) -> bool:
        return bool(self.status)

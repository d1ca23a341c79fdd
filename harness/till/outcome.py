"""The till's own view of one sale: what every till driver returns, and the JSON of the till contract.

    >>> SaleOutcome.from_dict({"sale_id": "S1", "status": "paid", "tender": "card", "amount_cents": 119,
    ...                        "receipt": "printed"}).paid
    True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from decimal import Decimal, InvalidOperation
from typing import Any

STATUSES = ("paid", "declined", "cancelled", "failed", "unknown")
RECEIPTS = ("none", "printed", "pending", "failed")
TENDERS = ("card", "cash")


class ContractError(ValueError):
    """A till answered something that is not the till contract (docs/till-contract.md); says what and
    where."""


@dataclass
class SaleOutcome:
    """How the till says a sale ended.

    status: paid (money taken, goods handed over), declined (card refused), cancelled (cashier or customer
    stopped it), failed (not charged: terminal unreachable, goods refused), unknown (the till could not find
    out; it must not print a sale receipt). receipt: none | printed | pending (owed, will be reprinted) |
    failed.
    """

    sale_id: str
    status: str
    tender: str
    amount_cents: int
    currency: str = "EUR"
    receipt: str = "none"
    drawer_opened: bool = False
    offline: bool = False
    masked_pan: str | None = None
    auth_code: str | None = None
    trace: int | None = None
    receipt_no: int | None = None
    terminal_id: str | None = None
    terminal_result: int | None = None
    message: str = ""
    elapsed: float = 0.0
    states: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def paid(self) -> bool:
        return self.status == "paid"

    @property
    def receipt_printed(self) -> bool:
        return self.receipt == "printed"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, source: str = "till") -> SaleOutcome:
        """Validate a contract answer. Unknown keys are kept in `extra`; wrong values raise ContractError."""
        if not isinstance(data, dict):
            raise ContractError(f"{source}: a sale outcome must be a JSON object, got {type(data).__name__}")
        for key in ("sale_id", "status", "tender", "amount_cents"):
            if key not in data:
                raise ContractError(f"{source}: sale outcome lacks {key!r} (see docs/till-contract.md): "
                                    f"{data}")
        if data["status"] not in STATUSES:
            raise ContractError(f"{source}: status {data['status']!r} is not one of {', '.join(STATUSES)}")
        if data.get("receipt", "none") not in RECEIPTS:
            raise ContractError(f"{source}: receipt {data['receipt']!r} is not one of {', '.join(RECEIPTS)}")
        if not isinstance(data["amount_cents"], int) or isinstance(data["amount_cents"], bool):
            raise ContractError(f"{source}: amount_cents must be an integer number of cents, "
                                f"got {data['amount_cents']!r}")
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["sale_id"] = str(kwargs["sale_id"])
        extra = dict(kwargs.pop("extra", {}) or {})
        extra.update({k: v for k, v in data.items() if k not in known})
        return cls(**kwargs, extra=extra)


def price_cents(price: Any, where: str = "price") -> int:
    """'1.19' / 1.19 / {'cents': 119} -> 119. Raises ValueError naming the bad value."""
    if isinstance(price, dict) and "cents" in price:
        price = Decimal(int(price["cents"])) / 100
    try:
        value = Decimal(str(price))
    except (InvalidOperation, ValueError):
        raise ValueError(f"{where}: {price!r} is not a price (use a decimal string such as '1.19')") from None
    if value < 0 or value != value.quantize(Decimal("0.01")):
        raise ValueError(f"{where}: {price!r} must be a non-negative amount with at most 2 decimals")
    return int(value * 100)


def basket_total(basket: Any) -> int:
    """Total of a basket [{'sku', 'name'?, 'price', 'qty'?}] in cents; ValueError names the bad line."""
    if not isinstance(basket, list) or not basket:
        raise ValueError("basket must be a non-empty list of items like "
                         "{\"sku\": \"milk\", \"price\": \"1.19\"}")
    total = 0
    for i, item in enumerate(basket):
        if not isinstance(item, dict) or "price" not in item:
            raise ValueError(f"basket[{i}]: each item needs at least a 'price' (and usually 'sku'), "
                             f"got {item!r}")
        qty = item.get("qty", 1)
        if not isinstance(qty, int) or isinstance(qty, bool) or qty < 1:
            raise ValueError(f"basket[{i}].qty: {qty!r} must be a positive integer")
        total += price_cents(item["price"], f"basket[{i}].price") * qty
    if total <= 0:
        raise ValueError("basket total must be more than 0.00")
    return total

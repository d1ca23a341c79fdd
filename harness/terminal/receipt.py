"""The receipt the emulated terminal prints through the ECR (06 D1 print lines), as text lines.

>>> receipt_lines({"kind": "sale", "created": 0, "result_code": 0},
...               {"amount": 1999, "pan": "411111******1111", "card_name": "VISA"})[-2:]
['AMOUNT EUR 19.99', 'APPROVED']
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from harness.protocols import zvt

MERCHANT = "POSRIG TEST MERCHANT"
TITLES = {"sale": "CARD PAYMENT", "void": "REVERSAL", "end_of_day": "END OF DAY"}


def receipt_lines(row: dict[str, Any], status: dict[str, Any], merchant: str = MERCHANT) -> list[str]:
    """The customer receipt of a journal `row` and its Status-Information fields (PCI: masked card number, no
    expiry date)."""
    result = status.get("result_code", row.get("result_code"))
    amount = status.get("amount", row.get("amount")) or 0
    when = datetime.fromtimestamp(row["created"])
    lines = [
        merchant,
        TITLES.get(row["kind"], row["kind"]),
        f"TERMINAL-ID {status.get('terminal_id', '')}",
        when.strftime("DATE %d.%m.%Y TIME %H:%M:%S"),
        f"TRACE {status.get('trace', row.get('trace'))}",
    ]
    if status.get("receipt_no") is not None:
        lines.append(f"RECEIPT {status['receipt_no']}")
    if status.get("pan"):
        lines += [f"{status.get('card_name', '')}", f"CARD {status['pan']}"]
    if status.get("aid"):
        lines.append(f"AUTH CODE {status['aid']}")
    lines.append(f"AMOUNT EUR {amount // 100}.{amount % 100:02d}")
    if status.get("additional_text"):
        lines.append(str(status["additional_text"]))
    approved = result == zvt.RESULT_SUCCESS
    lines.append("APPROVED" if approved else f"NOT APPROVED ({zvt.RESULT_CODES.get(result, 'declined')})")
    return lines

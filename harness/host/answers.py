"""What the acquirer sends back: response codes of its own, answer MTIs, the answer's fields, and `Decision`.

>>> response_mti("0201"), message_class("0201")
('0210', '0200')
>>> answer({"t": "0200", "11": "000001", "4": "000000001000"}, "0210", "00", rrn="512000000001", auth="007919")
{'t': '0210', '4': '000000001000', '11': '000001', '37': '512000000001', '38': '007919', '39': '00'}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.host.behaviour import APPROVED, Behaviour
from harness.protocols import iso8583 as iso
from harness.protocols.iso8583 import (
    AMOUNT,
    AUTH_CODE,
    CURRENCY,
    MERCHANT_ID,
    NETWORK_CODE,
    ORIGINAL_DATA,
    PROCESSING_CODE,
    RESPONSE_CODE,
    RRN,
    STAN,
    TERMINAL_ID,
)

# Response codes the host itself uses (rules and magic amounts may answer others).
FORMAT_ERROR = "30"     # missing or bad field
NOT_FOUND = "25"        # original of a reversal not found (remembered: it is booked reversed if it comes late)
UNSUPPORTED = "40"      # message type not supported
DUPLICATE = "94"        # same terminal + STAN repeated with different content
RECONCILE_ERROR = "95"  # reconciliation totals differ (the cut-over still happens)
INVALID = "12"          # reversal of a settled payment

# Request fields copied into the answer when present.
ECHOED = (
    PROCESSING_CODE,
    AMOUNT,
    iso.TRANSMISSION_TIME,
    STAN,
    iso.LOCAL_TIME,
    iso.LOCAL_DATE,
    TERMINAL_ID,
    MERCHANT_ID,
    CURRENCY,
    ORIGINAL_DATA,
    NETWORK_CODE,
)


def message_class(mti: str) -> str:
    """'0201' -> '0200': a repeat belongs to the class of the request it repeats."""
    return mti[:3] + "0" if len(mti) == 4 and mti[3] == "1" else mti


def response_mti(mti: str) -> str | None:
    """The answer's MTI for a request MTI; None when `mti` is not a request (a response, garbage)."""
    if mti in iso.RESPONSE_MTI:
        return iso.RESPONSE_MTI[mti]
    if len(mti) == 4 and mti.isdigit() and mti[2] in "02468" and mti[3] in "01":
        return mti[:2] + str(int(mti[2]) + 1) + "0"
    return None


def terminal_of(fields: dict[str, Any]) -> str:
    """The terminal id (field 41) without padding; '' when absent."""
    return str(fields.get(TERMINAL_ID, "")).strip()


def answer(
    fields: dict[str, Any], resp_mti: str, code: str, rrn: str | None = None, auth: str | None = None
) -> dict[str, Any]:
    """The answer's fields: the echoed request fields, RRN (37), auth code (38, approvals only), code (39)."""
    resp = {"t": resp_mti, **{f: fields[f] for f in ECHOED if f in fields}}
    if rrn:
        resp[RRN] = rrn
    elif RRN in fields:
        resp[RRN] = fields[RRN]
    if auth and code == APPROVED:
        resp[AUTH_CODE] = auth
    resp[RESPONSE_CODE] = code
    return resp


@dataclass
class Decision:
    """What to send back for one received message, and how. `response` None = nothing to send."""

    response: dict[str, Any] | None
    behaviour: Behaviour
    reason: str
    payment_id: int | None = None
    duplicate: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def delivery(self) -> str:
        return self.behaviour.delivery if self.response is not None else "none"

    def describe_delivery(self) -> str:
        """How the answer goes out, as the ledger keeps it: 'answer', 'silent after 150 ms (scaled)', 'none'."""
        b = self.behaviour
        text = self.delivery
        if b.delay_ms and self.response is not None:
            text += f" after {b.delay_ms:g} ms" + (" (scaled)" if b.scaled else "")
        return text


def refuse(fields: dict[str, Any], resp_mti: str, code: str, reason: str) -> Decision:
    """An answer with an error `code`, delivered plainly (no rule's delay or delivery applies)."""
    return Decision(answer(fields, resp_mti, code), Behaviour.approve(), reason)

"""Test cards: the one table of card numbers posrig uses, what each card does, and how the acquirer answers it.

The emulated terminal plays the card side (PIN, removal, an offline-only chip); the emulated acquirer host
answers by card number (`host_code`, ISO 8583 field 39); the fault matrix presents a card per outcome
(`FOR_OUTCOME`); the oracle's I4 scan looks for every number here, in clear, in every evidence file (`PANS`).
The numbers follow common acquirer test-card conventions.

>>> CARDS["approve"].masked_pan, card("decline").host_code, FOR_OUTCOME["decline"]
('411111******1111', '05', 'decline')
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.core.masking import mask_pan

APPROVED = "00"


@dataclass(frozen=True)
class TestCard:
    """One test card. `removed` = 'before_online' or 'after_online' pulls the card at that stage."""

    __test__ = False  # not a pytest test class

    name: str
    pan: str
    expiry: str = "2812"  # YYMM
    card_name: str = "VISA"
    card_type: int = 10  # ZVT card-type (8A): 10 = Visa, 6 = Mastercard
    pin_ok: bool = True
    removed: str | None = None
    offline_only: bool = False  # chip refuses to go online: approve offline within the floor limit
    host_code: str = APPROVED  # how the emulated acquirer answers this card (field 39)
    host_reason: str = ""  # why, in the acquirer's ledger

    @property
    def masked_pan(self) -> str:
        return mask_pan(self.pan)

    @property
    def zvt_pan(self) -> str:
        """The card number as sent in ZVT BMP 22: BIN and last four, the rest masked ('E' nibbles on the
        wire)."""
        return self.masked_pan


CARDS: dict[str, TestCard] = {
    c.name: c
    for c in (
        TestCard("approve", "4111111111111111"),
        TestCard("decline", "4000000000000002", host_code="05", host_reason="do not honour"),
        TestCard("insufficient_funds", "4000000000009995", host_code="51", host_reason="insufficient funds"),
        TestCard("issuer_unavailable", "4000000000000119", host_code="91", host_reason="issuer unavailable"),
        TestCard("card_removed", "4242424242424242", removed="before_online"),
        TestCard("removed_after_online", "4000056655665556", removed="after_online"),
        TestCard("wrong_pin", "5555555555554444", card_name="MASTERCARD", card_type=6, pin_ok=False),
        TestCard("offline_only", "4012888888881881", offline_only=True),
    )
}
DEFAULT_CARD = CARDS["approve"]
PANS: tuple[str, ...] = tuple(c.pan for c in CARDS.values())
# The card the fault matrix presents for each host outcome.
FOR_OUTCOME: dict[str, str] = {"approve": "approve", "decline": "decline"}


def card(spec: str | TestCard) -> TestCard:
    """A card by name ('decline') or the card itself; an unknown name raises naming the known ones."""
    if isinstance(spec, TestCard):
        return spec
    try:
        return CARDS[spec]
    except KeyError:
        raise ValueError(f"unknown test card {spec!r}; known: {', '.join(CARDS)}") from None

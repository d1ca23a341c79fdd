"""Test cards the emulated terminal can be handed: each one a PAN and how the card itself behaves.

Host decisions (decline, insufficient funds) come from the acquirer host, keyed on the card number, so the
PANs follow common acquirer test-card conventions; card-side behaviour (PIN check, removal, offline-only chip)
is played by the terminal.

>>> CARDS["approve"].masked_pan
'411111******1111'
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.core.masking import mask_pan


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
        TestCard("decline", "4000000000000002"),
        TestCard("insufficient_funds", "4000000000009995"),
        TestCard("card_removed", "4242424242424242", removed="before_online"),
        TestCard("removed_after_online", "4000056655665556", removed="after_online"),
        TestCard("wrong_pin", "5555555555554444", card_name="MASTERCARD", card_type=6, pin_ok=False),
        TestCard("offline_only", "4012888888881881", offline_only=True),
    )
}
DEFAULT_CARD = CARDS["approve"]


def card(spec: str | TestCard) -> TestCard:
    """A card by name ('decline') or the card itself; an unknown name raises naming the known ones."""
    if isinstance(spec, TestCard):
        return spec
    try:
        return CARDS[spec]
    except KeyError:
        raise ValueError(f"unknown test card {spec!r}; known: {', '.join(CARDS)}") from None

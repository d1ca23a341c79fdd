"""The one test-card table: what the terminal, the host, the matrix and the oracle all read."""

from harness.acceptance.oracle import scan_evidence
from harness.core import cards
from harness.core.masking import luhn_ok
from harness.host.behaviour import TEST_CARDS


def test_every_card_is_a_valid_card_number_with_a_unique_name():
    assert all(luhn_ok(c.pan) and 13 <= len(c.pan) <= 19 for c in cards.CARDS.values())
    assert len(set(cards.PANS)) == len(cards.CARDS)
    assert all(cards.card(name).name == name for name in cards.CARDS)


def test_the_host_declines_exactly_the_cards_the_table_says():
    assert set(TEST_CARDS) == {c.pan for c in cards.CARDS.values() if c.host_code != cards.APPROVED}
    assert TEST_CARDS[cards.CARDS["decline"].pan][1].code == "05"


def test_the_matrix_cards_exist():
    assert all(name in cards.CARDS for name in cards.FOR_OUTCOME.values())


def test_i4_scan_knows_every_card_of_the_table_also_in_binary_files(tmp_path):
    # A Mastercard number once missing from the oracle's own list: it must be caught in a binary file too.
    (tmp_path / "capture.pcapng").write_bytes(b"\x00\x01" + cards.CARDS["wrong_pin"].pan.encode() + b"\xff")
    (tmp_path / "ledger.sqlite").write_bytes(b"\x00" + bytes.fromhex(cards.CARDS["offline_only"].pan) + b"\x00")
    found = {p.name: pans for p, pans in scan_evidence(tmp_path)}
    assert found == {"capture.pcapng": ["555555******4444"], "ledger.sqlite": ["401288******1881"]}

"""The receipt journal: four files per receipt, card numbers masked in every one of them."""

from __future__ import annotations

import json

from harness.core.masking import mask_bytes
from harness.printer.journal import ReceiptJournal
from harness.protocols.escpos.decoder import decode
from harness.protocols.escpos.receipt import ReceiptBuilder

PAN = b"4111 1111 1111 1111"


def test_mask_bytes_keeps_length_and_the_first_six_last_four():
    data = b"\x1bE\x01CARD " + PAN + b"\n\x1dk\x02400638133393\x00"
    masked = mask_bytes(data)
    assert len(masked) == len(data)
    assert b"4111 11** **** 1111" in masked and masked.endswith(b"400638133393\x00")


def test_journal_masks_a_full_card_number_and_reports_it(tmp_path):
    (r,) = ReceiptBuilder().add(decode(b"SALE 10.00\nCARD " + PAN + b"\n\x1dV\x00"))
    paths = ReceiptJournal(tmp_path).write(r)
    assert sorted(p.suffix for p in paths) == [".bin", ".json", ".png", ".txt"]
    for p in paths:
        assert b"1111 1111 1111" not in p.read_bytes() and b"4111111111111111" not in p.read_bytes()
    record = json.loads((tmp_path / "receipt-0001.json").read_text())
    assert record["unmasked_pans_printed"] == ["411111******1111"]
    assert "4111 11** **** 1111" in (tmp_path / "receipt-0001.bin").read_bytes().decode()

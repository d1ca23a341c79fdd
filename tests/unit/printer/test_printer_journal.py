"""The receipt journal: four files per receipt, card numbers masked in every one of them, recorded in the
receipt (`Receipt.files`)."""

from __future__ import annotations

import json

import pytest

from harness.core.masking import mask_bytes
from harness.printer.core import PrinterCore
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


def test_journal_records_its_files_in_the_receipt(tmp_path):
    (r,) = ReceiptBuilder().add(decode(b"TOTAL 4.20\n\x1dV\x00"))
    assert r.files == {}
    paths = ReceiptJournal(tmp_path / "j").write(r)
    assert set(r.files) == {"bin", "txt", "png", "json"} and sorted(r.files.values()) == sorted(paths)
    assert r.files["png"] == (tmp_path / "j" / "receipt-0001.png") and r.files["png"].read_bytes()[:4] == b"\x89PNG"
    assert json.loads(r.files["json"].read_text())["lines"] == ["TOTAL 4.20"]


@pytest.mark.parametrize("background", [False, True])
def test_a_receipt_that_cannot_be_drawn_has_no_png_file(tmp_path, monkeypatch, background):
    monkeypatch.setattr("harness.printer.render.CJK_FONT", str(tmp_path / "absent.ttc"))
    (r,) = ReceiptBuilder().add(decode(b"\x1c&" + "收据".encode("gb18030") + b"\n\x1dV\x00"))
    journal = ReceiptJournal(tmp_path / "j", background=background)
    journal.write(r)
    assert journal.settle(10)
    assert set(r.files) == {"bin", "txt", "json"} and not (tmp_path / "j" / "receipt-0001.png").exists()
    assert "fonts-wqy-zenhei" in json.loads(r.files["json"].read_text())["render_error"]
    journal.close()


def test_background_journal_draws_every_receipt_in_order_and_close_waits_for_them(tmp_path):
    journal = ReceiptJournal(tmp_path, background=True)
    receipts = ReceiptBuilder().add(decode(b"".join(b"TOTAL %d.00\n\x1dV\x00" % i for i in range(5))))
    for r in receipts:
        journal.write(r)
        assert r.files["txt"].exists() and r.files["json"].exists()      # written at once
    journal.close()
    assert [r.files["png"].read_bytes()[:4] for r in receipts] == [b"\x89PNG"] * 5


def test_a_receipt_is_published_only_with_its_files(tmp_path):
    """Who sees a receipt in `receipts` or gets it from `wait_for_receipt` sees its evidence files too."""
    core = PrinterCore()
    seen_in_listener: list[int] = []
    core.add_receipt_listener(lambda r: seen_in_listener.append(len(core.receipts)))
    core.add_receipt_listener(ReceiptJournal(tmp_path).write)
    core.receive(b"SALE 1.00\n\x1dV\x00")
    r = core.wait_for_receipt(1)
    assert r.files["txt"].read_text().startswith("SALE 1.00") and seen_in_listener == [0]
    assert core.receipts == [r]

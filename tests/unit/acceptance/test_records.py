"""The oracle reads receipts from the printer's typed receipts: the reference till's own receipts, printed by
python-escpos, decoded by the ESC/POS decoder, give back the amount, auth code, kind, tender and offline marker."""

from pathlib import Path

import pytest
from escpos.printer import Dummy

from harness.acceptance.records import read_receipt
from harness.protocols.escpos.decoder import decode
from harness.protocols.escpos.receipt import ReceiptBuilder
from harness.reference_till.receipt import sale_receipt

SALE = {"id": "T1-000007", "basket": [{"sku": "milk", "name": "Milk 1l", "price": "1.19", "qty": 2},
                                      {"sku": "bread", "name": "Bread", "price": "2.50"}],
        "amount_cents": 488, "tender": "card", "currency": "EUR", "masked_pan": "411111******1111",
        "auth_code": "A1B2C3", "trace": 17, "receipt_no": 4, "terminal_id": "29001234", "offline": False}


def printed(*lines: str, drawer: bool = False):
    """What a till's python-escpos bytes become on the printer: one typed receipt."""
    p = Dummy()
    for line in lines:
        p.textln(line)
    if drawer:
        p.cashdraw(2)                  # inside the receipt (before its cut)
    p.cut()
    [receipt] = ReceiptBuilder().add(decode(p.output))
    return receipt


def test_a_card_sale_receipt_reads_back_typed():
    receipt = printed(*sale_receipt(SALE).lines)
    receipt.files = {"png": Path("/evidence/printer/receipt-0001.png")}
    r = read_receipt(receipt)
    assert (r.kind, r.tender, r.amount, r.auth_code, r.offline) == ("sale", "card", 488, "A1B2C3", False)
    assert r.evidence == "/evidence/printer/receipt-0001.png"


@pytest.mark.parametrize("changes,expected", [
    ({"offline": True, "auth_code": None}, ("sale", "card", 488, "", True)),
    ({"tender": "cash"}, ("sale", "cash", 488, "", False)),
])
def test_offline_and_cash_receipts(changes, expected):
    r = read_receipt(printed(*sale_receipt({**SALE, **changes}).lines))
    assert (r.kind, r.tender, r.amount, r.auth_code, r.offline) == expected


def test_a_reprint_is_a_copy_and_a_declined_slip_is_not_a_sale():
    assert read_receipt(printed(*sale_receipt(SALE, reprint=True).lines)).kind == "copy"
    declined = read_receipt(printed("Sale T1-000008", "TOTAL EUR        4.88", "CARD DECLINED"))
    assert declined.kind == "declined" and declined.amount == 488


def test_only_the_total_line_gives_the_amount_and_drawer_pulses_are_counted():
    r = read_receipt(printed("SUBTOTAL        9.99", "Milk 1l          1.19", "TOTAL           1.19",
                             "CASHBACK        20.00", drawer=True))
    assert r.amount == 119 and r.tender == "card" and r.drawer_pulses == 1
    assert read_receipt(printed("Thank you")).amount is None

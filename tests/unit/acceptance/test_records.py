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


def test_the_printers_drawer_pulses_reach_the_oracle_inside_a_receipt_or_outside_any():
    from harness.acceptance.records import printed_receipts
    from harness.printer.core import PrinterCore

    core = PrinterCore()
    p = Dummy()
    p.textln("TOTAL EUR 4.88")
    p.cut()
    p.cashdraw(2)                                       # after the cut: in the uncut buffer
    core.receive(p.output)
    got = printed_receipts(core)
    assert [r.drawer_pulses for r in got] == [0]
    [kick] = got.drawer
    assert kick.receipt is None and not kick.inside_receipt and kick.t == core.drawer_events[0].t
    assert printed_receipts(object()).drawer is None    # a printer without drawer events: counted off receipts
    from harness.acceptance.records import drawer_timeline

    [event] = drawer_timeline(core)
    assert (event.t, event.source, event.what) == (kick.t, "printer", "drawer pulse pin 2 (ESC p) outside any receipt")


def test_times_the_drawer_rule_needs_come_from_the_journals_and_the_ledger():
    from types import SimpleNamespace

    from harness.acceptance.records import host_payments, terminal_journal, till_sales

    txn = {"trace": 7, "amount": 488, "state": "approved", "auth_code": "A1", "offline": 0, "stan": "000007",
           "history": '[{"t": 100.0, "state": "started"}, {"t": 100.5, "state": "approved"}]'}
    terminal = SimpleNamespace(journal=SimpleNamespace(transactions=lambda kind=None: [txn]))
    [entry] = terminal_journal(terminal)
    assert (entry.stan, entry.approved_at) == ("000007", 100.5)
    till = SimpleNamespace(journal=lambda: [{"id": "T1-1", "amount_cents": 488, "created": 99.0},
                                            {"sale_id": "V-2", "amount_cents": 100, "events": [{"t": 120.0}]},
                                            {"sale_id": "V-3", "amount_cents": 100}])
    assert [s.started for s in till_sales(till)] == [99.0, 120.0, None]
    row = SimpleNamespace(terminal="T1", stan="000007", amount=488, state="approved", rrn="", auth_code="A1",
                          kind="financial", created=100.2)
    host = SimpleNamespace(ledger=SimpleNamespace(payments=lambda: [row]))
    assert host_payments(host)[0].t == 100.2

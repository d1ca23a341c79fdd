"""Each till profile's distinguishing behaviour: the real till process against a ZVT terminal and an ESC/POS
printer on real sockets. Every bug profile must do damage where `correct` does not."""

from __future__ import annotations

import threading
import time

import pytest

from harness.core.events import wait_until
from tests.support.till_peers import BASKET, TOTAL, MiniPrinter, ScriptedTerminal


def sale_receipts(printer: MiniPrinter) -> int:
    return printer.text.count("Thank you")


def test_correct_approved_card_sale_prints_one_receipt(make_till):
    till, terminal, printer = make_till("correct")
    assert terminal.registered == bytes.fromhex("000000 1a 0978")          # 06 00 at start-up: ECR prints
    assert till.identity()["till"]["registration"] == "registered"
    out = till.sell(BASKET, "card")
    assert out.status == "paid" and out.receipt == "printed" and out.amount_cents == TOTAL
    assert out.masked_pan == "411111******1111" and out.auth_code == "A1B2C3" and not out.offline
    assert [c.amount for c in terminal.charged] == [TOTAL]
    text = printer.text
    assert sale_receipts(printer) == 1 and "4.88" in text and "A1B2C3" in text and "411111******1111" in text
    assert "4111111111111111" not in text
    assert b"\x1d(k" in printer.received                   # a native QR code
    assert b"\x1bp" not in printer.received                 # no drawer kick for a card sale
    states = out.states
    assert states.index("status-information-received") < states.index("paid") < states.index("printed")


def test_correct_declined_card_prints_nothing(make_till):
    till, terminal, printer = make_till("correct", ScriptedTerminal("decline"))
    out = till.sell(BASKET)
    assert out.status == "declined" and out.receipt == "none" and out.terminal_result == 0x05
    assert sale_receipts(printer) == 0 and not terminal.charged


def test_cash_sale_kicks_the_drawer(make_till):
    till, terminal, printer = make_till("correct")
    out = till.sell(BASKET, "cash")
    assert out.status == "paid" and out.drawer_opened and out.receipt == "printed"
    assert b"\x1bp\x00" in printer.received and sale_receipts(printer) == 1
    assert terminal.commands("0601") == 0
    received = bytes(printer.received)
    assert received.index(b"Thank you") < received.index(b"\x1bp\x00") < received.rindex(b"\x1dV")   # in the slip


def test_drawer_on_decline_opens_the_drawer_for_a_declined_card_and_says_nothing(make_till):
    till, terminal, printer = make_till("drawer-on-decline", ScriptedTerminal("decline"))
    out = till.sell(BASKET)
    assert out.status == "declined" and out.receipt == "none" and not out.drawer_opened   # its word: no drawer
    assert b"\x1bp" in printer.received and sale_receipts(printer) == 0 and not terminal.charged
    correct, _, quiet = make_till("correct", ScriptedTerminal("decline"))
    assert correct.sell(BASKET).status == "declined" and b"\x1bp" not in quiet.received


def test_drawer_at_tender_opens_the_drawer_before_the_card_payment_starts(make_till):
    till, terminal, printer = make_till("drawer-at-tender")
    out = till.sell(BASKET)
    assert out.status == "paid" and out.receipt == "printed" and not out.drawer_opened
    received = bytes(printer.received)
    assert received.index(b"\x1bp") < received.index(b"Thank you")          # kicked before the receipt
    assert [c.amount for c in terminal.charged] == [TOTAL]


def test_result_never_arrives_correct_asks_and_prints_nothing(make_till):
    # The terminal is silent for 1.5 s and then sends nothing more: the till's result timer (40 s x 0.05 = 2 s)
    # still finds no result, and its queries are answered at once (a longer silence only delayed them).
    till, terminal, printer = make_till("correct", ScriptedTerminal("silent", delay=1.5))
    out = till.sell(BASKET)
    assert out.status in ("failed", "unknown") and out.receipt == "none"
    assert "result-lost" in out.states and "querying" in out.states
    assert sale_receipts(printer) == 0


def test_result_never_arrives_print_on_timeout_prints(make_till):
    till, terminal, printer = make_till("print-on-timeout", ScriptedTerminal("silent", delay=1))
    out = till.sell(BASKET)
    assert out.status == "paid" and out.receipt == "printed"          # the incident
    assert "querying" not in out.states
    assert sale_receipts(printer) == 1 and not terminal.charged


def test_printer_offline_correct_refuses_goods_and_terminal_reverses(make_till):
    till, terminal, printer = make_till("correct", printer=MiniPrinter(online=False))
    out = till.sell(BASKET)
    assert out.status == "failed" and out.receipt == "none" and "goods-refused" in out.states
    assert terminal.commands("0601") == 1
    assert not terminal.charged and terminal.ledger[0].state == "reversed"


def test_printer_offline_ignore_print_failure_charges_without_receipt(make_till):
    till, terminal, printer = make_till("ignore-print-failure", printer=MiniPrinter(online=False))
    out = till.sell(BASKET)
    assert out.status == "paid" and out.receipt == "printed"          # it claims so
    assert [c.amount for c in terminal.charged] == [TOTAL]
    assert sale_receipts(printer) == 0                                 # the customer got nothing
    sale = till.journal()[-1]
    assert [p["ok"] for p in sale["prints"]] == [False]


def test_link_drops_before_completion_correct_queries_and_prints_once(make_till):
    till, terminal, printer = make_till("correct", ScriptedTerminal("drop-after-booking"))
    out = till.sell(BASKET)
    assert out.status == "paid" and out.receipt == "printed" and "query-answered" in out.states
    assert len(terminal.charged) == 1 and sale_receipts(printer) == 1
    assert terminal.commands("0601") == 1                                     # never resent


def test_link_drops_before_completion_retry_without_query_charges_twice(make_till):
    till, terminal, printer = make_till("retry-without-query", ScriptedTerminal("drop-after-booking"))
    out = till.sell(BASKET)
    assert "retrying" in out.states
    charges = [c.amount for c in terminal.charged]
    assert len(charges) == terminal.commands("0601") >= 2 and set(charges) == {TOTAL}


def test_card_rejects_after_status_correct_prints_nothing(make_till):
    till, terminal, printer = make_till("correct", ScriptedTerminal("reject-after-status"))
    out = till.sell(BASKET)
    assert out.status == "failed" and out.receipt == "none" and sale_receipts(printer) == 0
    assert not terminal.charged


def test_card_rejects_after_status_print_before_completion_prints(make_till):
    till, terminal, printer = make_till("print-before-completion", ScriptedTerminal("reject-after-status"))
    out = till.sell(BASKET)
    assert out.receipt == "printed" and sale_receipts(printer) == 1
    assert not terminal.charged                                           # receipt without payment


def test_host_down_correct_fails_offline_as_approved_prints(make_till):
    till, terminal, printer = make_till("correct", ScriptedTerminal("host-down"))
    out = till.sell(BASKET)
    assert out.status == "failed" and out.receipt == "none" and out.terminal_result == 0x9B
    till2, terminal2, printer2 = make_till("offline-as-approved", ScriptedTerminal("host-down"))
    out2 = till2.sell(BASKET)
    assert out2.status == "paid" and out2.offline and out2.receipt == "printed"
    assert "OFFLINE APPROVED" in printer2.text and not terminal2.charged


def _abort_soon(till, after: float) -> threading.Thread:
    def run():
        time.sleep(after)
        till.abort()
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_cashier_abort_racing_approval_correct_refuses_goods(make_till):
    terminal = ScriptedTerminal("slow-approve", delay=0.6, reverses=False)
    till, terminal, printer = make_till("correct", terminal)
    t = _abort_soon(till, 0.2)
    out = till.sell(BASKET)
    t.join()
    assert out.status == "cancelled" and out.receipt == "none"
    assert not terminal.charged and terminal.ledger[0].state == "reversed"   # 84 66: the terminal reversed


def test_cashier_abort_racing_approval_trust_abort_says_cancelled_while_charged(make_till):
    terminal = ScriptedTerminal("slow-approve", delay=0.6, reverses=False)
    till, terminal, printer = make_till("trust-abort", terminal)
    t = _abort_soon(till, 0.2)
    out = till.sell(BASKET)
    t.join()
    assert wait_until(lambda: terminal.charged, 5)    # the terminal finishes its approval
    assert out.status == "cancelled"
    assert [c.amount for c in terminal.charged] == [TOTAL]


def test_paper_out_after_booking_correct_owes_and_reprints(make_till):
    printer = MiniPrinter()
    till, terminal, _ = make_till("correct", printer=printer)
    out = till.sell(BASKET)
    assert out.receipt == "printed"
    # paper runs out: the next sale's receipt cannot come out; the payment stands and the receipt is owed
    printer.paper = False
    out2 = till.sell(BASKET, "cash")
    assert out2.status == "paid" and out2.receipt == "pending"
    printer.paper = True
    till.recover()                        # or the till's own reprinter got there first: either way it is printed
    [sale] = [s for s in till.journal() if out2.sale_id in (s.get("sale_id"), s.get("id"))]
    assert sale["receipt"] == "printed"
    assert "REPRINT" in printer.text


def test_unknown_payment_is_resolved_before_the_next_card_sale(make_till):
    """The link drops before the result and the terminal refuses every query: the sale stays unknown, no
    receipt. Before the next card sale the till asks again, finds the payment and prints the receipt it
    owes."""
    terminal = ScriptedTerminal("drop-after-booking")
    terminal.refuse_queries = 100
    till, _, printer = make_till("correct", terminal)
    first = till.sell(BASKET)
    assert first.status == "unknown" and first.receipt == "none" and sale_receipts(printer) == 0
    terminal.refuse_queries = 0
    terminal.behaviour = "approve"
    second = till.sell([{"sku": "tea", "price": "3.00"}])
    assert second.status == "paid"
    journal = {s["id"]: s for s in till.journal()}
    assert journal[first.sale_id]["status"] == "paid" and journal[first.sale_id]["receipt"] == "printed"
    assert [c.amount for c in terminal.charged] == [TOTAL, 300] and sale_receipts(printer) == 2


def test_the_next_customer_waits_while_the_till_is_busy_then_is_served(make_till):
    """The matrix rings up the next customer as a cashier would: a 409 (a sale still running) is waited out, not
    an ERROR; any other refusal, or a till busy past the timeout, stands."""
    from types import SimpleNamespace

    from harness.acceptance.scenario import sell_when_free
    from harness.till.http import RefusedRequest

    till, terminal, printer = make_till("correct", ScriptedTerminal("slow-approve", delay=1.0))
    first = threading.Thread(target=till.sell, args=(BASKET, "card"))
    first.start()
    assert wait_until(lambda: terminal.commands("0601") == 1, 5)
    with pytest.raises(RefusedRequest) as refused:          # a second sale while one runs
        till.sell(BASKET, "card")
    assert refused.value.status == 409
    with pytest.raises(RefusedRequest):                    # busy longer than the cashier waits
        sell_when_free(SimpleNamespace(till=till), BASKET, timeout=0.1)
    out = sell_when_free(SimpleNamespace(till=till), BASKET, timeout=10)
    first.join(10)
    assert out.status == "paid" and [c.amount for c in terminal.charged] == [TOTAL, TOTAL]

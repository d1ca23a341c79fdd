"""Each invariant on its smallest records: the set that passes, and the smallest change that breaks it, with the
violation's invariant id and message. I5 also per drawer rule (every pulse, inside a receipt or not, judged
against the sale whose time window holds it)."""

from dataclasses import replace

import pytest

from harness.acceptance.oracle import (
    DrawerKick,
    JournalEntry,
    Payment,
    PrintedReceipt,
    PrintedReceipts,
    Sale,
    reconcile,
)

PAY = Payment("T1/000001", 488, "approved", stan="000001", auth_code="A1", t=100.0)
SALE = Sale("s1", 488, status="paid", receipt="printed", started=99.0)
RECEIPT = PrintedReceipt(0, "sale", 488, "TOTAL 4.88\nCard 411111******1111", auth_code="A1")
APPROVED = JournalEntry("1", 488, "approved", auth_code="A1", stan="000001", approved_at=100.5)


def records(**changes):
    base = {"payments": [PAY], "journal": [APPROVED], "receipts": [RECEIPT], "sales": [SALE]}
    return {**base, **changes}


def only(name, **changes):
    """The one violation of invariant `name` on the base records with `changes`."""
    result = reconcile(**records(**changes), only=[name])
    assert len(result.violations) == 1, str(result)
    return result.violations[0]


def test_the_base_records_pass_every_invariant():
    result = reconcile(**records())
    assert result.ok, str(result)
    assert result.checked == ["I1", "I2", "I3", "I4", "I5", "I6", "I7"]



def test_I1_a_receipt_naming_another_sales_auth_code():
    """Two sales of the same amount: the second receipt prints the first payment's auth code."""
    second = replace(PAY, ref="T1/000002", stan="000002", auth_code="B2", t=110.0)
    receipts = [RECEIPT, replace(RECEIPT, index=1, auth_code="A1")]
    journal = [APPROVED, replace(APPROVED, trace="2", stan="000002", auth_code="B2", approved_at=110.5)]
    sales = [SALE, replace(SALE, sale_id="s2", started=109.0)]
    assert reconcile(payments=[PAY, second], journal=journal, sales=sales,
                     receipts=[RECEIPT, replace(RECEIPT, index=1, auth_code="B2")], only=["I1"]).violations == []
    [v] = reconcile(payments=[PAY, second], journal=journal, receipts=receipts, sales=sales,
                    only=["I1"]).violations
    assert v.invariant == "I1" and "names auth code A1 (payment T1/000001)" in v.message


def test_I1_a_receipt_naming_another_payments_trace():
    """The receipt's trace number is the one the terminal gave a payment with another STAN."""
    journal = [replace(APPROVED, trace="7"), replace(APPROVED, trace="8", stan="000009", auth_code="")]
    ok = replace(RECEIPT, auth_code="", trace="7")
    assert reconcile(**records(journal=journal, receipts=[ok]), only=["I1"]).violations == []
    v = only("I1", journal=journal, receipts=[replace(ok, trace="8")])
    assert v.invariant == "I1" and "trace 8" in v.message and v.payment == "T1/000001"


# -- I8: the next customer (judged by the scenario runner, on the clean sales around the fault) -------------------


def _clean(amount):
    from types import SimpleNamespace
    return SimpleNamespace(status="paid", receipt="printed"), Payment(f"T1/{amount}", amount, "approved"), \
        PrintedReceipt(amount, "sale", amount, f"TOTAL {amount / 100:.2f}")


def test_I8_the_sales_around_the_fault_paid_once_with_one_receipt_pass():
    from harness.acceptance.scenario import next_customer
    (said, p1, r1), (_, p2, r2) = _clean(478), _clean(669)
    assert next_customer({"before": said, "after": said}, [p1, p2], [r1, r2], still_open=[]) == []


def test_I8_a_copy_reprinted_for_an_owed_receipt_serves_the_customer():
    from harness.acceptance.scenario import next_customer
    (said, p1, r1), (_, p2, r2) = _clean(478), _clean(669)
    copy = replace(r2, kind="copy")                     # the original never came out whole: the till reprinted it
    assert next_customer({"before": said, "after": said}, [p1, p2], [r1, copy], still_open=[]) == []


@pytest.mark.parametrize("broken", ["failed", "charged twice", "no receipt", "never quiet"])
def test_I8_the_next_customer_not_served(broken):
    from types import SimpleNamespace

    from harness.acceptance.scenario import next_customer
    (said, p1, r1), (_, p2, r2) = _clean(478), _clean(669)
    clean, payments, receipts, still_open = {"before": said, "after": said}, [p1, p2], [r1, r2], []
    if broken == "failed":
        clean["after"] = SimpleNamespace(status="failed", receipt="none")
    elif broken == "charged twice":
        payments.append(replace(p2, ref="T1/again"))
    elif broken == "no receipt":
        receipts.remove(r2)
    else:
        del clean["after"]
        still_open = ["till sale T1-9 still unknown/none"]      # the terminal's own backlog is not the till's
    [v] = next_customer(clean, payments, receipts, still_open)
    assert v.startswith("I8") and ("6.69" in v or "never got quiet" in v)


# -- I9: the till acknowledges the terminal (judged by the scenario runner, on the clean sales) --------------------


def _unheard(apdu="04 FF intermediate_status", late=False, closed=False):
    return {"t": 1.0, "apdu": apdu, "peer": "till", "late": late, "closed": closed}


def test_I9_every_message_acknowledged_in_time_or_late_passes():
    from harness.acceptance.scenario import acknowledged
    assert acknowledged({"before": [], "after": []}) == []
    assert acknowledged({"before": [_unheard(late=True)], "after": [_unheard("06 0F completion", late=True)]}) == []


def test_I9_a_message_never_acknowledged_fails_naming_it():
    from harness.acceptance.scenario import acknowledged
    [v] = acknowledged({"before": [], "after": [_unheard("06 0F completion", closed=True), _unheard(late=True)]})
    assert v.startswith("I9") and "after the fault" in v and "06 0F completion (it hung up instead)" in v
    assert "04 FF" not in v                                  # the late one was acknowledged


def test_I9_judges_only_the_connections_of_the_clean_sale():
    """A request of the faulted sale held on the link reaches the terminal during the next sale, on the old
    connection the till had closed: its unanswered completion is not the clean sale's."""
    from harness.acceptance.scenario import sale_messages
    stale = {**_unheard("06 0F completion", closed=True), "t": 20.0, "opened": 5.0}
    own = {**_unheard("06 0F completion", closed=True), "t": 20.0, "opened": 12.0}
    before = {**_unheard(), "t": 8.0, "opened": 8.0}
    assert sale_messages([stale, own, before], started=10.0) == [own]


def test_I1_sale_receipt_for_a_payment_not_held():
    v = only("I1", payments=[replace(PAY, state="reversed")])
    assert v.invariant == "I1" and v.receipt == 0 and v.payment == "T1/000001"
    assert v.message == "sale receipt for 4.88 but the acquirer holds no such payment (T1/000001=reversed)"


def test_I2_payment_held_without_its_receipt():
    v = only("I2", receipts=[])
    assert v.invariant == "I2" and v.payment == "T1/000001"
    assert v.message == "acquirer holds 4.88 (approved) but no sale receipt was printed for it"


def test_I3_second_charge_for_one_sale():
    v = only("I3", payments=[PAY, replace(PAY, ref="T1/000002", stan="000002")])
    assert v.invariant == "I3" and v.payment == "T1/000001, T1/000002"
    assert v.message == "2 charges of 4.88 held by the acquirer for 1 sale(s) of that amount"


def test_I4_a_card_number_in_clear_on_a_receipt_also_printed_in_groups_and_not_a_test_card():
    v = only("I4", receipts=[replace(RECEIPT, text="TOTAL 4.88\nCard 5105 1051 0510 5100")])
    assert v.invariant == "I4" and v.receipt == 0
    assert v.message == "receipt shows an unmasked card number (510510******5100)"


def test_I4_a_card_number_in_clear_in_an_evidence_file(tmp_path):
    (tmp_path / "till.log").write_text("card 411111******1111 ok\n")
    assert reconcile(**records(), evidence_dir=tmp_path).ok
    (tmp_path / "till.log").write_text("card 5105-1051-0510-5100 ok\n")
    v = only("I4", evidence_dir=tmp_path)
    assert v.evidence == (str(tmp_path / "till.log"),)
    assert v.message == "evidence file shows 1 unmasked card number(s) (510510******5100)"


def test_I6_offline_approval_printed_as_online():
    offline = replace(PAY, offline=True)
    assert reconcile(**records(payments=[offline], receipts=[replace(RECEIPT, offline=True)],
                               sales=[replace(SALE, offline=True)])).ok
    v = only("I6", payments=[offline])
    assert v.invariant == "I6" and v.payment == "T1/000001" and v.receipt == 0
    assert v.message == "offline approval printed without saying offline"


def test_I7_till_says_failed_while_the_acquirer_holds_the_money():
    v = only("I7", sales=[replace(SALE, status="failed", receipt="none")])
    assert v.invariant == "I7" and v.payment == "T1/000001"
    assert v.message == ("till says sale s1 failed but the acquirer holds 4.88 (approved): the cashier would take "
                         "the money twice")


# -- I5: every drawer pulse ---------------------------------------------------------------------------------------
AFTER = DrawerKick(t=101.0, receipt=0, inside_receipt=True)       # with the receipt, after the approval


def test_I5_a_pulse_after_the_approval_of_a_held_payment_passes():
    result = reconcile(**records(), drawer=[AFTER])
    assert result.ok and result.drawer_pulses == 1 and result.to_dict()["drawer_pulses"] == 1


def test_I5_a_pulse_for_a_card_sale_whose_payment_is_not_held():
    v = only("I5", payments=[replace(PAY, state="declined")], receipts=[], drawer=[replace(AFTER, receipt=None,
                                                                                        inside_receipt=False)])
    assert v.invariant == "I5" and v.receipt is None and v.payment == "T1/000001"
    assert v.message == ("drawer opened outside any receipt 2.000 s after the sale began for card sale s1 (4.88) "
                         "but the acquirer holds no payment for it (T1/000001=declined)")


def test_I5_a_pulse_before_the_terminal_approved_even_if_the_payment_settled():
    v = only("I5", drawer=[replace(AFTER, t=100.0, receipt=None, inside_receipt=False)])   # kicked at tender
    assert v.invariant == "I5" and v.payment == "T1/000001"
    assert v.message == ("drawer opened outside any receipt 0.500 s before the terminal approved payment "
                         "T1/000001 of card sale s1 (4.88): opened on money not yet held")


def test_I5_without_the_terminal_journal_the_acquirers_booking_is_the_approval():
    assert reconcile(**records(journal=[]), drawer=[replace(AFTER, t=100.2)]).ok
    v = only("I5", journal=[], drawer=[replace(AFTER, t=99.5)])
    assert "0.500 s before the terminal approved" in v.message


def test_I5_a_cash_sale_may_open_the_drawer_anywhere():
    cash = Sale("s1", 488, tender="cash", status="paid", receipt="printed", started=99.0)
    outside = DrawerKick(t=99.5, receipt=None)
    assert reconcile(**records(payments=[], journal=[], receipts=[replace(RECEIPT, tender="cash")],
                               sales=[cash]), drawer=[outside]).ok


def test_I5_a_pulse_belongs_to_the_sale_whose_time_window_holds_it():
    cash = Sale("s1", 300, tender="cash", status="paid", started=90.0)
    card = Sale("s2", 488, status="declined", receipt="none", started=110.0)
    declined = replace(PAY, state="declined", t=111.0)
    base = {"payments": [declined], "journal": [], "receipts": [], "sales": [cash, card]}
    assert reconcile(**base, drawer=[DrawerKick(t=105.0)]).ok                       # the cash sale's
    [v] = reconcile(**base, drawer=[DrawerKick(t=112.0)]).violations               # the declined card's
    assert v.invariant == "I5" and "card sale s2 (4.88)" in v.message


def test_I5_a_pulse_before_the_first_sale_belongs_to_it():
    [v] = reconcile(**records(payments=[replace(PAY, state="declined")], receipts=[]),
                    drawer=[DrawerKick(t=98.0)], only=["I5"]).violations
    assert "card sale s1" in v.message and "-1.000 s after the sale began" in v.message


def test_I5_pulses_come_with_the_printers_receipts_and_without_times_are_counted_off_them():
    printed = PrintedReceipts([RECEIPT], drawer=[replace(AFTER, t=99.0)])         # before the approval
    [v] = reconcile(**records(receipts=printed), only=["I5"]).violations
    assert v.receipt == 0 and "inside receipt #0" in v.message
    counted = reconcile(**records(payments=[replace(PAY, state="reversed")],
                                  receipts=[replace(RECEIPT, drawer_pulses=2)]), only=["I5"])
    assert [x.message[:39] for x in counted.violations] == ["drawer opened inside receipt #0 for car"] * 2


@pytest.mark.parametrize("kick", [DrawerKick(t=None, receipt=None), DrawerKick(t=101.0, receipt=3)])
def test_I5_without_sales_a_pulse_is_judged_by_its_receipt_or_the_held_payment(kick):
    assert reconcile([PAY], [APPROVED], [RECEIPT], [], drawer=[kick]).ok
    [v] = reconcile([], [], [], [], drawer=[kick]).violations
    assert v.invariant == "I5" and "a card payment but the acquirer holds no payment" in v.message


# -- the cash row (judged by the scenario runner) -----------------------------------------------------------------


def test_a_cash_sale_paid_with_one_cash_receipt_and_no_card_payment_passes_and_each_break_fails():
    from types import SimpleNamespace

    from harness.acceptance.matrix import scenarios
    from harness.acceptance.scenario import cash_sale

    [row] = [s for s in scenarios() if s.tender == "cash"]
    assert row.id == "till/cash-sale/approve" and row.expected.startswith("cash sale: paid")
    paid, cash = SimpleNamespace(status="paid", receipt="printed"), replace(RECEIPT, tender="cash", auth_code="")
    assert cash_sale(paid, [], [cash]) == [] and cash_sale(paid, [], [replace(cash, kind="copy")]) == []
    for outcome, payments, receipts in ((SimpleNamespace(status="unknown", receipt="none"), [], [cash]),
                                        (paid, [], []), (paid, [], [cash, replace(cash, index=1)]),
                                        (paid, [PAY], [cash])):
        [v] = cash_sale(outcome, payments, receipts)
        assert v.startswith("expect (a cash sale is paid") and "4.88" in v


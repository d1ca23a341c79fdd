"""The oracle catches each invariant's violation, and passes consistent records; invariants are chosen and
added by name; expectations read in the matrix's words."""

import pytest

from harness.acceptance.expectations import ExpectationError, parse
from harness.acceptance.oracle import (
    INVARIANTS,
    REGISTRY,
    JournalEntry,
    Payment,
    PrintedReceipt,
    Records,
    Sale,
    UnknownInvariant,
    Violation,
    invariant,
    reconcile,
)


def _receipt(i=0, amount=1190, kind="sale", **kw):
    return PrintedReceipt(index=i, kind=kind, amount=amount, text=kw.pop("text", f"TOTAL {amount / 100:.2f}"), **kw)


def test_consistent_sale_passes():
    v = reconcile([Payment("T1/000001", 1190, "approved", auth_code="A1")],
                  [JournalEntry("000001", 1190, "approved", host_ref="T1/000001")],
                  [_receipt(auth_code="A1")], [Sale("s1", 1190)])
    assert v.ok, str(v)
    assert v.matches == [(0, "T1/000001")]


def test_the_incident_receipt_for_a_reversed_payment_is_I1():
    v = reconcile([Payment("T1/000001", 50000, "reversed")], [JournalEntry("000001", 50000, "reversed")],
                  [_receipt(amount=50000, evidence="receipt-0.png")], [Sale("s1", 50000)])
    [viol] = v.violations
    assert viol.invariant == "I1" and viol.receipt == 0 and viol.payment == "T1/000001"
    assert "T1/000001=reversed" in str(viol) and "receipt-0.png" in str(viol)


def test_receipt_with_no_payment_at_all_is_I1():
    v = reconcile([], [], [_receipt()], [Sale("s1", 1190)])
    assert [x.invariant for x in v.violations] == ["I1"]


def test_declined_slip_is_not_a_sale_receipt():
    v = reconcile([Payment("T1/1", 1190, "declined")], [], [_receipt(kind="declined")], [Sale("s1", 1190)])
    assert v.ok


def test_money_taken_without_receipt_is_I2_but_reversed_is_fine():
    assert [x.invariant for x in reconcile([Payment("p", 1190, "settled")], [], [], [Sale("s", 1190)]).violations] \
        == ["I2"]
    assert reconcile([Payment("p", 1190, "reversed")], [], [], [Sale("s", 1190)]).ok


def test_double_charge_is_I3():
    v = reconcile([Payment("p1", 1190, "approved"), Payment("p2", 1190, "approved")], [],
                  [_receipt(0), _receipt(1)], [Sale("s1", 1190)])
    assert [x.invariant for x in v.violations] == ["I3"]


def test_unmasked_pan_on_receipt_and_in_evidence_is_I4(tmp_path):
    (tmp_path / "host.jsonl").write_text('{"pan": "4111111111111111"}\n')
    (tmp_path / "link.pcapng").write_bytes(b"\x00\x01" + b"164111111111111111" + b"\xff")
    (tmp_path / "clean.txt").write_text("411111******1111")
    v = reconcile([Payment("p", 1190, "approved")], [], [_receipt(text="CARD 4111111111111111 TOTAL 11.90")],
                  [Sale("s", 1190)], evidence_dir=tmp_path, known_pans=["4111111111111111"])
    found = sorted((x.invariant, x.evidence) for x in v.violations)
    assert found == [("I4", ()), ("I4", (str(tmp_path / "host.jsonl"),)), ("I4", (str(tmp_path / "link.pcapng"),))]
    assert all("4111111111111111" not in str(x) for x in v.violations)


def test_drawer_on_unsettled_card_sale_is_I5():
    v = reconcile([], [], [_receipt(kind="cancelled", drawer_pulses=1)], [Sale("s", 1190)])
    assert [x.invariant for x in v.violations] == ["I5"]


def test_offline_must_be_printed_as_offline_I6():
    pay = Payment("p", 1190, "approved", offline=True)
    assert [x.invariant for x in reconcile([pay], [], [_receipt()], [Sale("s", 1190)]).violations] == ["I6"]
    assert reconcile([pay], [], [_receipt(offline=True)], [Sale("s", 1190)]).ok
    online = Payment("p", 1190, "approved")
    assert [x.invariant for x in reconcile([online], [], [_receipt(offline=True)], []).violations] == ["I6"]


def test_reprint_copy_needs_a_held_payment_but_is_not_a_second_sale():
    pay = Payment("p", 1190, "approved", auth_code="A1")
    receipts = [_receipt(0, auth_code="A1"), _receipt(1, kind="copy", auth_code="A1")]
    ok = reconcile([pay], [], receipts, [Sale("s", 1190)])
    assert ok.ok, str(ok)
    bad = reconcile([Payment("p", 1190, "reversed")], [], [_receipt(0, kind="copy")], [Sale("s", 1190)])
    assert [x.invariant for x in bad.violations] == ["I1"]


def test_a_second_original_for_one_payment_is_an_I1_duplicate_but_a_torn_start_and_a_copy_are_not():
    pay = Payment("p", 1190, "approved", auth_code="A1")
    twice = reconcile([pay], [], [_receipt(0, auth_code="A1"), _receipt(1, auth_code="A1")], [Sale("s", 1190)])
    [viol] = twice.violations
    assert viol.invariant == "I1" and viol.receipt == 1 and viol.payment == "p"
    assert "second original sale receipt for 11.90: payment p was already printed on receipt #0" in str(viol)
    # a till that died after the first lines prints a copy on the same paper: one slip, read as the copy
    torn_then_copy = _receipt(0, kind="copy", text="POSRIG MARKET\nPOSRIG MARKET\n*** COPY ***\nTOTAL 11.90")
    assert reconcile([pay], [], [torn_then_copy], [Sale("s", 1190)]).ok
    # two sales of the same amount, each paid and printed once: no duplicate
    two = [pay, Payment("q", 1190, "approved", auth_code="B2")]
    assert reconcile(two, [], [_receipt(0, auth_code="A1"), _receipt(1, auth_code="B2")],
                     [Sale("s", 1190), Sale("t", 1190)]).ok


def test_named_invariants_only_or_all_but_some():
    records = ([Payment("p", 1190, "reversed")], [], [_receipt()], [Sale("s", 1190)])     # I1 broken
    assert reconcile(*records).broken == ["I1"]
    only = reconcile(*records, only=["I2", "I3"])
    assert only.ok and only.checked == ["I2", "I3"]
    assert reconcile(*records, skip=["I1"]).ok
    with pytest.raises(UnknownInvariant, match=r"unknown invariant\(s\) 'I9': the oracle checks I1, I2"):
        reconcile(*records, only=["I9"])


def test_invariants_whose_records_were_not_kept_are_not_checked_rather_than_judged_on_nothing():
    no_printer = reconcile([Payment("p", 1190, "approved")], [], [], [Sale("s", 1190)],
                           unavailable={"receipts": "no receipts: the test used no printer"})
    assert no_printer.ok                                            # without it, I2: money held without receipt
    assert no_printer.not_checked["I2"] == "no receipts: the test used no printer"
    assert "I3" in no_printer.checked and "I1" not in no_printer.checked


def test_a_new_invariant_plugs_in_by_name_and_is_checked_by_default():
    @invariant("T-never-declined-paid", "the till never says paid for a declined card", needs=("sales",))
    def _check(rec: Records):
        for s in rec.sales:
            if s.status == "paid" and not any(p.holds_money for p in rec.payments):
                yield Violation("T-never-declined-paid", f"{s.sale_id} paid, nothing held")

    try:
        result = reconcile([Payment("p", 1190, "declined")], [], [], [Sale("s", 1190, status="paid")], skip=["I7"])
        [v] = result.violations
        assert v.invariant == "T-never-declined-paid" and v.description.startswith("the till never says paid")
        assert str(v) == ("T-never-declined-paid (the till never says paid for a declined card): s paid, "
                          "nothing held")
        assert reconcile([], [], [], [Sale("s", 1190, status="paid")], skip=["T-never-declined-paid", "I7"]).ok
        with pytest.raises(ValueError, match="registered twice"):
            invariant("T-never-declined-paid", "again")(_check)
    finally:
        REGISTRY.pop("T-never-declined-paid")
        INVARIANTS.pop("T-never-declined-paid")


def test_expectations_in_the_matrix_words():
    reversed_sale = ([Payment("p", 119, "reversed")], [], [], [Sale("s", 119, status="failed")])
    assert reconcile(*reversed_sale, expect=parse("not charged, no sale receipt; one reversal, failed")).ok
    result = reconcile(*reversed_sale, expect=parse(["sale completes", "two receipts"]))
    assert [str(v) for v in result.violations] == [
        "expect (what the test expects): expected sale completes, but the acquirer holds 0 payment(s) (ledger: "
        "p=reversed); 0 sale receipt(s) came out (printed: nothing); the till says s failed",
        "expect (what the test expects): expected two receipts, but 0 receipt(s) came out (printed: nothing)"]
    unknown = reconcile(*reversed_sale, expect=parse("no receipt"), unavailable={"receipts": "no printer used"})
    assert [v.message for v in unknown.violations] == ["cannot check 'no receipt': no printer used"]
    with pytest.raises(ExpectationError, match="cannot read expectation 'charged thrice'; say one of: not charged"):
        parse("charged once, charged thrice")


def test_till_saying_failed_while_the_acquirer_holds_the_money_is_I7():
    """The cashier reads "failed" and takes the money again: the till's word is judged, not only the paper."""
    v = reconcile([Payment("p", 1190, "approved")], [], [_receipt()], [Sale("s", 1190, status="failed")])
    assert [x.invariant for x in v.violations] == ["I7"] and "take the money twice" in str(v)


def test_till_saying_paid_while_nothing_is_held_is_I7():
    v = reconcile([Payment("p", 1190, "reversed")], [], [], [Sale("s", 1190, status="paid", receipt="none")])
    assert [x.invariant for x in v.violations] == ["I7"] and "went for free" in str(v)


def test_till_claiming_a_receipt_or_offline_it_did_not_have_is_I7():
    claimed = reconcile([Payment("p", 1190, "approved")], [], [_receipt(kind="declined")],
                        [Sale("s", 1190, status="paid", receipt="printed")])
    assert "I7" in [x.invariant for x in claimed.violations] and "no such receipt" in str(claimed)
    offline = reconcile([Payment("p", 1190, "approved")], [], [_receipt()],
                        [Sale("s", 1190, status="paid", receipt="printed", offline=True)])
    assert [x.invariant for x in offline.violations] == ["I7"] and "offline" in str(offline)


def test_a_truthful_till_passes_I7():
    assert reconcile([Payment("p", 1190, "approved")], [], [_receipt()],
                     [Sale("s", 1190, status="paid", receipt="printed", offline=False)]).ok
    assert reconcile([Payment("p", 1190, "reversed")], [], [],
                     [Sale("s", 1190, status="failed", receipt="none"), Sale("t", 1190, status="unknown")]).ok

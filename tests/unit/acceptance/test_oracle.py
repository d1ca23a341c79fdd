"""The oracle catches each invariant's violation, and passes consistent records."""

from harness.acceptance.oracle import JournalEntry, Payment, PrintedReceipt, Sale, reconcile


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

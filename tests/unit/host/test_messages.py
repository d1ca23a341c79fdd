"""Every message type from an independent pyiso8583 client; reversals; repeats; settlement."""

from __future__ import annotations

from tests.support.iso_client import PAN, TERMINAL, reversal, sale


def test_echo_and_sign_on_are_answered(srv):
    c = srv.client()
    for code in ("001", "301"):
        answer = c.exchange({"t": "0800", "7": "1122030405", "11": "000001", "70": code})
        assert (answer["t"], answer["39"], answer["70"], answer["11"]) == ("0810", "00", code, "000001")


def test_financial_request_is_approved_and_booked(srv):
    answer = srv.client().exchange(sale(1, amount=1234))
    assert answer["t"] == "0210" and answer["39"] == "00"
    assert answer["4"] == "000000001234" and answer["11"] == "000001" and answer["41"] == TERMINAL
    assert len(answer["37"]) == 12 and len(answer["38"]) == 6
    p = srv.ledger.payment(stan="000001", terminal=TERMINAL)
    assert (p.state, p.amount, p.rrn, p.auth_code, p.kind) == (
        "approved",
        1234,
        answer["37"],
        answer["38"],
        "financial",
    )
    assert p.pan == "411111******1111"
    assert srv.ledger.payment(rrn=answer["37"]).id == p.id
    assert srv.ledger.holds_money(rrn=answer["37"])


def test_authorization_then_completion_advice_is_one_payment(srv):
    c = srv.client()
    auth = c.exchange(sale(1, amount=5000, mti="0100"))
    assert (auth["t"], auth["39"]) == ("0110", "00")
    done = c.exchange(sale(2, amount=4200, mti="0220", **{"90": "0100000001".ljust(42, "0")}))
    assert (done["t"], done["39"], done["37"]) == ("0230", "00", auth["37"])
    [p] = srv.ledger.payments()
    assert (p.kind, p.amount, p.state) == ("authorization", 4200, "approved")


def test_offline_advice_books_a_payment(srv):
    answer = srv.client().exchange(sale(7, amount=300, mti="0220"))
    assert (answer["t"], answer["39"]) == ("0230", "00")
    assert srv.ledger.payment(stan="000007").kind == "advice"


def test_reversal_finds_its_original_by_field_90_and_terminal(srv):
    c = srv.client()
    c.exchange(sale(1, amount=1000))
    c.exchange(sale(1, amount=1000, terminal="TERM0002"))  # same STAN, other terminal: untouched
    answer = c.exchange(reversal(2, original_stan=1))
    assert (answer["t"], answer["39"]) == ("0410", "00")
    assert srv.ledger.payment(stan="000001", terminal=TERMINAL).state == "reversed"
    assert srv.ledger.payment(stan="000001", terminal="TERM0002").state == "approved"
    assert not srv.ledger.holds_money(stan="000001", terminal=TERMINAL)


def test_reversal_without_field_90_uses_the_stan(srv):
    c = srv.client()
    c.exchange(sale(5))
    answer = c.exchange(reversal(5, original_stan=5, with_90=False))
    assert answer["39"] == "00"
    assert srv.ledger.payment(stan="000005").state == "reversed"


def test_reversal_advice_and_its_repeats_are_acknowledged_once(srv):
    c = srv.client()
    c.exchange(sale(1))
    first = c.exchange(reversal(2, original_stan=1, mti="0420"))
    again = c.exchange(reversal(2, original_stan=1, mti="0421"))
    assert (first["t"], first["39"]) == ("0430", "00")
    assert (again["t"], again["39"]) == ("0430", "00")
    p = srv.ledger.payment(stan="000001")
    assert p.state == "reversed"
    assert [e["to_state"] for e in srv.ledger.history(p.id)] == ["approved", "reversed"]


def test_reversal_of_a_declined_payment_moves_no_money(srv):
    c = srv.client()
    assert c.exchange(sale(1, amount=905))["39"] == "05"
    assert c.exchange(reversal(2, original_stan=1, amount=905))["39"] == "00"
    assert srv.ledger.payment(stan="000001").state == "declined"


def test_reversal_before_its_original_is_remembered(srv):
    c = srv.client()
    assert c.exchange(reversal(2, original_stan=1, mti="0420"))["39"] == "25"
    late = c.exchange(sale(1))  # the original arrives late (delayed on the link)
    assert late["t"] == "0210"
    assert srv.ledger.payment(stan="000001").state == "reversed"


def test_repeated_request_gets_the_same_answer_and_no_second_charge(srv):
    c = srv.client()
    first = c.exchange(sale(1, amount=700))
    again = c.exchange(sale(1, amount=700))
    repeat = c.exchange(sale(1, amount=700, mti="0201"))
    assert first == again and repeat["37"] == first["37"] and repeat["38"] == first["38"]
    assert len(srv.ledger.payments()) == 1
    assert srv.ledger.totals()["held"] == {"count": 1, "amount": 700}
    rx = srv.ledger.messages(direction="rx", stan="000001")
    assert [m["delivery"] for m in rx] == [None, "duplicate", "duplicate"]


def test_repeat_from_another_connection_is_recognised(srv):
    first = srv.client().exchange(sale(9))
    second = srv.client().exchange(sale(9))
    assert first["37"] == second["37"] and len(srv.ledger.payments()) == 1


def test_reused_stan_with_different_content_is_refused(srv):
    c = srv.client()
    c.exchange(sale(1, amount=700))
    answer = c.exchange(sale(1, amount=800))
    assert answer["39"] == "94"
    assert [p.amount for p in srv.ledger.payments()] == [700]


def test_reconciliation_reports_totals_and_settles(srv):
    c = srv.client()
    c.exchange(sale(1, amount=1000))
    c.exchange(sale(2, amount=2500))
    c.exchange(sale(3, amount=905))  # declined
    c.exchange(reversal(4, original_stan=2, amount=2500))
    answer = c.exchange(
        {
            "t": "0500",
            "7": "1122030405",
            "11": "000005",
            "41": TERMINAL,
            "76": "0000000001",
            "88": "0000000000001000",
        }
    )
    assert (answer["t"], answer["39"]) == ("0510", "00")
    assert (answer["76"], answer["88"]) == ("0000000001", "0000000000001000")
    assert (answer["77"], answer["89"]) == ("0000000001", "0000000000002500")
    assert answer["97"] == "D0000000000001000"
    states = {p.stan: p.state for p in srv.ledger.payments()}
    assert states == {"000001": "settled", "000002": "reversed", "000003": "declined"}
    assert [p.stan for p in srv.ledger.settled_payments(pending=False)] == ["000001"]
    # a settled payment can no longer be reversed
    assert c.exchange(reversal(6, original_stan=1))["39"] == "12"
    assert srv.ledger.payment(stan="000001").state == "settled"
    [batch] = srv.ledger.batches()
    assert batch["code"] == "00" and batch["terminal_totals"] == {"76": 1, "88": 1000}


def test_reconciliation_mismatch_is_reported_but_host_books_rule(srv):
    c = srv.client()
    c.exchange(sale(1, amount=1000))
    answer = c.exchange(
        {"t": "0500", "11": "000002", "41": TERMINAL, "76": "0000000002", "88": "0000000000002000"}
    )
    assert answer["39"] == "95" and answer["76"] == "0000000001"
    assert srv.ledger.payment(stan="000001").state == "settled"


def test_settled_payments_by_default_include_approved_pending_cut_over(srv):
    c = srv.client()
    c.exchange(sale(1))
    c.exchange(sale(2, amount=905))
    assert [p.stan for p in srv.ledger.settled_payments()] == ["000001"]
    assert srv.ledger.settled_payments(pending=False) == []


def test_missing_mandatory_field_gets_format_error(srv):
    fields = sale(1)
    del fields["4"]
    answer = srv.client().exchange(fields)
    assert (answer["t"], answer["39"]) == ("0210", "30")
    assert srv.ledger.payments() == []


def test_unsupported_request_type_gets_an_error_answer(srv):
    answer = srv.client().exchange({"t": "0600", "11": "000001", "41": TERMINAL})
    assert (answer["t"], answer["39"]) == ("0610", "40")


def test_every_message_is_in_the_ledger_and_transcript_with_pan_masked(srv):
    from harness.core.masking import find_unmasked_pans

    c = srv.client()
    c.exchange(sale(1))
    c.exchange(reversal(2, original_stan=1))
    msgs = srv.ledger.messages()
    assert [(m["direction"], m["mti"]) for m in msgs] == [
        ("rx", "0200"),
        ("tx", "0210"),
        ("rx", "0400"),
        ("tx", "0410"),
    ]
    assert all(m["at"] > 0 for m in msgs)
    text = srv.transcript_path.read_text()
    assert PAN not in text and find_unmasked_pans(text) == []
    assert '"event": "rx"' in text and '"event": "tx"' in text and "411111******1111" in text
    assert PAN not in srv.ledger_path.read_bytes().decode("latin-1")

"""Behaviours: magic amounts, test cards, rules set at run time and from a rules file."""

from __future__ import annotations

import json

import pytest

from harness.host.behaviour import Behaviour, Match, Rule, RuleError, load_rules
from tests.support.iso_client import TERMINAL, reversal, sale


@pytest.mark.parametrize("amount, code", [(905, "05"), (951, "51"), (991, "91")])
def test_magic_amounts_decline(srv, amount, code):
    answer = srv.client().exchange(sale(1, amount=amount))
    assert answer["39"] == code and "38" not in answer
    p = srv.ledger.payment(stan="000001")
    assert p.state == "declined" and not p.holds_money and "magic amount" in p.reason


@pytest.mark.parametrize(
    "pan, code", [("4000000000000002", "05"), ("4000000000009995", "51"), ("4000000000000119", "91")]
)
def test_test_cards_decline(srv, pan, code):
    assert srv.client().exchange(sale(1, pan=pan))["39"] == code


def test_never_answer_still_books_the_approval(srv):
    c = srv.client()
    c.send(sale(1, amount=999))
    assert c.recv(timeout=0.3) is None
    assert srv.ledger.payment(stan="000001").state == "approved"  # lost 0210: terminal must reverse
    assert c.exchange(reversal(2, original_stan=1, amount=999, mti="0420"))["39"] == "00"
    assert srv.ledger.payment(stan="000001").state == "reversed"
    assert srv.ledger.messages(direction="tx", mti="0210")[0]["delivery"] == "silent"


def test_answer_twice_charges_once(srv):
    c = srv.client()
    c.send(sale(1, amount=997))
    first, second = c.recv(), c.recv()
    assert first == second and first["39"] == "00"
    assert len(srv.ledger.payments()) == 1


def test_close_after_request(srv):
    c = srv.client()
    c.send(sale(1, amount=996))
    assert c.closed_by_peer()
    assert srv.ledger.payment(stan="000001").state == "approved"
    assert srv.client().exchange(sale(2))["39"] == "00"  # the host keeps serving


def test_slow_answer_is_scaled_by_timing_and_connection_keeps_reading(srv):
    c = srv.client()
    c.send(sale(1, amount=998))  # 15 s nominal x 0.01 = 0.15 s
    assert c.recv(timeout=0.02) is None
    echo = c.exchange({"t": "0800", "11": "000002", "70": "301"})  # answered while the 0210 is held back
    assert echo["t"] == "0810"
    late = c.recv(timeout=5)
    assert late["t"] == "0210" and late["11"] == "000001"


def test_rule_set_at_run_time_wins_and_expires(srv):
    srv.ledger.add_rule(Rule(Match(amount=1234), Behaviour.decline("51"), times=1))
    c = srv.client()
    assert c.exchange(sale(1, amount=1234))["39"] == "51"
    assert c.exchange(sale(2, amount=1234))["39"] == "00"
    [rule] = srv.ledger.rules()
    assert rule["remaining"] == 0 and rule["used"] == 1


def test_newest_rule_first_and_clear(srv):
    srv.ledger.add_rule(Rule(Match(), Behaviour.decline("05")))
    srv.ledger.add_rule(Rule(Match(terminal=TERMINAL), Behaviour.decline("61")))
    c = srv.client()
    assert c.exchange(sale(1))["39"] == "61"
    assert c.exchange(sale(2, terminal="TERM0009"))["39"] == "05"
    srv.ledger.clear_rules()
    assert c.exchange(sale(3))["39"] == "00"


def test_rule_on_reversal_advice_makes_the_terminal_repeat(srv):
    srv.ledger.add_rule(Rule(Match(mti="0420"), Behaviour.silent(), times=1))
    c = srv.client()
    c.exchange(sale(1))
    c.send(reversal(2, original_stan=1, mti="0420"))
    assert c.recv(timeout=0.3) is None
    assert c.exchange(reversal(2, original_stan=1, mti="0421"))["39"] == "00"
    assert srv.ledger.payment(stan="000001").state == "reversed"


def test_repeat_of_a_silent_request_is_answered_once_the_rule_expired(srv):
    srv.ledger.add_rule(Rule(Match(stan="000001"), Behaviour.silent(), times=1))
    c = srv.client()
    c.send(sale(1))
    assert c.recv(timeout=0.3) is None
    again = c.exchange(sale(1, mti="0201"))
    assert again["39"] == "00" and len(srv.ledger.payments()) == 1


def test_rules_file_yaml_and_json(tmp_path, make_host):
    yml = tmp_path / "rules.yaml"
    yml.write_text(
        "- match: {amount: '12.34'}\n  behaviour: {code: '05'}\n"
        "- match: {pan_prefix: '5'}\n  behaviour: decline\n"
    )
    jsn = tmp_path / "rules.json"
    rule = {"match": {"amount": 777}, "behaviour": {"name": "decline", "code": 54}}
    jsn.write_text(json.dumps({"rules": [rule]}))
    srv = make_host(rules=load_rules(yml) + load_rules(jsn))
    c = srv.client()
    assert c.exchange(sale(1, amount=1234))["39"] == "05"
    assert c.exchange(sale(2, pan="5555555555554444"))["39"] == "05"
    assert c.exchange(sale(3, amount=777))["39"] == "54"
    assert c.exchange(sale(4, amount=100))["39"] == "00"


@pytest.mark.parametrize(
    "text, words",
    [
        ("- match: {amount: 1}\n  behaviour: {code: 5555}\n", "code"),
        ("- match: {colour: red}\n  behaviour: approve\n", "colour"),
        ("- behaviour: {delivery: sometimes}\n", "delivery"),
        ("- behaviour: maybe\n", "maybe"),
        ("match: [\n", "YAML"),
    ],
)
def test_bad_rules_file_names_the_problem(tmp_path, text, words):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(RuleError, match=words):
        load_rules(path)


def test_refused_reversal_is_processed_when_repeated(srv):
    srv.ledger.add_rule(Rule(Match(mti="0420"), Behaviour.decline("96"), times=1))
    c = srv.client()
    c.exchange(sale(1))
    assert c.exchange(reversal(2, original_stan=1, mti="0420"))["39"] == "96"
    assert srv.ledger.payment(stan="000001").state == "approved"
    assert c.exchange(reversal(2, original_stan=1, mti="0421"))["39"] == "00"
    assert srv.ledger.payment(stan="000001").state == "reversed"


def test_reversal_repeated_after_its_late_original_is_acknowledged(srv):
    c = srv.client()
    assert c.exchange(reversal(2, original_stan=1, mti="0420"))["39"] == "25"
    assert c.exchange(reversal(2, original_stan=1, mti="0421"))["39"] == "25"
    c.exchange(sale(1))
    assert c.exchange(reversal(2, original_stan=1, mti="0421"))["39"] == "00"
    assert srv.ledger.payment(stan="000001").state == "reversed"
    assert len(srv.ledger.payments()) == 1


def test_reversal_with_another_amount_reverses_in_full_and_says_so(srv):
    c = srv.client()
    c.exchange(sale(1, amount=1000))
    assert c.exchange(reversal(2, original_stan=1, amount=400))["39"] == "00"
    assert srv.ledger.payment(stan="000001").state == "reversed"
    note = srv.ledger.messages(direction="rx", mti="0400")[0]["note"]
    assert "partial reversals are not emulated" in note

"""The oracle at the end of a user's own test: a test repository of its own (pytester, in a subprocess, with the
installed plugin) whose tests sell through the fixtures and assert nothing themselves.

Against a seeded-bug till the assertion-less test fails, naming the invariant and its evidence folder; against
the correct till it passes. The opt-out marker, the invariant selection, `bench.reconcile()` and expectations
work as the README says, and the reports carry each test as a scenario.
"""

import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.acceptance, pytest.mark.needs_netns]

USER_TESTS = '''
import pytest

from harness.acceptance.oracle import Violation

MILK = [{"sku": "milk", "name": "Milk 1l", "price": "1.19"}]


def lose_the_approval(link):
    link["terminal-host"].inject("drop", stage="0210", direction="host->terminal")


def test_sells_through_a_lost_approval(till, link):
    lose_the_approval(link)
    till.sell(MILK)


@pytest.mark.no_oracle("a deliberately broken world")
def test_opted_out(till, link):
    lose_the_approval(link)
    till.sell(MILK)


@pytest.mark.oracle("I2", "I3")
def test_only_some_invariants(till, link):
    lose_the_approval(link)
    till.sell(MILK)


@pytest.mark.no_oracle("asserts on the verdict itself")
def test_asserts_on_the_verdict(bench, till, link):
    lose_the_approval(link)
    till.sell(MILK)
    result = bench.reconcile()
    assert result.broken[0] == "I1" and set(result.broken) <= {"I1", "I7"}, result     # I7 if it said "paid"
    [violation] = result.of("I1")
    assert isinstance(violation, Violation) and violation.receipt == 0 and violation.payment
    assert bench.reconcile("I2").ok


@pytest.mark.expect("charged once, one sale receipt")
def test_expects_the_wrong_thing(till, link):
    lose_the_approval(link)
    till.sell(MILK)


@pytest.mark.expect("charged thrice")
def test_expects_in_unknown_words(till):
    pass
'''


def _run(pytester: pytest.Pytester, profile: str, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_user=USER_TESTS)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "--till-profile", profile, *args, timeout=300)


def _evidence(pytester: pytest.Pytester, test: str) -> Path:
    [folder] = (pytester.path / "evidence").glob(f"test_user.py_{test}")
    return folder


def test_seeded_bug_fails_a_test_without_assertions_and_the_reports_carry_it(pytester):
    report = pytester.path / "report"
    result = _run(pytester, "print-on-timeout", "-k", "not wrong_thing", "--acceptance-json",
                  str(report / "acceptance.json"), "--html", str(report / "report.html"))
    out = result.stdout.str()
    result.assert_outcomes(passed=3, failed=1, errors=1)
    assert "FAILED test_user.py::test_sells_through_a_lost_approval" in out, out[-3000:]

    folder = _evidence(pytester, "test_sells_through_a_lost_approval")
    result.stdout.fnmatch_lines([
        "posrig oracle: FAIL: I1 (no sale receipt without a settled payment of that amount): sale receipt for 1.19 "
        "but the acquirer holds no such payment (*=reversed)*",
        f"evidence: {folder}",
    ])
    assert "cannot read expectation 'charged thrice'; say one of:" in out        # misspelt: fails at setup

    doc = json.loads((report / "acceptance.json").read_text())
    records = {s["id"]: s for s in doc["scenarios"]}
    assert set(records) == {f"test_user.py::{name}" for name in (                # every selected test has a row
        "test_sells_through_a_lost_approval", "test_only_some_invariants", "test_opted_out",
        "test_asserts_on_the_verdict", "test_expects_in_unknown_words")}
    assert not records["test_user.py::test_opted_out"]["timeline"]              # opted out: the oracle kept nothing
    assert records["test_user.py::test_expects_in_unknown_words"]["status"] == "setup error"
    failed = records["test_user.py::test_sells_through_a_lost_approval"]
    assert failed["verdict"] == "FAIL" and failed["violations"][0].startswith("I1 (")
    assert failed["link"] == "terminal-host" and failed["stage"] == "0210" and failed["fault"] == "drop"
    events = [e["event"] for e in failed["timeline"]]
    assert any(e.startswith("FIRED drop 0210 host->terminal") for e in events), events
    assert any("reversed" in e for e in events) and any(e.startswith("T1-") for e in events), events
    assert [row["state"] for row in failed["ledger"]] == ["reversed"]
    [receipt] = failed["receipts"]
    assert "1.19" in receipt["text"] and Path(receipt["png"]).is_file()
    names = {e["name"] for e in failed["evidence"]}
    assert {"link-terminal-host.pcapng", "link-terminal-host-faults.json", "verdict.json"} <= names, names
    assert all(Path(e["path"]).is_file() for e in failed["evidence"])          # written by the time the run ends
    only = records["test_user.py::test_only_some_invariants"]
    assert only["verdict"] == "OK" and "invariants I2, I3" in only["expected"]

    page = (report / "report.html").read_text()
    assert "test_user.py::test_sells_through_a_lost_approval" in page and "posrig-receipt" in page


def test_the_same_tests_pass_against_the_correct_till(pytester):
    result = _run(pytester, "correct", "-k", "lost_approval or wrong_thing")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "posrig oracle: FAIL: expect (what the test expects): expected charged once, but the acquirer holds 0 "
        "payment(s) (ledger: *=reversed)",
        "expect (what the test expects): expected one sale receipt, but 0 sale receipt(s) came out (printed: "
        "nothing)",
        f"evidence: {_evidence(pytester, 'test_expects_the_wrong_thing')}",
    ])
    assert "FAILED test_user.py::test_expects_the_wrong_thing" in result.stdout.str()

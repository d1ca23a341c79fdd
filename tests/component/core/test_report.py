"""Scenario records travel from xdist workers to acceptance.json, pytest-html extras and the summary grid."""

import json

import pytest

from tests.support import IN_PROCESS, ROOT

RIG = ROOT / "rigs" / "emulated.yaml"

SCENARIOS = """
import pytest
from fixtures.report import SCENARIO_KEY
from harness.acceptance.report.record import ScenarioRecord

@pytest.mark.parametrize("stage,fault,verdict", [("0210", "drop", "OK"), ("0200", "rst", "FAIL"),
                                                 ("0210", "rst", "OK")])
def test_scenario(request, stage, fault, verdict):
    rec = ScenarioRecord(id=f"terminal-host/{stage}-{fault}/approve", link="terminal-host", stage=stage,
                         fault=fault, outcome="approve", verdict=verdict, expected="no receipt",
                         observed="card 4111111111111111", receipts=[{"index": 0, "kind": "sale", "text": "TOTAL"}])
    request.node.stash[SCENARIO_KEY] = rec
    assert verdict == "OK", "I1 violated"

def test_crashes(request):
    request.node.stash[SCENARIO_KEY] = ScenarioRecord(id="till-terminal/0601-drop/approve", verdict="OK")
    raise RuntimeError("device exploded")
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_records_reach_acceptance_json_and_html(pytester: pytest.Pytester, workers):
    pytester.makepyfile(SCENARIOS)
    out = pytester.path / "report"
    run = pytester.runpytest_subprocess if workers else pytester.runpytest_inprocess     # xdist: workers are processes
    result = run(*([] if workers else IN_PROCESS), f"--rig={RIG}", f"--acceptance-json={out / 'acceptance.json'}",
                 f"--html={out / 'report.html'}", "--self-contained-html", *workers)
    result.assert_outcomes(passed=2, failed=2)
    doc = json.loads((out / "acceptance.json").read_text())
    verdicts = {s["id"]: s["verdict"] for s in doc["scenarios"]}
    assert verdicts == {"terminal-host/0210-drop/approve": "OK", "terminal-host/0200-rst/approve": "FAIL",
                        "terminal-host/0210-rst/approve": "OK", "till-terminal/0601-drop/approve": "ERROR"}
    assert {k: doc["summary"][k] for k in ("selected", "ran", "scenarios", "OK", "FAIL", "ERROR", "passed")} == \
        {"selected": 4, "ran": 4, "scenarios": 4, "OK": 2, "FAIL": 1, "ERROR": 1, "passed": False}
    assert doc["rig"]["name"] == "emulated" and doc["versions"]["posrig"]
    crashed = next(s for s in doc["scenarios"] if s["verdict"] == "ERROR")
    assert "device exploded" in crashed["observed"]
    assert "4111111111111111" not in (out / "acceptance.json").read_text()
    page = (out / "report.html").read_text()
    assert "Stage x fault" in page and "terminal-host/0210" in page and "FAIL:1" in page
    assert "posrig-scenario" in page
    result.stdout.fnmatch_lines(["*posrig acceptance: ERROR 1, FAIL 1, OK 2*"])


def _acceptance(pytester: pytest.Pytester, source: str, *args: str) -> tuple[pytest.RunResult, dict]:
    pytester.makepyfile(source)
    out = pytester.path / "report"
    xdist = "-n" in args                                # its workers (and a crash of one) need real processes
    run = pytester.runpytest_subprocess if xdist else pytester.runpytest_inprocess
    result = run(*([] if xdist else IN_PROCESS), f"--rig={RIG}", f"--acceptance-json={out / 'acceptance.json'}",
                 f"--evidence-dir={out / 'evidence'}", *args)
    return result, json.loads((out / "acceptance.json").read_text())


def test_a_run_where_everything_was_skipped_is_written_and_not_passed(pytester: pytest.Pytester):
    result, doc = _acceptance(pytester, """
import pytest

@pytest.mark.parametrize("n", range(3))
def test_scenario(n):
    pytest.skip("needs network namespaces: missing CAP_NET_ADMIN")
""")
    result.assert_outcomes(skipped=3)
    summary = doc["summary"]
    assert (summary["selected"], summary["ran"], summary["passed"]) == (3, 0, False)
    assert summary["not_run"] == {"skipped": 3} and summary["ERROR"] == 3
    assert {s["status"] for s in doc["scenarios"]} == {"skipped"}
    assert all("missing CAP_NET_ADMIN" in s["reason"] for s in doc["scenarios"])


def test_a_crashed_worker_leaves_a_row_saying_so(pytester: pytest.Pytester):
    result, doc = _acceptance(pytester, """
import os, signal
import pytest

@pytest.mark.parametrize("n", range(6))
def test_scenario(n):
    if n == 3:
        os.kill(os.getpid(), signal.SIGKILL)         # the worker dies in the middle of this scenario
""", "-n", "2")
    result.assert_outcomes(passed=5, failed=1)
    summary = doc["summary"]
    assert (summary["selected"], summary["ran"], summary["scenarios"], summary["passed"]) == (6, 5, 6, False)
    crashed = [s for s in doc["scenarios"] if s["status"] == "crashed"]
    assert [s["nodeid"] for s in crashed] == ["test_a_crashed_worker_leaves_a_row_saying_so.py::test_scenario[3]"]
    assert "crashed while running" in crashed[0]["reason"] and crashed[0]["verdict"] == "ERROR"


def test_scenarios_that_never_started_and_setup_errors_are_rows(pytester: pytest.Pytester):
    result, doc = _acceptance(pytester, """
import pytest

@pytest.fixture
def bench():
    raise RuntimeError("printer did not start")

def test_a_setup_error(bench):
    pass

def test_b_fails():
    assert False, "I1 violated"

def test_c_never_started():
    pass
""", "--maxfail=2")
    rows = {s["id"].split("::")[-1]: s for s in doc["scenarios"]}
    assert rows["test_a_setup_error"]["status"] == "setup error"
    assert "printer did not start" in rows["test_a_setup_error"]["reason"]
    assert (rows["test_b_fails"]["status"], rows["test_b_fails"]["verdict"]) == ("ran", "FAIL")
    assert rows["test_c_never_started"]["status"] == "not started"
    assert doc["summary"]["selected"] == 3 and doc["summary"]["passed"] is False


def test_every_scenario_ran_and_ok_passes(pytester: pytest.Pytester):
    result, doc = _acceptance(pytester, """
def test_one(): pass
def test_two(): pass
""")
    assert doc["summary"]["passed"] is True and doc["summary"]["ran"] == doc["summary"]["selected"] == 2


def test_a_record_finished_at_teardown_reaches_acceptance_json(pytester: pytest.Pytester):
    """An ordinary test whose record is completed in a fixture's teardown (the oracle at teardown)."""
    result, doc = _acceptance(pytester, """
import pytest
from fixtures.report import SCENARIO_KEY
from harness.acceptance.report.record import ScenarioRecord

@pytest.fixture
def oracle(request):
    yield
    request.node.stash[SCENARIO_KEY] = ScenarioRecord(id="mine/lost-0210", verdict="FAIL", violations=["I1"])

def test_sale(oracle):
    pass
""", "-n", "2")
    [row] = doc["scenarios"]
    assert (row["id"], row["verdict"], row["status"], row["reason"]) == ("mine/lost-0210", "FAIL", "ran", "I1")

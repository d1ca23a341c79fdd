"""Scenario records travel from xdist workers to acceptance.json, pytest-html extras and the summary grid."""

import json

import pytest

from tests.support import ROOT

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
    result = pytester.runpytest_subprocess(f"--rig={RIG}", f"--acceptance-json={out / 'acceptance.json'}",
                                           f"--html={out / 'report.html'}", "--self-contained-html", *workers)
    result.assert_outcomes(passed=2, failed=2)
    doc = json.loads((out / "acceptance.json").read_text())
    verdicts = {s["id"]: s["verdict"] for s in doc["scenarios"]}
    assert verdicts == {"terminal-host/0210-drop/approve": "OK", "terminal-host/0200-rst/approve": "FAIL",
                        "terminal-host/0210-rst/approve": "OK", "till-terminal/0601-drop/approve": "ERROR"}
    assert doc["summary"] == {"scenarios": 4, "OK": 2, "FAIL": 1, "ERROR": 1, "INCONCLUSIVE": 0, "NOT_APPLICABLE": 0,
                              "passed": False}
    assert doc["rig"]["name"] == "emulated" and doc["versions"]["posrig"]
    crashed = next(s for s in doc["scenarios"] if s["verdict"] == "ERROR")
    assert "device exploded" in crashed["observed"]
    assert "4111111111111111" not in (out / "acceptance.json").read_text()
    page = (out / "report.html").read_text()
    assert "Stage x fault" in page and "terminal-host/0210" in page and "FAIL:1" in page
    assert "posrig-scenario" in page
    result.stdout.fnmatch_lines(["*posrig acceptance: ERROR 1, FAIL 1, OK 2*"])

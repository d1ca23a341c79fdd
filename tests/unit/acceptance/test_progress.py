"""What `posrig run` shows a person: the progress line's figures (rate, ETA, failures so far), the scenario
names, and the HTML report's title."""

import pytest

from fixtures.progress import scenario_name
from harness.acceptance.report.html import report_title
from harness.acceptance.report.progress import Progress, clock
from harness.acceptance.report.record import ScenarioRecord
from harness.acceptance.report.signoff import RAN
from harness.acceptance.verdict import Verdict


def test_rate_and_eta_follow_the_scenarios_finished_so_far():
    p = Progress(total=168, started=100.0)
    assert p.rate(now=160.0) is None and p.eta(now=160.0) is None        # nothing finished: not known yet
    for _ in range(6):
        p.count("OK")
    assert p.rate(now=160.0) == pytest.approx(6.0)                        # 6 in one minute
    assert p.eta(now=160.0) == pytest.approx(162 / 6 * 60)                # 162 left at 6/min: 27 minutes
    assert p.figures(now=160.0) == "fail 0, 6.0/min, ETA 27:00"
    assert p.eta(now=220.0) == pytest.approx(162 / 3 * 60)                # slower since: the ETA grows


def test_failures_count_every_verdict_but_ok_and_skipped():
    p = Progress(total=5, started=0.0)
    for verdict in ("OK", "FAIL", "ERROR", "INCONCLUSIVE", "SKIP"):
        p.count(verdict)
    assert (p.done, p.failed, p.skipped) == (5, 3, 1)
    assert p.figures(now=120.0) == "fail 3, skipped 1, 2.5/min, ETA 0:00"


def test_the_log_line_pads_position_and_verdict_into_columns():
    p = Progress(total=168, started=0.0)
    p.count("FAIL")
    line = p.line("FAIL", "terminal-host/0210-lost/approve", 2.04, now=30.0)
    assert line == "[  1/168] FAIL  terminal-host/0210-lost/approve  2.0 s  (fail 1, 2.0/min, ETA 1:23:30)"
    p.count("OK")
    assert p.line("OK", "x", 0.5, now=30.0).startswith("[  2/168] OK    x  0.5 s")


def test_an_unknown_total_shows_a_question_mark_not_a_wrong_eta():
    p = Progress(total=None, started=0.0, done=2)
    assert p.position() == "[2/?]" and p.figures(now=60.0) == "fail 0, 2.0/min, ETA ?"


def test_clock_switches_to_hours_from_one_hour_on():
    assert [clock(s) for s in (0, 59.6, 61, 3599, 3600, 36000)] == ["0:00", "1:00", "1:01", "59:59", "1:00:00",
                                                                   "10:00:00"]


def test_the_live_line_never_wraps_the_terminal():
    p = Progress(total=3, started=0.0, done=1)
    line = p.live(now=10.0, last=("OK", "terminal-host/0210-lost/approve-with-a-very-long-name" * 3), width=60)
    assert len(line) == 59 and line.endswith("…") and line.startswith("posrig: 1/3 scenarios, fail 0")


def test_scenario_names_are_matrix_ids_or_test_names():
    assert scenario_name("s/test_matrix.py::test_scenario[printer/paper-out/approve]") == "printer/paper-out/approve"
    assert scenario_name("tests/test_a.py::TestX::test_b[1]") == "test_b[1]"


def test_the_report_title_names_the_rig_and_the_verdict():
    ok = ScenarioRecord(id="a", verdict=Verdict.OK, status=RAN)
    failed = ScenarioRecord(id="b", verdict=Verdict.FAIL, status=RAN)
    never = ScenarioRecord(id="c", verdict=Verdict.ERROR, status="not started")
    assert report_title([ok] * 168, 168, "emulated") == "posrig acceptance: emulated rig: PASSED 168/168"
    assert report_title([ok, failed, never], 3, "bench-7") == "posrig acceptance: bench-7 rig: FAILED: 2 of 3 not OK"
    assert report_title([ok, ok], 3, "emulated") == "posrig acceptance: emulated rig: FAILED: 1 of 3 not OK"
    assert report_title([], 0, "emulated") == "posrig acceptance: emulated rig: NOT PASSED: no scenario selected"
    assert report_title([ok], 1, None) == "posrig acceptance: rig not loaded: PASSED 1/1"

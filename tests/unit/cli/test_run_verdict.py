"""`posrig run` exits 0 only when acceptance.json says passed; otherwise one line says why."""

import json

from harness.cli.run import verdict


def _report(tmp_path, rows, selected=None):
    from harness.acceptance.report.signoff import summary

    (tmp_path / "acceptance.json").write_text(json.dumps({"summary": summary(rows, selected), "scenarios": rows}))
    return tmp_path


def test_all_skipped_is_not_a_pass_even_when_pytest_says_0(tmp_path):
    rows = [{"verdict": "ERROR", "status": "skipped", "reason": "needs network namespaces: missing CAP_NET_ADMIN"}]
    code, why = verdict(_report(tmp_path, rows * 178), 0)
    assert code == 1
    assert why == "nothing ran: 178 scenario(s) selected, none ran (skipped 178); needs network namespaces: " \
                  "missing CAP_NET_ADMIN"


def test_a_crashed_scenario_keeps_the_run_red(tmp_path):
    rows = [{"verdict": "OK", "status": "ran"}] * 39 + [{"verdict": "ERROR", "status": "crashed", "reason": "x"}]
    assert verdict(_report(tmp_path, rows), 1) == (1, "not signed off: 1 of 40 did not run, 1 ERROR")


def test_passed_and_missing_reports(tmp_path):
    assert verdict(_report(tmp_path, [{"verdict": "OK", "status": "ran"}] * 2), 0) == (0, "")
    code, why = verdict(tmp_path / "absent", 2)
    assert code == 2 and why.startswith("no acceptance report at")
    assert verdict(_report(tmp_path, [], selected=0), 5) == (1, "no scenario was selected; nothing was tested")


def test_a_suite_that_cannot_be_collected(tmp_path):
    (tmp_path / "acceptance.json").write_text(json.dumps({"summary": {"selected": 1, "ran": 0, "passed": False},
                                                          "scenarios": [], "collection_errors": ["test_matrix.py"]}))
    assert verdict(tmp_path, 2) == (2, "the suite could not be collected (test_matrix.py); nothing ran; the pytest "
                                       "output above says why")


def test_maxfail_passes_through_to_pytest():
    import argparse

    from harness.cli import run

    parser = argparse.ArgumentParser()
    run.register(parser.add_subparsers())
    args = parser.parse_args(["run", "--maxfail", "1"])
    assert "--maxfail=1" in run.pytest_args(args)
    assert not any(a.startswith("--maxfail") for a in run.pytest_args(parser.parse_args(["run"])))

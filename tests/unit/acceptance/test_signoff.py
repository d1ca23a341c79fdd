"""A signed-off report cannot be edited unnoticed: the summary is recounted from the rows, and the digest holds
the sha256 of every evidence file, of the rig and of acceptance.json itself."""

import json
import time

import pytest

from harness.acceptance.report.record import ScenarioRecord, write_acceptance_json
from harness.acceptance.report.signoff import summary, verify, why_not_passed
from harness.core.rig import load_rig
from tests.support import RIGS


@pytest.fixture
def report(tmp_path):
    """A sealed report folder: two scenarios with evidence, the rig beside it."""
    rig_file = tmp_path / "rig.src.yaml"
    rig_file.write_text((RIGS / "emulated.yaml").read_text())
    out = tmp_path / "report"
    rows = []
    for n, verdict in enumerate(["OK", "OK"]):
        folder = out / "evidence" / f"test_{n}"
        folder.mkdir(parents=True)
        (folder / "host.jsonl").write_text(f'{{"mti": "0200", "n": {n}}}\n')
        rows.append(ScenarioRecord(id=f"terminal-host/0210-lost/{n}", verdict=verdict, nodeid=f"t.py::test_{n}",
                                   evidence=[{"name": "host", "path": str(folder / "host.jsonl"), "mime": ""}]))
    write_acceptance_json(out / "acceptance.json", rows, load_rig(rig_file), time.time(),
                          evidence_dirs=[out / "evidence" / "test_0", out / "evidence" / "test_1"])
    return out, rig_file


def test_an_untouched_report_verifies(report):
    out, _ = report
    problems, checked = verify(out)
    assert problems == []
    assert checked == {"scenarios": 2, "evidence": 2, "rig": True, "passed": True}
    digest = json.loads((out / "acceptance.json").read_text())["digest"]
    assert set(digest["evidence"]) == {"evidence/test_0/host.jsonl", "evidence/test_1/host.jsonl"}
    assert digest["rig"]["copy"] == "rig.yaml"
    assert (out / "rig.yaml").read_text() == (RIGS / "emulated.yaml").read_text()


def test_a_verdict_turned_ok_by_hand_is_caught(report):
    out, _ = report
    doc = json.loads((out / "acceptance.json").read_text())
    doc["scenarios"][0]["verdict"] = "FAIL"             # the rows say FAIL, the summary still says passed
    (out / "acceptance.json").write_text(json.dumps(doc, indent=2))
    problems, _ = verify(out)
    assert any("content changed after sign-off" in p for p in problems)
    assert any("summary.passed: says True, the scenarios give False" in p for p in problems)
    assert any("summary.OK: says 2, the scenarios give 1" in p for p in problems)


def test_an_edited_summary_evidence_or_rig_is_caught_one_line_each(report):
    out, rig_file = report
    doc = json.loads((out / "acceptance.json").read_text())
    doc["summary"]["selected"] = 1
    (out / "acceptance.json").write_text(json.dumps(doc))
    (out / "evidence" / "test_1" / "host.jsonl").write_text('{"mti": "0210"}\n')
    (out / "evidence" / "test_0" / "note.txt").write_text("added later")
    (out / "rig.yaml").write_text((out / "rig.yaml").read_text().replace("scale: 0.05", "scale: 0.5"))
    rig_file.write_text(rig_file.read_text() + "# edited\n")
    problems, _ = verify(out)
    assert len(problems) == 7, problems
    expected = ["acceptance.json: content changed after sign-off",
                "summary.covers: says '2 of 2 scenarios', the scenarios give '2 of 1 scenarios'",
                "summary.passed: says True, the scenarios give False",
                "test_1/host.jsonl: evidence changed after sign-off", "test_0/note.txt: evidence added after sign-off",
                "rig.yaml: rig changed after sign-off", "rig.src.yaml: rig changed since the run"]
    for text, line in zip(expected, problems, strict=True):
        assert text in line, (text, line)


def test_missing_evidence_and_an_unsealed_report(report):
    out, _ = report
    (out / "evidence" / "test_0" / "host.jsonl").unlink()
    assert [p for p in verify(out)[0] if "evidence missing" in p]
    doc = json.loads((out / "acceptance.json").read_text())
    del doc["digest"]
    (out / "acceptance.json").write_text(json.dumps(doc))
    assert "digest: missing" in verify(out)[0][0]


def test_why_a_run_is_not_signed_off():
    skipped = [{"verdict": "ERROR", "status": "skipped", "reason": "needs network namespaces"}] * 3
    assert why_not_passed(summary(skipped), skipped) == \
        "nothing ran: 3 scenario(s) selected, none ran (skipped 3); needs network namespaces"
    mixed = [{"verdict": "OK", "status": "ran"}, {"verdict": "FAIL", "status": "ran"},
             {"verdict": "ERROR", "status": "crashed", "reason": "worker 'gw0' crashed"}]
    assert why_not_passed(summary(mixed), mixed) == "not signed off: 1 of 3 did not run, 1 FAIL, 1 ERROR"
    assert summary(mixed, selected=3)["not_run"] == {"crashed": 1}

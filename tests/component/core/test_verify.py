"""`posrig verify REPORT_DIR`: exit 0 and one line for an untouched report, one line per discrepancy and exit 1
for an edited one."""

import json
import subprocess
import sys
import time

from harness.acceptance.report.record import ScenarioRecord, write_acceptance_json
from harness.core.rig import load_rig
from tests.support import RIGS, ROOT


def _verify(*args):
    return subprocess.run([sys.executable, "-m", "harness.cli", "verify", *args], capture_output=True, text=True,
                          cwd=ROOT)


def test_verify_untouched_then_edited(tmp_path):
    out = tmp_path / "report"
    (out / "evidence" / "t").mkdir(parents=True)
    (out / "evidence" / "t" / "receipt.txt").write_text("TOTAL EUR 4.88\n")
    write_acceptance_json(out / "acceptance.json", [ScenarioRecord(id="s", verdict="FAIL", nodeid="t")],
                          load_rig(RIGS / "emulated.yaml"), time.time(), evidence_dirs=[out / "evidence" / "t"])
    p = _verify(str(out))
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count("\n") == 1 and "intact: 1 scenarios (NOT passed), 1 evidence files" in p.stdout

    doc = json.loads((out / "acceptance.json").read_text())
    doc["summary"]["passed"] = True
    (out / "acceptance.json").write_text(json.dumps(doc, indent=2))
    (out / "evidence" / "t" / "receipt.txt").write_text("TOTAL EUR 0.00\n")
    p = _verify(str(out))
    assert p.returncode == 1
    lines = p.stdout.splitlines()
    assert len(lines) == 3, lines
    assert "summary.passed: says True, the scenarios give False" in p.stdout
    assert "receipt.txt: evidence changed after sign-off" in p.stdout
    assert "3 discrepancies: this report is not the one that was signed off" in p.stderr


def test_verify_a_folder_without_a_report(tmp_path):
    p = _verify(str(tmp_path))
    assert p.returncode == 1 and "no acceptance.json" in p.stdout
    p = _verify(str(tmp_path / "absent"))
    assert p.returncode == 2 and p.stderr.count("\n") == 1

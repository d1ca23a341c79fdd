"""`posrig run` on a vendor's rig collects only what applies to any till: the bench network check and the fault
matrix, never posrig's own reference-till tests."""

from __future__ import annotations

import subprocess
import sys
from argparse import Namespace

from harness.acceptance.matrix import scenarios
from harness.cli.run import pytest_args
from tests.support import ROOT


def test_posrig_run_on_a_vendor_rig_collects_the_shipped_suite_only(tmp_path):
    rig = ROOT / "examples" / "vendor_till" / "rig-http.yaml"
    argv = pytest_args(Namespace(rig=str(rig), report=str(tmp_path / "r"), till_profile=None, keyword=None,
                                 workers=None))
    argv = [a for a in argv if a != "-q"]              # posrig run's own -q would make it -qq: files, not ids
    out = subprocess.run([sys.executable, "-m", "pytest", *argv, "--collect-only", "-q"], capture_output=True,
                         text=True, timeout=120, cwd=ROOT)
    items = [line for line in out.stdout.splitlines() if "::" in line]
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    files = {line.split("::")[0].rsplit("/", 1)[-1] for line in items}
    assert files == {"test_matrix.py", "test_bench_network.py"}, files
    assert sum("test_matrix.py" in line for line in items) == len(scenarios())

"""Bad input to `posrig run` and `posrig doctor` is one line naming what was wrong and what to do, never a
traceback or an INTERNALERROR; and nothing is written outside the places given."""

from __future__ import annotations

import subprocess

import pytest

from harness.core.process import posrig_command
from tests.support import ROOT

POSRIG = posrig_command()


def _posrig(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([*POSRIG, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


@pytest.mark.parametrize("command", ["run", "doctor"])
def test_a_rig_that_is_not_utf8_is_one_line(tmp_path, command):
    rig = tmp_path / "latin1.yaml"
    rig.write_bytes((ROOT / "rigs" / "emulated.yaml").read_bytes().replace(b"All devices", b"Caf\xe9 devices"))
    out = _posrig(command, "--rig", str(rig), cwd=tmp_path)
    assert out.returncode in (1, 2) and out.stderr.count("\n") == 1, out.stderr
    assert f"posrig {command}: bad rig: {rig}: line 5: found 'byte 0xe9" in out.stderr
    assert "save the rig as UTF-8" in out.stderr


def test_a_report_folder_that_cannot_be_made_is_one_line(tmp_path):
    out = _posrig("run", "--report", "/dev/null/x", cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "posrig run: cannot make the report folder /dev/null/x: Not a directory" in out.stderr


@pytest.mark.parametrize("command", ["run", "doctor"])
def test_a_printer_named_to_climb_out_of_the_evidence_is_refused_before_anything_runs(tmp_path, command):
    rig = tmp_path / "evil.yaml"
    rig.write_text((ROOT / "rigs" / "emulated.yaml").read_text().replace(
        "devices:\n  printer:", "devices:\n  '../../../../../tmp/trav/P':"))
    report = {"run": ["--report", str(tmp_path / "report")], "doctor": []}[command]
    out = _posrig(command, "--rig", str(rig), *report, cwd=tmp_path)
    assert out.returncode in (1, 2) and out.stderr.count("\n") == 1, out.stderr
    assert "devices: found '../../../../../tmp/trav/P'; expected a device name" in out.stderr
    assert not (tmp_path / "report").exists()

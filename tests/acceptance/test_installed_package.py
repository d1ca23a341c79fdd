"""The main job ships inside the package: `pip install .` (not editable) into a fresh venv, then `posrig run` in an
empty folder finds its suite, its rig and its plugin there, and writes the report."""

import json
import os
import subprocess
import sys
import tarfile

import pytest

from tests.support import ROOT

pytestmark = [pytest.mark.acceptance, pytest.mark.needs_netns]


def _export_tree(dest):
    """The tracked files of this checkout (as a clean clone has them), symlinks included."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    archive = dest.parent / "tree.tar"
    with tarfile.open(archive, "w") as tar:
        for name in filter(None, files.decode().split("\0")):
            if (ROOT / name).exists() or (ROOT / name).is_symlink():
                tar.add(ROOT / name, arcname=name, recursive=False)
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="tar")


def test_posrig_run_from_an_installed_package_in_an_empty_folder(tmp_path):
    tree, venv, empty = tmp_path / "posrig", tmp_path / "venv", tmp_path / "empty"
    _export_tree(tree)
    empty.mkdir()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(tree)], capture_output=True, text=True,
                         timeout=900)
    assert pip.returncode == 0, pip.stdout[-2000:] + pip.stderr[-3000:]
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}   # a PYTHONPATH to this checkout would win
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import harness; print(harness.__file__)"],
                           cwd=empty, capture_output=True, text=True, check=True, env=clean).stdout
    assert str(venv) in where and str(ROOT) not in where       # the installed copy, not this checkout

    run = subprocess.run([str(venv / "bin" / "posrig"), "run", "-k", "0210-lost"], cwd=empty,
                         capture_output=True, text=True, timeout=600, env=clean)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    doc = json.loads((empty / "report" / "acceptance.json").read_text())
    assert doc["summary"]["scenarios"] == 2 and doc["summary"]["passed"] is True
    assert {s["id"] for s in doc["scenarios"]} == {"terminal-host/0210-lost/approve",
                                                    "terminal-host/0210-lost/decline"}
    assert doc["rig"]["name"] == "emulated" and "site-packages" in doc["rig"]["file"]
    assert (empty / "report" / "report.html").is_file() and (empty / "report" / "junit.xml").is_file()
    assert list((empty / "report" / "evidence").iterdir())

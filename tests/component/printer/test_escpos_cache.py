"""python-escpos leaves no temporary folder behind in the processes posrig spawns (one leaked per scenario before:
its capabilities pickle went to a new mkdtemp() at every import)."""

from __future__ import annotations

import os
import sys

from harness.core.process import spawn


def test_a_spawned_child_importing_escpos_leaves_no_temporary_folder(tmp_path, monkeypatch):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))                        # the child's mkdtemp() would land here
    code = ("import sys, harness.reference_till.receipt, escpos.capabilities as c, os; "
            "print(os.environ['ESCPOS_CAPABILITIES_PICKLE_DIR']); print(c.pickle_path)")
    child = spawn([sys.executable, "-c", code], stdout=-1, stderr=-1, text=True)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    folder, pickle_path = out.split()
    assert folder == os.environ["ESCPOS_CAPABILITIES_PICKLE_DIR"]  # inherited from this posrig process
    assert os.path.dirname(pickle_path) == folder and os.path.exists(pickle_path)
    assert list(tmp.iterdir()) == []

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


def test_a_tills_private_folder_holds_the_finished_pickle_and_the_child_reads_it_without_parsing(tmp_path):
    """Each launched till gets a folder of its own with a copy of the shared pickle: it loads in ms instead of
    parsing the capabilities YAML (about a second of CPU per till start), and nobody else writes to it."""
    import shutil

    from harness.core.escpos_cache import private_folder

    folder = private_folder(str(tmp_path / "till-"))
    try:
        [name] = os.listdir(folder)
        assert name.endswith(".capabilities.pickle")
        code = ("import sys, yaml; calls = []; real = yaml.safe_load; "
                "yaml.safe_load = lambda *a, **k: calls.append(1) or real(*a, **k); "
                "import escpos.capabilities as c; print(c.pickle_path, len(calls), len(c.CAPABILITIES['profiles']))")
        child = spawn([sys.executable, "-c", code], stdout=-1, stderr=-1, text=True,
                      env={**os.environ, "ESCPOS_CAPABILITIES_PICKLE_DIR": folder})
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        path, parsed, profiles = out.split()
        assert os.path.dirname(path) == folder and parsed == "0" and int(profiles) > 10
    finally:
        shutil.rmtree(folder)

"""What a SIGKILLed run leaves (named namespaces whose holder died with it) is reaped when the next command that
builds namespaces starts (`posrig run`) and by `posrig doctor --clean`, whoever owned it."""

import os
import re
import subprocess
import sys

import pytest

from harness import topology as netns
from harness.topology.reaper import leftovers
from tests.support import ROOT

pytestmark = pytest.mark.needs_netns

DEAD = 99999999                       # above any pid_max: a run that is certainly gone


@pytest.fixture
def named():
    """Make named, empty namespaces as a killed run leaves them; remove what a test did not."""
    if not (os.geteuid() == 0 and netns.in_initial_user_ns()):
        pytest.skip("named namespaces need root outside a user namespace")
    made = []

    def make(label: str) -> str:
        subprocess.run(["ip", "netns", "add", label], check=True)
        made.append(label)
        return label

    yield make
    for label in made:
        subprocess.run(["ip", "netns", "del", label], capture_output=True)


def _names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _posrig(*args, cwd):
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)


def test_doctor_clean_reaps_a_killed_runs_namespaces(named, tmp_path):
    labels = [named(f"posrig-{DEAD}-0-{node}") for node in ("link", "till", "terminal", "host")]
    assert {f"netns {label}" for label in labels} <= set(leftovers())
    p = _posrig("doctor", "--clean", cwd=tmp_path)
    removed = re.search(r"cleaned: removed (\d+) leftover\(s\) of killed runs", p.stdout)
    assert removed, p.stdout + p.stderr
    # Another xdist worker's posrig run or topology reaps at its start too, so some may have gone before doctor
    # looked; what doctor did not find, somebody else removed. None may be left, and no warning about them.
    assert not set(labels) & _names()
    assert "could not reap" not in p.stderr, p.stderr


def test_an_inert_namespace_of_a_live_looking_owner_is_reaped(named):
    """The owner's pid lives (reused, or this very process) but nothing lives in the namespace: a live topology
    always has its holder inside, so this one was left by a run that died."""
    label = named(f"posrig-{os.getpid()}-reaper-test-till")
    assert f"netns {label}" in netns.reap_leftovers()
    assert label not in _names()


def test_posrig_run_reaps_before_anything_else(named, tmp_path):
    # Another xdist worker's topology or posrig run reaps at its start too and may take the leftover first; then
    # nothing shows that this run reaped it, so it is tried again with a fresh leftover (at most 3 times).
    for attempt in range(1, 4):
        label = named(f"posrig-{DEAD}-{attempt}-till")
        p = _posrig("run", "-k", "no-such-scenario", "--report", str(tmp_path / f"report-{attempt}"), cwd=tmp_path)
        assert label not in _names()
        assert p.returncode == 1 and "no scenario was selected; nothing was tested" in p.stderr
        if re.search(r"posrig run: removed \d+ leftover\(s\) of killed runs", p.stderr):
            return
    pytest.fail(f"posrig run never said it removed a killed run's leftovers: {p.stderr}")


def test_a_killed_runs_warm_engine_log_is_reaped(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = tmp_path / f"posrig-{DEAD}-warm-terminal-host-abc.log"
    mine = tmp_path / f"posrig-{os.getpid()}-warm-terminal-host-def.log"       # a live run's: kept
    dead.write_text("engine log")
    mine.write_text("engine log")
    assert f"file {dead}" in leftovers() and f"file {mine}" not in leftovers()
    assert f"file {dead}" in netns.reap_leftovers()
    assert not dead.exists() and mine.exists()

"""`posrig run` end to end: a worker SIGKILLed in the middle of a scenario leaves a row saying so, the job stays
red, the signed report verifies, and the next command leaves nothing of the killed worker behind."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.topology.reaper import leftovers
from tests.support import ROOT

pytestmark = [pytest.mark.acceptance, pytest.mark.needs_netns]


def _children(pid: int) -> list[int]:
    """The children of `pid`; none once it has exited (a worker can end while the run is looked at)."""
    out = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return []
    for task in tasks:
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _busy_worker(run_pid: int) -> int | None:
    """An xdist worker of the run that is inside a scenario (its link engine or till is running)."""
    for worker in _children(run_pid):
        if any("harness.link.engine" in _cmdline(c) or "reference_till" in _cmdline(c) or
               any("harness.link.engine" in _cmdline(g) for g in _children(c)) for c in _children(worker)):
            return worker
    return None


def test_a_worker_killed_mid_scenario_is_a_crashed_row_and_the_run_is_red(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", "-n", "2", "-k", "0210-lost",
                            "--report", str(tmp_path / "report")], cwd=tmp_path, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        victim, deadline = None, time.monotonic() + 60
        while victim is None and time.monotonic() < deadline and run.poll() is None:
            victim = _busy_worker(run.pid)
            time.sleep(0.05)
        assert victim is not None, "no worker ever ran a scenario"
        os.kill(victim, signal.SIGKILL)
        out, _ = run.communicate(timeout=180)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode != 0, out[-3000:]
    doc = json.loads((tmp_path / "report" / "acceptance.json").read_text())
    summary = doc["summary"]
    assert (summary["selected"], summary["scenarios"], summary["passed"]) == (2, 2, False), out[-3000:]
    [crashed] = [s for s in doc["scenarios"] if s["status"] == "crashed"]
    assert crashed["id"].startswith("terminal-host/0210-lost/") and crashed["stage"] == "0210"
    assert "crashed while running" in crashed["reason"] and crashed["verdict"] == "ERROR"
    assert "posrig run: not signed off: 1 of 2 did not run" in out

    verify = subprocess.run([sys.executable, "-m", "harness.cli", "verify", str(tmp_path / "report")], env=env,
                            capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "intact: 2 scenarios (NOT passed)" in verify.stdout

    clean = subprocess.run([sys.executable, "-m", "harness.cli", "doctor", "--clean", "--json"], env=env,
                           capture_output=True, text=True, cwd=tmp_path)
    assert json.loads(clean.stdout)["ready"] is True
    assert leftovers() == []

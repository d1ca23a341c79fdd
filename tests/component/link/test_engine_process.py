"""The engine as a process of its own, supervised with `harness.core.process.Child` (no namespace, no rules):
it says ready or failed in the one dialect, obeys its control channel and stops cleanly."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from harness.core.process import Child, ChildFailed
from harness.link.faults import FaultArmed, FaultCleared, FaultFired, FaultSpec, fault_event
from harness.link.netfilter import queue_range


def engine(tmp_path, **config) -> Child:
    path = tmp_path / "engine.json"
    path.write_text(json.dumps({"link": "terminal-host", "ends": ["terminal", "host"], "ports": {"iso8583": 5000},
                                "bridged": True, "realtime": False, **config}))
    return Child("link engine", [sys.executable, "-m", "harness.link.engine", str(path)],
                 log=tmp_path / "engine.log", stdin=True)


def test_engine_that_cannot_start_says_why(tmp_path):
    child = engine(tmp_path, pcap=str(tmp_path / "no-such-folder" / "link.pcapng"))
    with pytest.raises(ChildFailed, match="engine cannot start: .*No such file or directory"):
        child.start(timeout=15)
    assert not child.alive


def test_engine_usage(tmp_path):
    child = Child("link engine", [sys.executable, "-m", "harness.link.engine"], log=tmp_path / "engine.log")
    with pytest.raises(ChildFailed, match="usage: python -m harness.link.engine CONFIG.json"):
        child.start(timeout=15)
    assert child.stop() == 2


@pytest.mark.skipif(os.geteuid() != 0, reason="binding an NFQUEUE needs CAP_NET_ADMIN")
def test_engine_control_channel(tmp_path):
    """Bound to a queue no rule feeds (this machine's own namespace, a per-process queue range)."""
    child = engine(tmp_path, pcap=str(tmp_path / "link.pcapng"), queue=list(queue_range(in_root_namespace=True)))
    ready = child.start(timeout=15)
    try:
        assert ready["event"] == "ready" and ready["pid"] == child.pid and ready["queue"] >= 1024
        child.send({"op": "arm", "fault": 1, "spec": FaultSpec.parse("blackhole ms=10").to_json()})
        child.send({"op": "arm", "fault": 2, "spec": {"action": "drop"}})               # no stage: refused
        child.send({"op": "status"})
        child.send({"op": "clear", "fault": 1})
        child.send({"op": "stop"})
        lines = list(child.lines())
    finally:
        code = child.stop(timeout=5)
    kinds = [line["event"] for line in lines]
    assert kinds[:3] == ["armed", "fired", "error"] and "stopped" == kinds[-1], kinds
    assert {"status", "cleared"} <= set(kinds)
    armed, fired = fault_event(lines[0]), fault_event(lines[1])
    assert isinstance(armed, FaultArmed) and armed.spec == FaultSpec.parse("blackhole ms=10")
    assert isinstance(fired, FaultFired) and fired.packet is None and fired.detail["outages"]
    assert "needs a stage" in lines[2]["message"]
    assert isinstance(fault_event(next(x for x in lines if x["event"] == "cleared")), FaultCleared)
    assert lines[-1]["stats"]["packets"] == 0 and code == 0
    assert (tmp_path / "link.pcapng").stat().st_size > 0                      # the capture was closed properly


def _can_be_realtime() -> bool:
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except (OSError, AttributeError):
        return False
    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    return True


@pytest.fixture
def hogged_cpu0():
    """CPU 0 held by a busy loop at the engines' own FIFO priority (as busy engines of other benches would):
    normal tasks pinned there get only what the kernel's real-time throttling leaves them (about 5%)."""
    if os.geteuid() != 0 or not _can_be_realtime() or not shutil.which("taskset"):
        pytest.skip("needs root, SCHED_FIFO and taskset")
    hog = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c",
                            "import os; os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))\n"
                            "while True: pass"])
    try:
        yield hog
    finally:
        hog.kill()
        hog.wait()


def _pinned_engine(tmp_path, realtime: bool) -> Child:
    path = tmp_path / "engine.json"
    path.write_text(json.dumps({"link": "terminal-host", "ends": ["terminal", "host"], "ports": {"iso8583": 5000},
                                "bridged": True, "realtime": realtime, "pcap": str(tmp_path / "link.pcapng"),
                                "queue": list(queue_range(in_root_namespace=True))}))
    return Child("link engine", ["taskset", "-c", "0", sys.executable, "-m", "harness.link.engine", str(path)],
                 log=tmp_path / "engine.log", stdin=True)


def test_a_starved_engine_that_never_starts_says_it_was_starved(tmp_path, hogged_cpu0):
    child = _pinned_engine(tmp_path, realtime=False)
    with pytest.raises(ChildFailed, match=r"did not report ready within 0.5s .*s of them waiting for a CPU\); "
                                          r"load average"):
        child.start(timeout=0.5, max_wait=1.0)


def test_a_starved_engine_is_given_its_own_time_to_start_and_goes_real_time_only_once_ready(tmp_path, hogged_cpu0):
    """Under load an engine can take longer than its start timeout only because it gets no CPU: the wait
    counts the engine's own time, not its time in the run queue (here 2 s of its own, in up to 60 s).
    Imports and binding at normal priority (a SCHED_FIFO engine would never get past the hog); SCHED_FIFO from
    the ready line on. (One starved start for both: it takes seconds of wall time.)"""
    child = _pinned_engine(tmp_path, realtime=True)
    try:
        began = time.monotonic()
        assert child.start(timeout=2, max_wait=60)["event"] == "ready"
        assert time.monotonic() - began > 2                     # it did need more than 2 s of wall time
        hogged_cpu0.kill()
        child.send({"op": "status"})
        assert child.readline(5)["event"] == "status"
        assert os.sched_getscheduler(child.pid) == os.SCHED_FIFO
        assert "engine timing: timerslack=1ns, SCHED_FIFO 10" in (tmp_path / "engine.log").read_text()
    finally:
        hogged_cpu0.kill()
        assert child.stop(timeout=5) == 0

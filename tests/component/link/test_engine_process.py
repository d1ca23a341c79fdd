"""The engine as a process of its own, supervised with `harness.core.process.Child` (no namespace, no rules):
it says ready or failed in the one dialect, obeys its control channel and stops cleanly."""

from __future__ import annotations

import json
import os
import sys

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

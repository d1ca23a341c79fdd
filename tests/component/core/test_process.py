"""The one supervisor: a child says it is ready in one JSON line, or why not; it stops, or is killed, in time."""

import sys
import time

import pytest

from harness.core.process import Child, ChildFailed

PY = sys.executable


def child(code: str, **kw) -> Child:
    return Child("probe", [PY, "-c", "from harness.core.process import *\n" + code], **kw)


def test_ready_line_then_more_lines_then_stop():
    c = child("import time\nannounce_ready(listen='127.0.0.1:1')\nannounce('tick', n=1)\ntime.sleep(60)")
    ready = c.start(timeout=10)
    assert ready["event"] == "ready" and ready["listen"] == "127.0.0.1:1" and ready["pid"] == c.pid
    assert c.readline(5) == {"event": "tick", "n": 1}
    assert c.alive
    assert c.stop(timeout=3) == -15 and not c.alive


def test_a_child_that_fails_says_why(tmp_path):
    log = tmp_path / "probe.log"
    c = child("import sys\nsys.stderr.write('bind: address in use\\n')\nannounce_failed('port 5000 busy')\n"
              "raise SystemExit(2)", log=log)
    with pytest.raises(ChildFailed, match=r"(?s)probe could not start: port 5000 busy.*address in use"):
        c.start(timeout=10)
    assert c.proc.returncode == 2                      # its own exit code, not our SIGTERM


def test_a_child_that_dies_early_is_reported_with_its_exit_code():
    with pytest.raises(ChildFailed, match=r"probe exited \(3\) before it was ready"):
        child("raise SystemExit(3)").start(timeout=10)


def test_a_silent_child_times_out_and_is_stopped():
    c = child("import time\ntime.sleep(60)")
    t0 = time.monotonic()
    with pytest.raises(ChildFailed, match="did not report ready within 0.5s"):
        c.start(timeout=0.5)
    assert time.monotonic() - t0 < 10 and not c.alive


def test_json_lines_both_ways_and_kill():
    c = child("import json, sys\nannounce_ready()\nfor line in sys.stdin:\n"
              "    announce('echo', got=json.loads(line))", stdin=True)
    c.start(timeout=10)
    c.send({"op": "status"})
    assert c.readline(5) == {"event": "echo", "got": {"op": "status"}}
    c.kill()
    assert not c.alive and c.proc.returncode == -9
    with pytest.raises(OSError):
        c.send({"op": "after death"})


def test_a_served_child_stops_on_sigterm_and_on_ctrl_c():
    for sig in (15, 2):
        c = child("import sys\nstop = StopRequest()\nannounce_ready()\nsys.exit(100 + stop.wait())")
        c.start(timeout=10)
        assert c.stop(timeout=5, sig=sig) == 100 + sig

"""Events on one clock, and waiting for a condition."""

import threading

from harness.acceptance.verdict import Verdict
from harness.core.events import Event, timeline, wait_until


def test_timeline_sorts_by_time_relative_to_the_start():
    rows = timeline([Event(12.5, "host", "0200 booked"), Event(11.25, "link terminal-host", "FIRED drop 0210")],
                    t0=10.0)
    assert rows == [{"t": 1.25, "source": "link terminal-host", "event": "FIRED drop 0210"},
                    {"t": 2.5, "source": "host", "event": "0200 booked"}]


def test_wait_until_returns_as_soon_as_true_and_false_on_timeout():
    flag = threading.Event()
    threading.Timer(0.05, flag.set).start()
    assert wait_until(flag.is_set, timeout=5)
    assert not wait_until(lambda: False, timeout=0.05)


def test_verdicts_order_worst_first():
    assert Verdict.worst(["OK", "INCONCLUSIVE", "ERROR"]) is Verdict.ERROR
    assert Verdict.worst([]) is Verdict.OK and Verdict("OK").passed and not Verdict.FAIL.passed

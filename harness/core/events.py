"""Events and time: one model for "what happened, when, where", shared by devices, link faults and reports.

Every timestamp posrig records is `t`: wall-clock seconds since the epoch (`time.time()`), so events from the
link engine, the emulators, the till and the ledger sort onto one timeline. Durations use `time.monotonic()`.

>>> e = Event(t=1796164663.95, source="link terminal-host", what="FIRED drop 0210 host->terminal first")
>>> timeline([e], t0=1796164663.0)[0]["t"]
0.95
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any


def now() -> float:
    """The timestamp of an event happening now: wall-clock seconds since the epoch."""
    return time.time()


@dataclass(frozen=True)
class Event:
    """Something one part of the bench did or saw at time `t` (epoch seconds)."""

    t: float
    source: str                  # "till", "host", "terminal", "printer", "link terminal-host", ...
    what: str                    # one line a person reads
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def timeline(events: Iterable[Event], t0: float) -> list[dict[str, Any]]:
    """Events sorted by time, as report rows with `t` relative to `t0` (seconds, 4 decimals)."""
    return [{"t": round(e.t - t0, 4), "source": e.source, "event": e.what}
            for e in sorted(events, key=lambda e: e.t)]


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.02) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds passed; returns whether it became true."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(interval, left))

"""Progress a person can read while `posrig run` runs: scenarios done of selected, failures so far, the rate in
scenarios per minute and the time left at that rate.

One line per scenario when the output is a log (a pipe, a CI job), one line rewritten in place on a terminal:

>>> p = Progress(total=168, started=0.0)
>>> for _ in range(11):
...     p.count("OK")
>>> p.count("OK")
>>> p.line("OK", "terminal-host/0210-lost/approve", 1.84, now=175.6)
'[ 12/168] OK    terminal-host/0210-lost/approve  1.8 s  (fail 0, 4.1/min, ETA 38:03)'
>>> p.live(now=175.6, last=("OK", "terminal-host/0210-lost/approve"))
'posrig: 12/168 scenarios, fail 0, 4.1/min, ETA 38:03 | last: OK terminal-host/0210-lost/approve'
"""

from __future__ import annotations

from dataclasses import dataclass

OK = "OK"
SKIPPED = "SKIP"
LABEL = 5                        # width of the verdict column ("ERROR"); a longer one is written whole


def clock(seconds: float) -> str:
    """Seconds as m:ss, or h:mm:ss from an hour on.

    >>> clock(151), clock(3725.4), clock(0)
    ('2:31', '1:02:05', '0:00')
    """
    s = max(0, round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


@dataclass
class Progress:
    """Counts of one run; `total` is None until the selection is known. Times are time.monotonic() seconds."""

    total: int | None
    started: float
    done: int = 0
    failed: int = 0              # finished, not OK and not skipped (FAIL, ERROR, INCONCLUSIVE, crashed)
    skipped: int = 0

    def count(self, verdict: str) -> None:
        """One more scenario finished with `verdict`."""
        self.done += 1
        if verdict == SKIPPED:
            self.skipped += 1
        elif verdict != OK:
            self.failed += 1

    def rate(self, now: float) -> float | None:
        """Scenarios finished per minute since the start (None before the first one, or with no time gone).

        >>> Progress(10, started=0.0, done=3).rate(now=90.0)
        2.0
        """
        minutes = (now - self.started) / 60
        return self.done / minutes if self.done and minutes > 0 else None

    def eta(self, now: float) -> float | None:
        """Seconds until the last selected scenario finishes at the rate so far (None: not known yet).

        >>> Progress(10, started=0.0, done=3).eta(now=90.0)
        210.0
        >>> Progress(None, started=0.0, done=3).eta(now=90.0) is None
        True
        """
        rate = self.rate(now)
        if self.total is None or rate is None:
            return None
        return max(0, self.total - self.done) / rate * 60

    def figures(self, now: float) -> str:
        """'fail 0, 4.1/min, ETA 2:31' (skips named only when there are some; '?' for what is not known yet).

        >>> Progress(10, started=0.0).figures(now=5.0)
        'fail 0, ?/min, ETA ?'
        >>> Progress(4, started=0.0, done=4, failed=1, skipped=1).figures(now=60.0)
        'fail 1, skipped 1, 4.0/min, ETA 0:00'
        """
        rate, eta = self.rate(now), self.eta(now)
        parts = [f"fail {self.failed}"] + ([f"skipped {self.skipped}"] if self.skipped else [])
        parts += [f"{rate:.1f}/min" if rate is not None else "?/min", f"ETA {clock(eta)}" if eta is not None
                  else "ETA ?"]
        return ", ".join(parts)

    def position(self) -> str:
        """'[ 12/168]': done, padded to the width of the total."""
        total = "?" if self.total is None else str(self.total)
        return f"[{self.done:>{len(total)}}/{total}]"

    def line(self, verdict: str, name: str, seconds: float, now: float) -> str:
        """The log line of a scenario that just finished (after `count`)."""
        return f"{self.position()} {verdict:<{LABEL}} {name}  {seconds:.1f} s  ({self.figures(now)})"

    def live(self, now: float, last: tuple[str, str] | None = None, width: int | None = None) -> str:
        """The line a terminal shows, rewritten in place; cut to `width` columns so it never wraps.

        >>> Progress(168, started=0.0).live(now=1.0)
        'posrig: 0/168 scenarios, fail 0, ?/min, ETA ?'
        >>> len(Progress(168, started=0.0).live(now=1.0, last=("OK", "x" * 200), width=80))
        79
        """
        total = "?" if self.total is None else str(self.total)
        text = f"posrig: {self.done}/{total} scenarios, {self.figures(now)}"
        if last is not None:
            text += f" | last: {last[0]} {last[1]}"
        if width is not None and len(text) > width - 1:
            text = text[:max(0, width - 2)] + "…"
        return text

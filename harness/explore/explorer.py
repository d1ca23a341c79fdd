"""The exploration loop: draw schedules, keep the pool's bench slots busy with them until the budget is spent,
and turn every broken invariant into a shrunk, confirmed finding with its scenario file.

A run that ends FAIL is a candidate. So is an INCONCLUSIVE run whose oracle still found a violation: one of its
faults never fired (so the verdict cannot be FAIL), but removing that fault is the shrinker's first step, and a
finding is kept only when its minimal schedule ends FAIL, `confirm` times out of `confirm`. Candidates already
explained by a finding (they contain its minimal schedule) are not shrunk again.
"""

from __future__ import annotations

import itertools
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.acceptance.report.record import ScenarioRecord
from harness.acceptance.verdict import Verdict
from harness.explore.schedule import Schedule, dump, invariants_of
from harness.explore.shrink import Result, shrink
from harness.explore.strategies import Limits, draw


@dataclass
class Options:
    budget: float                    # seconds of exploration (shrinking a finding may run past it)
    seed: int = 0
    scale: float = 0.05
    limits: Limits = field(default_factory=Limits)
    shrink_runs: int = 60            # candidates run at most while shrinking one finding
    confirm: int = 2                 # the minimal schedule must fail this many times out of as many
    meta: dict[str, Any] = field(default_factory=dict)      # written into every scenario file (profile, rig)
    every_finding: bool = False      # also shrink candidates breaking the same invariants as an earlier finding


@dataclass
class Finding:
    file: str
    invariants: list[str]
    violations: list[str]
    schedule: Schedule
    original: Schedule
    index: int                       # the schedule's number in the exploration (1-based)
    found_after: float               # seconds from the start until its first failing run ended
    shrink_steps: int
    shrink_runs: int
    shrink_seconds: float
    history: list[str]
    reproduced: str                  # "2/2"

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "invariants": self.invariants, "violations": self.violations,
                "faults": [f.spec.describe() for f in self.schedule.faults], "schedule": self.schedule.describe(),
                "original": self.original.describe(), "original_faults": len(self.original.faults),
                "index": self.index, "found_after_s": round(self.found_after, 1), "shrink_steps": self.shrink_steps,
                "shrink_runs": self.shrink_runs, "shrink_s": round(self.shrink_seconds, 1),
                "shrink_history": self.history, "reproduced": self.reproduced}


@dataclass
class Exploration:
    options: Options
    started: float = field(default_factory=time.time)
    elapsed: float = 0.0
    explored: int = 0                               # schedules drawn and run (not counting shrink/confirm runs)
    verdicts: dict[str, int] = field(default_factory=dict)
    candidates: int = 0
    unconfirmed: list[dict[str, Any]] = field(default_factory=list)   # candidates that did not shrink/reproduce
    findings: list[Finding] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)          # one row per explored schedule
    extra_runs: int = 0                                               # shrink and confirm runs
    interrupted: bool = False         # stopped by Ctrl-C before the budget was spent
    similar: int = 0                  # failing runs explained by a finding already made (not shrunk again)

    shrinking: float = 0.0            # seconds spent shrinking and confirming (exploring paused)

    @property
    def rate(self) -> float:
        """Explored schedules per minute, over the whole run (shrinking included)."""
        return 60.0 * self.explored / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def exploring_rate(self) -> float:
        """Explored schedules per minute of exploring (shrinking left out)."""
        spent = self.elapsed - self.shrinking
        return 60.0 * self.explored / spent if spent > 0 else 0.0


Submit = Callable[[Schedule, str], Future]          # (schedule, run tag) -> future of its ScenarioRecord


def stream(seed: int, scale: float, limits: Limits, block: int = 100) -> Iterator[Schedule]:
    """Distinct schedules drawn from hypothesis, block after block, the same sequence for the same seed."""
    seen: set[str] = set()
    for k in itertools.count():
        for s in draw(seed * 100_003 + k, block, scale, limits):
            if s.key not in seen:
                seen.add(s.key)
                yield s


def result_of(record: ScenarioRecord) -> Result:
    return Result(str(record.verdict.value if isinstance(record.verdict, Verdict) else record.verdict),
                  invariants_of(record.violations))


def explained(schedule: Schedule, findings: Sequence[Finding], invariants: Sequence[str] = (),
              every_finding: bool = True) -> bool:
    """The schedule contains a finding's minimal schedule (same answer, its faults among these), or (unless
    `every_finding`) breaks the same invariants as a finding: most likely the same bug reached another way."""
    mine = {(f.link, f.spec.describe()) for f in schedule.faults}
    for found in findings:
        if not every_finding and invariants and set(invariants) == set(found.invariants):
            return True
        m = found.schedule
        if m.outcome == schedule.outcome and {(f.link, f.spec.describe()) for f in m.faults} <= mine and \
                (not m.printer_fault or m.printer_fault == schedule.printer_fault) and \
                (not m.cashier_abort or schedule.cashier_abort):
            return True
    return False


class Explorer:
    """Runs schedules through `submit` (a pool) and keeps the books."""

    def __init__(self, submit: Submit, options: Options, folder: Path, width: int,
                 progress: Callable[[Exploration, str], None] | None = None,
                 discard: Callable[[ScenarioRecord], None] | None = None):
        self.submit = submit
        self.options = options
        self.folder = folder
        self.width = max(1, width)
        self.progress = progress or (lambda e, line: None)
        self.discard = discard or (lambda record: None)
        self.book = Exploration(options)
        self._runs = itertools.count(1)
        self._t0 = time.monotonic()

    def _run_batch(self, schedules: Sequence[Schedule]) -> list[Result]:
        futures = [self.submit(s, f"s{next(self._runs)}") for s in schedules]
        records = [f.result() for f in futures]
        self.book.extra_runs += len(records)
        for r in records:
            self.discard(r)
        return [result_of(r) for r in records]

    def run(self) -> Exploration:
        book, opts = self.book, self.options
        deadline = self._t0 + opts.budget
        source = stream(opts.seed, opts.scale, opts.limits)
        inflight: dict[Future, tuple[int, Schedule]] = {}
        candidates: list[tuple[int, Schedule, ScenarioRecord, float]] = []
        index = 0
        try:
            self._loop(deadline, source, inflight, candidates, index)
        except KeyboardInterrupt:                    # Ctrl-C: stop, report what was run
            book.interrupted = True
        book.elapsed = time.monotonic() - self._t0
        return book

    def _loop(self, deadline: float, source: Iterator[Schedule], inflight: dict[Future, tuple[int, Schedule]],
              candidates: list[tuple[int, Schedule, ScenarioRecord, float]], index: int) -> None:
        book, opts = self.book, self.options
        while True:
            now = time.monotonic()
            while now < deadline and len(inflight) < 2 * self.width and not candidates:
                index += 1
                schedule = next(source)
                inflight[self.submit(schedule, f"x{index}")] = (index, schedule)
            if not inflight and (candidates or now >= deadline):
                if not candidates:
                    break
                t0 = time.monotonic()
                self._shrink(*candidates.pop(0))
                book.shrinking += time.monotonic() - t0
                continue
            if not inflight:
                break
            done, _ = wait(list(inflight), timeout=5.0, return_when=FIRST_COMPLETED)
            for future in done:
                i, schedule = inflight.pop(future)
                record = future.result()
                book.explored += 1
                book.elapsed = time.monotonic() - self._t0
                verdict = result_of(record)
                book.verdicts[verdict.verdict] = book.verdicts.get(verdict.verdict, 0) + 1
                book.runs.append({"index": i, "schedule": schedule.describe(), "verdict": verdict.verdict,
                                  "invariants": verdict.invariants, "elapsed": record.elapsed,
                                  "observed": record.observed[:300]})
                line = f"{verdict.verdict:<12} #{i} {schedule.describe()[:110]}"
                suspicious = verdict.invariants and verdict.verdict in ("FAIL", "INCONCLUSIVE")
                known = explained(schedule, book.findings, verdict.invariants, opts.every_finding)
                if suspicious and known:
                    book.similar += 1
                if suspicious and not known:
                    book.candidates += 1
                    candidates.append((i, schedule, record, book.elapsed))
                    line += f"  -> candidate ({', '.join(verdict.invariants)}): shrinking once the bench is free"
                else:
                    self.discard(record)
                self.progress(book, line)

    def _shrink(self, index: int, original: Schedule, record: ScenarioRecord, found_after: float) -> None:
        book, opts = self.book, self.options
        target = set(invariants_of(record.violations))
        if explained(original, book.findings, sorted(target), opts.every_finding):
            book.similar += 1
            return
        t0 = time.monotonic()
        self.progress(book, f"shrinking #{index} ({len(original.faults)} faults, breaks {', '.join(sorted(target))})")
        shrunk = shrink(original, target, self._run_batch, max_runs=opts.shrink_runs)
        confirm = [self.submit(shrunk.schedule, f"c{next(self._runs)}") for _ in range(opts.confirm)]
        records = [f.result() for f in confirm]
        book.extra_runs += len(records)
        hits = [r for r in records if result_of(r).breaks(target)]
        seconds = time.monotonic() - t0
        if len(hits) < opts.confirm:
            book.unconfirmed.append({"index": index, "schedule": original.describe(),
                                     "minimal": shrunk.schedule.describe(),
                                     "reproduced": f"{len(hits)}/{opts.confirm}",
                                     "invariants": sorted(target)})
            self.progress(book, f"#{index} did not reproduce ({len(hits)}/{opts.confirm}): not a finding")
            for r in records:
                self.discard(r)
            return
        invariants = sorted({i for r in hits for i in invariants_of(r.violations)} & target)
        violations = [v for v in hits[0].violations if invariants_of([v])]
        name = f"finding-{len(book.findings) + 1}-{shrunk.schedule.key}.yaml"
        meta = {"id": f"explore/{shrunk.schedule.key}", **opts.meta, "seed": opts.seed, "schedule_index": index,
                "timing_scale": opts.scale, "invariants": invariants, "violations": violations[:5],
                "found": {"after_s": round(found_after, 1), "schedules_run": index,
                          "original_faults": [f.text() for f in original.faults],
                          "shrink_steps": shrunk.steps, "shrink_runs": shrunk.runs,
                          "reproduced": f"{len(hits)}/{opts.confirm}"}}
        path = self.folder / name
        path.write_text(dump(shrunk.schedule, meta))
        book.findings.append(Finding(str(path), invariants, violations, shrunk.schedule, original, index,
                                     found_after, shrunk.steps, shrunk.runs, seconds, shrunk.history,
                                     f"{len(hits)}/{opts.confirm}"))
        self.progress(book, f"FINDING {name}: {shrunk.schedule.describe()} breaks {', '.join(invariants)} "
                            f"({shrunk.steps} shrink steps, {shrunk.runs} runs, {seconds:.0f} s)")


def evidence_cleaner(keep: Callable[[ScenarioRecord], bool]) -> Callable[[ScenarioRecord], None]:
    """Remove a record's evidence folder unless `keep(record)` (thousands of runs would fill the disk)."""
    def discard(record: ScenarioRecord) -> None:
        if keep(record):
            return
        folders = {Path(e["path"]).parent for e in record.evidence if e.get("name") == "bench.json"}
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
    return discard

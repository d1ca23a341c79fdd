"""Several benches per worker: a scenario mostly waits on protocol timers, so a worker runs the next scenarios of
its queue on benches of their own while the current one waits.

>>> pool = ScenarioPool(rig, size=4)                      # doctest: +SKIP
>>> pool.submit(scenario, evidence_path)                  # queued; runs when a bench slot is free  # doctest: +SKIP
>>> pool.result(scenario.id).verdict                      # doctest: +SKIP
<Verdict.OK: 'OK'>
>>> pool.close()                                          # doctest: +SKIP

Each `BenchSlot` owns a topology (its own namespaces and warm link engines) and what stays warm on it between
scenarios: the till process (`harness.core.keeper.Keeper`) and the terminal's durable memory (counters and
registration, as a terminal keeps them over a power cycle). Everything else (host, terminal, printer, their
records and the evidence folder) is new for every scenario, so one scenario's mess cannot reach the next; the
till is kept only after a scenario that ended quiet and OK, and restarted otherwise.

How many slots: `benches_per_worker()` from the machine's cores and load, or the `--benches` option.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import shutil
import threading
import time
import zlib
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.acceptance.matrix import Scenario
from harness.acceptance.report.record import ScenarioRecord
from harness.acceptance.scenario import attach_evidence, run_scenario
from harness.acceptance.verdict import Verdict
from harness.core.bench import Bench
from harness.core.evidence import Evidence
from harness.core.keeper import Keeper
from harness.core.rig import Rig
from harness.topology import NetnsUnavailable, Topology, build_topology

log = logging.getLogger(__name__)

MAX_BENCHES = 8              # per worker: more adds CPU contention, not overlap
BENCHES_PER_FREE_CORE = 6    # a scenario keeps a core busy a tenth of its wall time (bench_matrix.py): 6 per
                             # idle core leaves about 40% of it for the timers' sake


def busy_cores(window: float = 0.3) -> float:
    """How many cores other work keeps busy right now (from /proc/stat over `window` seconds); a run that just
    ended does not count, as it would in the 1-minute load average. The load average where /proc/stat is not."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        return sum(values), values[3] + (values[4] if len(values) > 4 else 0)     # total, idle + iowait

    try:
        (t0, i0) = sample()
        time.sleep(window)
        (t1, i1) = sample()
    except (OSError, ValueError, IndexError):
        return os.getloadavg()[0]
    cores = os.cpu_count() or 1
    return cores * (1 - (i1 - i0) / (t1 - t0)) if t1 > t0 else 0.0


def benches_per_worker(workers: int, cores: int | None = None, load: float | None = None) -> int:
    """Benches each of `workers` workers runs at once: 6 per core not already busy (`load`, default
    `busy_cores()`), shared among the workers (rounded up), between 1 and 8.

    >>> benches_per_worker(2, cores=2, load=0.0)
    6
    >>> benches_per_worker(3, cores=2, load=0.0)
    4
    >>> benches_per_worker(2, cores=2, load=2.0)       # two busy loops already: a quarter core counted free
    1
    >>> benches_per_worker(1, cores=16, load=0.0)
    8
    """
    cores = cores or os.cpu_count() or 1
    load = busy_cores() if load is None else load
    free = max(0.25, cores - load)
    return max(1, min(MAX_BENCHES, math.ceil(BENCHES_PER_FREE_CORE * free / max(1, workers))))


def shareable(rig: Rig) -> str | None:
    """Why this rig's devices cannot be run as several benches at once (None: they can). Only a rig emulated in
    namespaces can: each bench gets copies of every device; a real device (or a till at a fixed address) exists
    once."""
    if rig.network_mode != "namespaces":
        return f"rig {rig.name!r} is a physical bench (network mode {rig.network_mode!r})"
    for spec in rig.devices.values():
        if spec.emulated or (spec.kind == "till" and (spec.options or {}).get("launch")):
            continue
        return f"rig {rig.name!r} has a real {spec.kind} {spec.name!r} that exists once"
    return None


def parse_benches(value: str | int | None, workers: int) -> int:
    """The `--benches` option: "auto" (or empty) sizes from the machine, else a whole number >= 1."""
    if value in (None, "", "auto"):
        return benches_per_worker(workers)
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"--benches {value!r}: expected 'auto' or a whole number of benches per worker") from None
    if n < 1:
        raise ValueError(f"--benches {n}: at least one bench per worker")
    return n


def till_warm() -> bool:
    """Keep the till between scenarios of a slot unless POSRIG_TILL_WARM is 0/no/off (a cold till per scenario)."""
    return os.environ.get("POSRIG_TILL_WARM", "1").strip().lower() not in ("0", "no", "off", "false")


@dataclass
class Job:
    scenario: Scenario
    evidence_path: Path
    future: Future = field(default_factory=Future)


class BenchSlot:
    """One bench's lasting part: a topology, the warm till on it, the terminal's durable memory."""

    def __init__(self, index: int, rig: Rig):
        self.index = index
        self.rig = rig
        self.topology: Topology | None = None
        self.keeper = Keeper()
        self.carried: dict[str, Any] = {}       # per device name: what its next instance starts from
        self.scenarios = 0

    def ensure_topology(self) -> Topology | None:
        if self.topology is None and self.rig.network_mode == "namespaces":
            try:
                self.topology = build_topology(self.rig.nodes)
            except NetnsUnavailable:
                return None
        return self.topology

    def close(self) -> list[str]:
        errors = self.keeper.close()
        if self.topology is not None:
            try:
                self.topology.close()
            except Exception as exc:  # noqa: BLE001 - reported
                errors.append(f"topology of bench slot {self.index}: {exc}")
            self.topology = None
        return errors


class ScenarioPool:
    """Runs submitted scenarios on up to `size` bench slots at once, in submission order."""

    def __init__(self, rig: Rig, size: int):
        self.rig = rig
        self.size = max(1, size)
        self.single = shareable(rig)              # why only one bench at a time, if so
        if self.single and self.size > 1:
            log.info("one bench at a time: %s", self.single)
            self.size = 1
        self.jobs: dict[str, Job] = {}
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self.slots = [BenchSlot(i, rig) for i in range(self.size)]
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, scenario: Scenario, evidence_path: Path) -> Job:
        """Queue `scenario` (once: a second submit of the same id returns the first job)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the scenario pool is closed (the session is ending)")
            job = self.jobs.get(scenario.id)
            if job is None:
                job = self.jobs[scenario.id] = Job(scenario, evidence_path)
                self._queue.put(job)
                if len(self._threads) < self.size:
                    slot = self.slots[len(self._threads)]
                    t = threading.Thread(target=self._serve, args=(slot,), name=f"bench-slot-{slot.index}",
                                         daemon=True)
                    self._threads.append(t)
                    t.start()
            return job

    def result(self, scenario_id: str, timeout: float | None = None) -> ScenarioRecord:
        """The record of a submitted scenario, once it has run (and its bench is closed)."""
        return self.jobs[scenario_id].future.result(timeout)

    def _serve(self, slot: BenchSlot) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            if not job.future.set_running_or_notify_cancel():
                continue
            try:
                job.future.set_result(self._run(slot, job))
            except BaseException as exc:  # noqa: BLE001 - the test reports it
                job.future.set_exception(exc)

    def _run(self, slot: BenchSlot, job: Job) -> ScenarioRecord:
        scenario = job.scenario
        shutil.rmtree(job.evidence_path, ignore_errors=True)
        evidence = Evidence(job.evidence_path)
        topology = slot.ensure_topology()
        bench = Bench(self.rig, evidence, topology, keeper=slot.keeper if till_warm() else None,
                      carried=slot.carried)
        seed = zlib.crc32(scenario.id.encode())
        try:
            record = run_scenario(bench, scenario, seed=seed)
        except Exception as exc:  # noqa: BLE001 - a harness failure is this scenario's ERROR, not the pool's
            log.exception("scenario %s could not run", scenario.id)
            record = ScenarioRecord(id=scenario.id, link=scenario.link, stage=scenario.stage, fault=scenario.fault,
                                    outcome=scenario.outcome, expected=scenario.expected, seed=seed,
                                    verdict=Verdict.ERROR, observed=f"the scenario could not run: {exc!r}")
        # A till that ended this scenario quiet and judged is kept for the next; any doubt restarts it.
        slot.keeper.keep_next = record.verdict in (Verdict.OK, Verdict.NOT_APPLICABLE) and \
            "not quiet" not in record.observed
        devices = bench.identities()
        errors = bench.close()
        evidence.write_json("bench.json", {"rig": self.rig.name, "rig_sha256": self.rig.sha256, "devices": devices,
                                           "teardown_errors": errors, "bench_slot": slot.index,
                                           "slot_scenarios": slot.scenarios})
        slot.scenarios += 1
        if topology is not None:
            topology.drop_connections()       # nothing of this scenario's traffic reaches the next
        attach_evidence(record, bench)
        record.devices = devices
        if errors:
            record.verdict = Verdict.ERROR
            record.observed += "; teardown: " + "; ".join(errors)
        return record

    def close(self, timeout: float = 60.0) -> list[str]:
        """Cancel what has not started, let running scenarios finish, close every slot. Returns errors."""
        with self._lock:
            self._closed = True
        for job in self.jobs.values():
            job.future.cancel()
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join(timeout)
        errors = [f"bench slot thread {t.name} still running after {timeout:g}s" for t in self._threads
                  if t.is_alive()]
        # All slots at once: their tills stop and namespaces go in the time of the slowest, well within the time
        # pytest-xdist gives a finishing worker before it kills it (which would leave the namespaces behind).
        found: list[list[str]] = [[] for _ in self.slots]
        closers = [threading.Thread(target=lambda i=i, s=s: found[i].extend(s.close()), name=f"close-slot-{i}")
                   for i, s in enumerate(self.slots)]
        for t in closers:
            t.start()
        for t in closers:
            t.join(timeout)
        return errors + [e for each in found for e in each]

"""A fault schedule: what one explored sale suffers (several link faults, a printer fault, a cashier abort), and
its scenario file, the YAML that `posrig run --scenario FILE` replays.

>>> from harness.link.faults import FaultSpec
>>> s = Schedule(faults=(Fault("till-terminal", FaultSpec.parse("drop zvt:06 0F terminal->till first"), 3.0),))
>>> text = dump(s, meta={"till_profile": "correct"})
>>> load_text(text)[0] == s
True
>>> s.scenario().faults[0].spec.describe()
'drop zvt:06 0F terminal->till first'
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from harness.acceptance.matrix import CRASH_POINTS, OUTCOMES, PlannedFault, Scenario
from harness.link.faults import FaultError, FaultSpec

FORMAT = 1                       # posrig_scenario: the scenario file's format version
LINKS = ("till-terminal", "terminal-host")
PRINTER_FAULTS = {("paper_out", "before"), ("paper_out", "during"), ("offline", "before")}
_INVARIANT = re.compile(r"^(I\d+|expect) \(")


class ScenarioFileError(ValueError):
    """A scenario file is wrong; the message names the file, the field and what is accepted."""


@dataclass(frozen=True)
class Fault:
    """One link fault of a schedule (a `PlannedFault` with an order-independent text form)."""

    link: str
    spec: FaultSpec
    linger: float = 0.0

    def text(self) -> str:
        return f"{self.link}: {self.spec.describe()} linger={self.linger:g}"

    def planned(self) -> PlannedFault:
        return PlannedFault(self.link, self.spec, self.linger)


@dataclass(frozen=True)
class Schedule:
    """What happens to one sale: its link faults, the host's answer, a printer fault, a cashier abort."""

    faults: tuple[Fault, ...] = ()
    outcome: str = "approve"
    printer_fault: str = ""          # paper_out | offline
    printer_fault_at: str = ""       # before | during
    cashier_abort: bool = False
    crash: str = ""                  # a crash point (matrix.CRASH_POINTS): "till:result", "terminal:online"...
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> str:
        """A short digest naming the schedule (the same schedule always gets the same key)."""
        return hashlib.sha1(dump(self).encode()).hexdigest()[:10]

    def size(self) -> int:
        """How much goes wrong: faults, plus one for a printer fault or an abort (what shrinking minimises)."""
        return len(self.faults) + bool(self.printer_fault) + self.cashier_abort + bool(self.crash)

    def describe(self) -> str:
        parts = [f.text() for f in self.faults]
        if self.printer_fault:
            parts.append(f"printer {self.printer_fault} {self.printer_fault_at}")
        if self.cashier_abort:
            parts.append("cashier abort")
        if self.crash:
            parts.append(f"power cut {self.crash}")
        return f"{self.outcome}: " + ("; ".join(parts) or "no fault")

    def scenario(self, run: str = "") -> Scenario:
        """The acceptance scenario that runs this schedule (`run` keeps re-runs apart in a pool)."""
        first = self.faults[0] if self.faults else None
        return Scenario(id=f"explore/{self.key}/{self.outcome}" + (f"#{run}" if run else ""),
                        link=first.link if first else ("printer" if self.printer_fault else "till-terminal"),
                        stage=(first.spec.stage or "any") if first else (self.printer_fault_at or "none"),
                        fault="+".join(f.spec.action for f in self.faults) or "none", outcome=self.outcome,
                        faults=tuple(f.planned() for f in self.faults), printer_fault=self.printer_fault,
                        printer_fault_at=self.printer_fault_at, cashier_abort=self.cashier_abort,
                        crash=self.crash, meaning="explored compound fault schedule: " + self.describe())


def invariants_of(violations: list[str]) -> list[str]:
    """The invariants (I1..., expect) named by a record's violation lines; fault-proof problems name none.

    >>> invariants_of(["I2 (no settled payment ...): x", "fault 2 never fired", "I2 (...): y"])
    ['I2']
    """
    out: list[str] = []
    for line in violations:
        m = _INVARIANT.match(line)
        if m and m.group(1) not in out:
            out.append(m.group(1))
    return out


def to_data(schedule: Schedule, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"posrig_scenario": FORMAT}
    data.update(meta or {})
    data["outcome"] = schedule.outcome
    data["faults"] = [{"link": f.link, "fault": f.spec.describe(), "linger": f.linger} for f in schedule.faults]
    if schedule.printer_fault:
        data["printer_fault"] = {"fault": schedule.printer_fault, "at": schedule.printer_fault_at}
    data["cashier_abort"] = schedule.cashier_abort
    if schedule.crash:
        data["crash"] = schedule.crash
    return data


def dump(schedule: Schedule, meta: dict[str, Any] | None = None) -> str:
    """The scenario file's text (YAML): meta first (id, till profile, seed, invariant...), then the schedule."""
    return yaml.safe_dump(to_data(schedule, meta), sort_keys=False, allow_unicode=True, width=120)


def load_text(text: str, where: str = "scenario file") -> tuple[Schedule, dict[str, Any]]:
    """Parse a scenario file's text: the schedule and the rest of its fields (meta). ScenarioFileError."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioFileError(f"{where}: not YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict) or data.get("posrig_scenario") != FORMAT:
        raise ScenarioFileError(f"{where}: not a posrig scenario file (needs 'posrig_scenario: {FORMAT}' at the top)")
    outcome = data.get("outcome", "approve")
    if outcome not in OUTCOMES:
        raise ScenarioFileError(f"{where}: outcome {outcome!r} must be one of {', '.join(OUTCOMES)}")
    faults = []
    for i, row in enumerate(data.get("faults") or [], 1):
        if not isinstance(row, dict) or "fault" not in row:
            raise ScenarioFileError(f"{where}: faults[{i}] must be a mapping with 'link', 'fault' and 'linger'")
        link = row.get("link")
        if link not in LINKS:
            raise ScenarioFileError(f"{where}: faults[{i}].link {link!r} must be one of {', '.join(LINKS)}")
        try:
            spec = FaultSpec.parse(str(row["fault"]))
        except FaultError as exc:
            raise ScenarioFileError(f"{where}: faults[{i}].fault: {exc}") from None
        linger = row.get("linger", 0.0)
        if not isinstance(linger, (int, float)) or isinstance(linger, bool) or linger < 0:
            raise ScenarioFileError(f"{where}: faults[{i}].linger {linger!r} must be seconds >= 0")
        faults.append(Fault(link, spec, float(linger)))
    printer = data.get("printer_fault") or {}
    fault, at = (printer.get("fault", ""), printer.get("at", "")) if isinstance(printer, dict) else ("?", "?")
    if printer and (fault, at) not in PRINTER_FAULTS:
        raise ScenarioFileError(f"{where}: printer_fault {printer!r} must be one of "
                                + ", ".join(f"{{fault: {f}, at: {a}}}" for f, a in sorted(PRINTER_FAULTS)))
    abort = data.get("cashier_abort", False)
    if not isinstance(abort, bool):
        raise ScenarioFileError(f"{where}: cashier_abort {abort!r} must be true or false")
    crash = data.get("crash", "") or ""
    if crash and crash not in CRASH_POINTS:
        raise ScenarioFileError(f"{where}: crash {crash!r} must be one of {', '.join(CRASH_POINTS)}")
    if crash and outcome not in CRASH_POINTS[crash]:
        raise ScenarioFileError(f"{where}: crash {crash!r} comes only with outcome {', '.join(CRASH_POINTS[crash])}")
    meta = {k: v for k, v in data.items()
            if k not in ("posrig_scenario", "outcome", "faults", "printer_fault", "cashier_abort", "crash")}
    return Schedule(tuple(faults), outcome, fault, at, abort, crash), meta


def load(path: str | Path) -> tuple[Schedule, dict[str, Any]]:
    """Read a scenario file; ScenarioFileError (one line) when it is missing or wrong."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ScenarioFileError(f"scenario file {path}: cannot be read ({exc.strerror or exc})") from None
    return load_text(text, where=f"scenario file {path}")


def replay_scenario(path: str | Path) -> Scenario:
    """The acceptance scenario a scenario file describes, with an id naming the file (for test ids/reports)."""
    schedule, meta = load(path)
    scenario = schedule.scenario()
    return replace(scenario, id=f"replay/{Path(path).stem}/{schedule.outcome}",
                   meaning=f"{scenario.meaning} (found breaking {', '.join(meta.get('invariants') or []) or '?'})")


REGRESSIONS = Path(__file__).resolve().parent.parent / "acceptance" / "suite" / "regressions"


def replay_scenarios(paths: list[str] | tuple[str, ...]) -> list[Scenario]:
    """The scenarios of scenario files, in order (`posrig run --scenario FILE`, pytest `--scenario-file`)."""
    return [replay_scenario(p) for p in paths]


def regression_scenarios(folder: Path = REGRESSIONS) -> list[Scenario]:
    """Regression rows the matrix runs besides its own: every `*.yaml` scenario file in `folder` (a found
    schedule copied there, docs/explore.md), ids `regression/<file stem>/<outcome>`."""
    out = []
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        scenario = replay_scenario(path)
        out.append(replace(scenario, id=scenario.id.replace("replay/", "regression/", 1)))
    return out

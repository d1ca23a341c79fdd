"""Self-describing acceptance records, in the spirit of OpenHTF's test record and EMVCo L3 reports.

A scenario test fills a `ScenarioRecord`; the plugin carries it (also across pytest-xdist workers) and writes
`acceptance.json`: the rig, versions, device identities, and per selected scenario the verdict, expected vs
observed, elapsed time, seed and evidence, whether it ran and why not; sealed by `signoff.seal`.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.acceptance.verdict import Verdict
from harness.core.masking import mask_obj

PACKAGES = ("posrig", "pytest", "scapy", "NetfilterQueue", "pyiso8583", "python-escpos", "pytest-html", "Pillow")


@dataclass
class ScenarioRecord:
    """What one acceptance scenario did and concluded."""

    id: str                                   # e.g. "terminal-host/0210-lost/approve"
    link: str = ""
    stage: str = ""
    fault: str = ""
    outcome: str = ""                          # the card's outcome at the host: approve | decline
    verdict: Verdict = Verdict.ERROR           # OK | FAIL | ERROR | INCONCLUSIVE
    expected: str = ""
    observed: str = ""
    elapsed: float = 0.0
    seed: int = 0
    violations: list[str] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)     # {t, source, event}
    ledger: list[dict[str, Any]] = field(default_factory=list)
    receipts: list[dict[str, Any]] = field(default_factory=list)     # {index, kind, text, png}
    evidence: list[dict[str, str]] = field(default_factory=list)     # {name, path, mime}
    devices: list[dict[str, Any]] = field(default_factory=list)
    nodeid: str = ""
    status: str = "ran"                        # ran | skipped | setup error | crashed | not started
    reason: str = ""                           # why it did not run, or why it is not OK

    def __post_init__(self) -> None:
        try:
            self.verdict = Verdict(self.verdict)
        except ValueError:
            raise ValueError(f"verdict {self.verdict!r} is not one of {', '.join(Verdict)}") from None

    def to_json(self) -> str:
        return json.dumps(mask_obj(asdict(self)), default=str)

    @classmethod
    def from_json(cls, text: str) -> ScenarioRecord:
        return cls(**json.loads(text))


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "platform": platform.platform()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def write_acceptance_json(path: Path, records: list[ScenarioRecord], rig: Any, started: float,
                          extra: dict[str, Any] | None = None, *, selected: int | None = None,
                          evidence_dirs: list[Path] = ()) -> Path:
    """Write the whole run's acceptance.json (masked, sealed). `records` holds one row per selected scenario,
    those that did not run included; `selected` is how many were selected (default: the rows)."""
    from harness.acceptance.report.signoff import seal, summary

    rows = [json.loads(r.to_json()) for r in sorted(records, key=lambda r: (r.id, r.nodeid))]
    devices: dict[str, dict] = {}
    for r in records:
        for d in r.devices:
            devices.setdefault(d.get("name", "?"), d)
    doc = {
        "format": "posrig-acceptance/2",
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "elapsed": round(time.time() - started, 3),
        "command": " ".join(sys.argv),
        "rig": None if rig is None else {"name": rig.name, "file": str(rig.path), "sha256": rig.sha256,
                                         "timing_scale": rig.timing.scale},
        "versions": versions(),
        "devices": list(devices.values()),
        "summary": summary(rows, selected),
        "scenarios": rows,
        **(extra or {}),
    }
    doc = json.loads(json.dumps(doc, default=str))          # exactly what the file holds, for the digest
    listed = [e["path"] for r in rows for e in r.get("evidence", []) if e.get("path")]
    seal(doc, path.parent, evidence_dirs, None if rig is None else Path(rig.path), listed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2))
    return path

"""The reference till driver: posrig's own till program (harness/reference_till) as one more launched till. It
is an `http` till whose `launch` line is written here: started in the till's node with the device endpoints
like any vendor till, driven through the till contract, killed and restarted the same way.

The profile comes from, in order: $POSRIG_TILL_PROFILE, `ctx.extra["till_profile"]`, the rig's
`options.profile`, the rig's `profile`, else `correct`. Its journal is `till-journal.sqlite` in the scenario's
evidence folder (kept across a restart), its log `till-stderr.log`; on close the journal is also written as
`till-journal.json`.

On a bench slot that keeps devices warm (`harness.core.keeper`), one till process serves many scenarios: its journal
and logs live in a folder of its own (`posrig-<pid>-warm-till-*` in the temp folder, reaped like a killed run's
namespaces), and each scenario's evidence gets its part: `till-journal.json` with only that scenario's sales, the
log lines written while it ran, and `till.json` saying which process served it and how many scenarios before.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from harness.core.evidence import Evidence
from harness.reference_till.journal import Journal
from harness.reference_till.profiles import PROFILES, profile
from harness.till.http import HttpTill
from harness.till.lifecycle import TillStartError

__all__ = ["ReferenceTill", "TillStartError"]

READY_TIMEOUT = 20.0
LAUNCH = ("{python} -m harness.reference_till serve --ecr {terminal} --printer {printer} --profile {profile} "
          "--control 127.0.0.1:0 --journal {journal} --timing-scale {timing_scale}")


def _devices(values: dict[str, str]) -> dict[str, str]:
    """The endpoint values that must match for a warm till to serve another bench (not the folders)."""
    return {k: v for k, v in values.items() if k not in ("state_dir", "evidence_dir")}


class _Spec:
    """The rig's till entry with the reference till's launch line filled in."""

    def __init__(self, spec: Any, launch: str):
        self._spec = spec
        self.options = {**(spec.options or {}), "launch": launch, "ready_timeout": READY_TIMEOUT,
                        "stop_timeout": 3.0}
        self.address = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._spec, name)


class ReferenceTill(HttpTill):
    """posrig's reference till as the system under test (`till.reference` in the rig)."""

    bindings = {"printer": "printer", "terminal": "terminal", "host": "host?"}
    close_timeout = 8.0
    default_capabilities = frozenset({"journal", "abort", "recover"})

    def __init__(self, spec: Any, ctx: Any, **bound: Any):
        super().__init__(_Spec(spec, LAUNCH), ctx, **bound)
        self.rig_spec = spec
        self.profile = self._profile_name()
        self.warm = bool(ctx.extra.get("keeper"))
        self.state_dir: Path | None = None
        self.served = 0                              # scenarios this process served before the current one
        self._sales_before: set[str] = set()
        self._log_offsets: dict[str, int] = {}
        self._attached = True                        # serving a bench (False while parked)
        if self.warm:
            self.state_dir = Path(tempfile.mkdtemp(prefix=f"posrig-{os.getpid()}-warm-till-"))
            self.journal_path = self.state_dir / "till-journal.sqlite"
        else:
            self.journal_path = ctx.evidence.file("till-journal.sqlite", "reference till journal (SQLite)",
                                                  "application/vnd.sqlite3")

    def _profile_name(self) -> str:
        name = (os.environ.get("POSRIG_TILL_PROFILE") or self.ctx.extra.get("till_profile")
                or (self.spec.options or {}).get("profile") or self.spec.profile or "correct")
        profile(name)          # ValueError naming the known profiles
        return name

    @property
    def sale_timeout(self) -> float:
        """Long enough for the slowest path of any profile: T4 plus every query, at the rig's scale."""
        t = PROFILES[self.profile].timers
        per_query = t.query_interval * t.query_attempts + 2 * t.ack + t.result
        nominal = t.overall + t.result + (t.query_attempts + 1) * per_query + 30
        return max(self.ctx.timing.seconds(nominal), 10.0)

    def endpoint_values(self) -> dict[str, str]:
        values = super().endpoint_values()
        if "printer" not in values:
            raise TillStartError(f"the reference till prints over TCP only; the rig's printer offers "
                                 f"{self.printer.address!r}: use `transport: tcp` for the printer")
        if "terminal" not in values:
            raise TillStartError("the reference till speaks ZVT over TCP only: use `transport: tcp` for the "
                                 "terminal")
        values = {**values, "python": sys.executable, "profile": self.profile, "journal": str(self.journal_path)}
        if self.warm and self.state_dir is not None:           # the till's own folder outlives the scenario
            with contextlib.suppress(OSError):
                Path(values["state_dir"]).rmdir()
            state = self.state_dir / "state"
            state.mkdir(exist_ok=True)
            values["state_dir"] = str(state)
        return values

    @property
    def command(self) -> list[str]:
        return shlex.split(LAUNCH.format_map(self._values)) if self._values else []

    @property
    def process(self) -> Any:
        return self.launcher.proc if self.launcher is not None else None

    def identity(self) -> dict[str, Any]:
        proc = self.process
        return {**super().identity(), "profile": self.profile, "pid": proc.pid if proc is not None else None}

    @property
    def keep_warm(self) -> bool:
        """Kept running for the next bench of its slot (`harness.core.keeper`)."""
        return self.warm

    def _launch(self, values: dict[str, str], probe: Any = None) -> dict[str, Any] | None:
        ready = super()._launch(values, probe)
        if self.warm and self.launcher is not None:
            self._mark()
        return ready

    def _launcher_evidence(self) -> Any:
        return Evidence(self.state_dir) if self.warm and self.state_dir is not None else self.ctx.evidence

    # -- kept warm across benches (harness.core.keeper) ------------------------------------------------------
    def _mark(self) -> None:
        """Where the coming scenario's part of the journal and logs begins."""
        self._sales_before = {str(s.get("sale_id") or s.get("id")) for s in self._journal_rows()}
        self._log_offsets = {n: p.stat().st_size for n in ("stdout", "stderr")
                             if (p := self.state_dir / f"till-{n}.log").exists()}

    def adopt(self, ctx: Any, **bound: Any) -> bool:
        """Serve the next bench: same profile and endpoints, alive and answering; False otherwise."""
        if self.launcher is None or not self.launcher.alive or self._profile_name() != self.profile:
            return False
        old = {attr: getattr(self, attr) for attr in self.bindings}
        self.ctx = ctx
        for attr in self.bindings:
            setattr(self, attr, bound.get(attr))
        try:
            if _devices(self.endpoint_values()) != _devices(self._values):
                return False
            if self._client().health().get("busy"):
                raise RuntimeError("still busy with the last bench's sale or recovery")
        except Exception:  # noqa: BLE001 - not fit: the keeper starts a fresh one
            for attr, dev in old.items():
                setattr(self, attr, dev)
            return False
        self.served += 1
        self._attached = True
        self._mark()
        return True

    def park(self) -> bool:
        """Write this scenario's part of the evidence and wait, alive, for the next bench."""
        self._scenario_evidence()
        self._attached = False
        return self.launcher is not None and self.launcher.alive

    def _scenario_evidence(self) -> None:
        ev = self.ctx.evidence
        rows = [r for r in self._journal_rows() if str(r.get("sale_id") or r.get("id")) not in self._sales_before]
        ev.write_json("till-journal.json", {"sales": rows}, "reference till journal (this scenario's sales)")
        for name, start in {"stdout": 0, "stderr": 0, **self._log_offsets}.items():
            src = self.state_dir / f"till-{name}.log"
            if src.exists():
                with open(src, "rb") as f:
                    f.seek(start)
                    ev.file(f"till-{name}.log", f"the till's {name} while this scenario ran", "text/plain"
                            ).write_bytes(f.read())
        proc = self.process
        ev.write_json("till.json", {"warm": True, "pid": proc.pid if proc is not None else None,
                                    "scenarios_before": self.served, "profile": self.profile,
                                    "lifecycle": self.launcher.history if self.launcher else []},
                      "the till process that served this scenario")

    def close(self) -> None:
        if self.launcher is None or self.launcher.proc is None:
            super().close()
            self._drop_state()
            return
        try:
            if self.warm:
                if self._attached:
                    self._scenario_evidence()
            else:
                self.ctx.evidence.write_json("till-journal.json", {"sales": self._journal_rows()},
                                             "reference till journal")
        finally:
            super().close()
            self._drop_state()

    def _drop_state(self) -> None:
        if self.state_dir is not None:
            shutil.rmtree(self.state_dir, ignore_errors=True)
            self.state_dir = None

    def _journal_rows(self) -> list[dict[str, Any]]:
        try:
            return self.journal()
        except Exception:  # noqa: BLE001 - the process may be gone: read the file instead
            j = Journal(self.journal_path)
            try:
                return j.sales()
            finally:
                j.close()

    def kill(self) -> None:
        """SIGKILL the till process (a crash), keeping its journal; `restart()` brings it back on the same file."""
        super().kill()
        self.client = None

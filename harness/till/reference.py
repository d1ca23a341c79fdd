"""The reference till driver: posrig's own till program (harness/reference_till) as one more launched till. It
is an `http` till whose `launch` line is written here: started in the till's node with the device endpoints
like any vendor till, driven through the till contract, killed and restarted the same way.

The profile comes from, in order: $POSRIG_TILL_PROFILE, `ctx.extra["till_profile"]`, the rig's
`options.profile`, the rig's `profile`, else `correct`. Its journal is `till-journal.sqlite` in the scenario's
evidence folder (kept across a restart), its log `till-stderr.log`; on close the journal is also written as
`till-journal.json`.
"""

from __future__ import annotations

import os
import shlex
import sys
from typing import Any

from harness.reference_till.journal import Journal
from harness.reference_till.profiles import PROFILES, profile
from harness.till.http import HttpTill
from harness.till.lifecycle import TillStartError

__all__ = ["ReferenceTill", "TillStartError"]

READY_TIMEOUT = 20.0
LAUNCH = ("{python} -m harness.reference_till serve --ecr {terminal} --printer {printer} --profile {profile} "
          "--control 127.0.0.1:0 --journal {journal} --timing-scale {timing_scale}")


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
        self.profile = self._profile_name()
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
        return {**values, "python": sys.executable, "profile": self.profile, "journal": str(self.journal_path)}

    @property
    def command(self) -> list[str]:
        return shlex.split(LAUNCH.format_map(self._values)) if self._values else []

    @property
    def process(self) -> Any:
        return self.launcher.proc if self.launcher is not None else None

    def identity(self) -> dict[str, Any]:
        proc = self.process
        return {**super().identity(), "profile": self.profile, "pid": proc.pid if proc is not None else None}

    def close(self) -> None:
        if self.launcher is None or self.launcher.proc is None:
            super().close()
            return
        try:
            self.ctx.evidence.write_json("till-journal.json", {"sales": self._journal_rows()},
                                         "reference till journal")
        finally:
            super().close()

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

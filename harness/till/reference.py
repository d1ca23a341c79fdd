"""The reference till driver: starts posrig's own till program (app.py) in the till's namespace and drives it
through the till contract, exactly like a vendor till behind the `http` driver.

The profile comes from, in order: $POSRIG_TILL_PROFILE, `ctx.extra["till_profile"]`, the rig's
`options.profile`, the rig's `profile`, else `correct`. Its journal is `till-journal.sqlite` in the scenario's
evidence folder, its log `till.log`; on close the journal is also written as `till-journal.json`.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from harness.core.address import parse_hostport
from harness.core.process import Child, ChildFailed
from harness.reference_till.journal import Journal
from harness.reference_till.profiles import PROFILES, profile
from harness.till.http import HttpTill, TillClient

READY_TIMEOUT = 20.0


class TillStartError(RuntimeError):
    """The reference till process did not come up; the message carries its log."""


class ReferenceTill(HttpTill):
    """posrig's reference till as the system under test (`till.reference` in the rig)."""

    bindings = {"printer": "printer", "terminal": "terminal"}
    close_timeout = 8.0

    def __init__(self, spec: Any, ctx: Any, **bound: Any):
        super().__init__(spec, ctx, **bound)
        self.process: Child | None = None
        self.profile = self._profile_name()
        self.journal_path = ctx.evidence.file("till-journal.sqlite", "reference till journal (SQLite)",
                                              "application/vnd.sqlite3")
        self.log_path = ctx.evidence.file("till.log", "reference till log", "text/plain")
        self.command: list[str] = []

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

    def _devices(self) -> tuple[str, str]:
        printer = self.printer.address
        tcp = printer.get("tcp") if isinstance(printer, dict) else printer
        if not tcp:
            raise TillStartError(f"the reference till prints over TCP only; the rig's printer offers "
                                 f"{printer!r}: "
                                 "use `transport: tcp` for the printer")
        ip, port = self.terminal.ecr_address
        return f"{ip}:{port}", str(tcp)

    def start(self) -> None:
        ecr, printer = self._devices()
        self.command = [sys.executable, "-m", "harness.reference_till", "serve", "--ecr", ecr,
                        "--printer", printer, "--profile", self.profile, "--control", "127.0.0.1:0",
                        "--journal", str(self.journal_path), "--timing-scale", str(self.ctx.timing.scale)]
        self.process = Child(f"till {self.name}", self.command, namespace=self.ctx.namespace, log=self.log_path)
        try:
            ready = self.process.start(READY_TIMEOUT)
        except ChildFailed as exc:
            self.process = None
            raise TillStartError(f"reference till: {exc}") from None
        host, port = parse_hostport(ready["control"], what="the reference till's control address")
        self._connect(TillClient(host, port, namespace=self.ctx.namespace, timeout=10.0))

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "profile": self.profile,
                "pid": self.process.pid if self.process else None}

    def close(self) -> None:
        if self.process is None:
            return
        try:
            self.ctx.evidence.write_json("till-journal.json", {"sales": self._journal_rows()},
                                         "reference till journal")
        finally:
            self._stop_process()
            self.client = None

    def _journal_rows(self) -> list[dict[str, Any]]:
        try:
            return self.journal()
        except Exception:  # noqa: BLE001 - the process may be gone: read the file instead
            j = Journal(self.journal_path)
            try:
                return j.sales()
            finally:
                j.close()

    def _stop_process(self) -> None:
        proc, self.process = self.process, None
        if proc is not None:
            proc.stop(timeout=3.0)

    def kill(self) -> None:
        """SIGKILL the till process (a crash), keeping its journal; `restart()` brings it back on the same
        file."""
        if self.process is not None:
            self.process.kill()
            self.process.stop()
            self.process = None
            self.client = None

    def restart(self) -> None:
        """Start the till process again on the same journal (after `kill()`)."""
        self._stop_process()
        self.start()

"""A till's lifecycle under posrig: `launch` it inside the till's node with the device endpoints, wait until it is
ready, keep its stdout/stderr as evidence, `stop` it at the end, `kill` it (a power cut) and start it again when
a scenario asks. posrig never leaves it running: it dies with posrig (PR_SET_PDEATHSIG) and is stopped at close.

    till:
      kind: till
      mode: real
      driver: http
      transport: http
      launch: "python examples/vendor_till/till.py --http 127.0.0.1:0"   # ready: a JSON ready line or /health
      stop: ""              # optional command; default SIGTERM, SIGKILL after stop_timeout
      kill: ""              # optional command (a smart plug); default SIGKILL of the whole process group

On a rig that is a labgrid place with `labgrid: {power: {till: RESOURCE}}`, `kill` also cuts the till's power
through labgrid and the restart switches it on first (`harness.labgrid.power`); a physical till posrig does not
launch gets the same power cut and restore.

Ready when the till prints a line matching `ready` (a regular expression; default: a JSON object with
`"event": "ready"`), or when the driver's own probe answers (GET /health for HTTP tills).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.core import escpos_cache
from harness.core.process import spawn
from harness.till import argv as argvs
from harness.till import endpoints as ep

LIFECYCLE_KEYS = ("launch", "stop", "kill", "ready", "ready_timeout", "stop_timeout")
DEFAULT_READY_TIMEOUT = 30.0


class TillStartError(RuntimeError):
    """The launched till did not come up; the message carries the command and its output."""


class Launcher:
    """One launched till process (and its restarts). Output goes to `till-stdout.log` / `till-stderr.log`."""

    def __init__(self, name: str, options: dict[str, Any], values: dict[str, str], *, namespace: Any = None,
                 evidence: Any = None, probe: Callable[[], bool] | None = None):
        self.name = name
        self.options = options
        self.values = dict(values)
        self.namespace = namespace
        self.evidence = evidence
        self.probe = probe
        self.proc: subprocess.Popen | None = None
        self.ready_line: dict[str, Any] = {}
        self.starts = 0
        self.history: list[dict[str, Any]] = []
        self._ready_re = re.compile(str(options["ready"])) if options.get("ready") else None
        self._ready = threading.Event()
        self._escpos: str | None = None          # the till's own python-escpos cache folder
        self._readers: list[threading.Thread] = []
        self.power = _power(options)
        self.power_cut = False
        for key in ("launch", "stop", "kill"):
            if options.get(key):
                argvs.check(str(options[key]), known=self.values)

    @property
    def configured(self) -> bool:
        return bool(self.options.get("launch"))

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _argv(self, key: str) -> list[str]:
        return argvs.render(str(self.options[key]), self.values)

    def _environment(self) -> dict[str, str]:
        return {**os.environ, **ep.env(self.values), "PYTHONUNBUFFERED": "1",
                "ESCPOS_CAPABILITIES_PICKLE_DIR": self._escpos_folder()}

    def _escpos_folder(self) -> str:
        """A python-escpos capabilities cache of this till's own: tills started at once on several benches would
        otherwise write and read one shared pickle at the same time (python-escpos writes it in place: a till
        reading it half-written died with EOFError). Removed when the till stops; a killed run's is reaped."""
        if self._escpos is None or not os.path.isdir(self._escpos):
            self._escpos = escpos_cache.private_folder(f"posrig-{os.getpid()}-warm-escpos-")
        return self._escpos

    def _log(self, stream: str) -> Path | None:
        if self.evidence is None:
            return None
        return self.evidence.file(f"till-{stream}.log", f"the launched till's {stream}", "text/plain")

    def start(self) -> dict[str, Any]:
        """Launch and wait until ready; the ready line's JSON fields (if it printed one). TillStartError."""
        argv = self._argv("launch")
        if self.power is not None and (self.power_cut or self.starts == 0):
            self._power("on")
        self._ready.clear()
        self.ready_line = {}
        self.starts += 1
        kwargs: dict[str, Any] = {"stdin": subprocess.DEVNULL, "stdout": subprocess.PIPE,
                                  "stderr": subprocess.PIPE, "env": self._environment(),
                                  "start_new_session": True}
        try:
            self.proc = (self.namespace.popen(argv, **kwargs) if self.namespace is not None
                         else spawn(argv, **kwargs))
        except OSError as exc:
            raise TillStartError(f"till {self.name!r}: cannot launch {' '.join(argv)}: {exc}") from exc
        self.history.append({"event": "launch", "t": time.time(), "argv": argv, "pid": self.proc.pid})
        self._readers = [threading.Thread(target=self._pump, args=(self.proc.stdout, "stdout", True),
                                          daemon=True, name=f"till-{self.name}-stdout"),
                         threading.Thread(target=self._pump, args=(self.proc.stderr, "stderr", False),
                                          daemon=True, name=f"till-{self.name}-stderr")]
        for t in self._readers:
            t.start()
        timeout = float(self.options.get("ready_timeout", DEFAULT_READY_TIMEOUT))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._ready.wait(0.05):
                return self.ready_line
            if self.proc.poll() is not None:
                self._join_readers()
                raise TillStartError(f"till {self.name!r} exited ({self.proc.returncode}) before it was ready; "
                                     f"command: {' '.join(argv)}{self._tail()}")
            if self.probe is not None and self._ready_re is None:
                with contextlib.suppress(Exception):
                    if self.probe():
                        return self.ready_line
        self.stop()
        raise TillStartError(f"till {self.name!r} was not ready within {timeout:g}s (no ready line"
                             f"{'' if self.probe is None else ', no answer to its health probe'}); command: "
                             f"{' '.join(argv)}{self._tail()}")

    def _pump(self, stream: Any, name: str, watch: bool) -> None:
        path = self._log(name)
        sink = open(path, "ab") if path is not None else None
        try:
            for raw in iter(stream.readline, b""):
                if sink is not None:
                    sink.write(raw)
                    sink.flush()
                if watch and not self._ready.is_set():
                    self._check_ready(raw.decode("utf-8", "replace").strip())
        except (OSError, ValueError):
            pass
        finally:
            if sink is not None:
                sink.close()
            with contextlib.suppress(OSError):
                stream.close()

    def _check_ready(self, line: str) -> None:
        if self._ready_re is not None:
            if self._ready_re.search(line):
                self._ready.set()
            return
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                data = json.loads(line)
                if isinstance(data, dict) and (data.get("event") == "ready" or data.get("ready") is True):
                    self.ready_line = data
                    self._ready.set()

    def _tail(self, limit: int = 1500) -> str:
        out = []
        for name in ("stdout", "stderr"):
            path = self._log(name)
            if path is not None and path.exists():
                text = path.read_text(errors="replace")[-limit:].strip()
                if text:
                    out.append(f"\n--- till {name} ({path}):\n{text}")
        return "".join(out)

    def _join_readers(self) -> None:
        for t in self._readers:
            t.join(2.0)

    def _run(self, key: str, timeout: float) -> None:
        argv = self._argv(key)
        wrapped = self.namespace.command(argv) if self.namespace is not None else argv
        done = subprocess.run(wrapped, capture_output=True, text=True, timeout=timeout, env=self._environment())
        self.history.append({"event": key, "t": time.time(), "argv": argv, "returncode": done.returncode,
                             "stderr": done.stderr[-500:]})

    def _signal_group(self, sig: int) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def stop(self) -> int | None:
        """Stop the till (its `stop` command, else SIGTERM), SIGKILL after `stop_timeout`. Idempotent."""
        proc = self.proc
        if proc is None:
            return None
        timeout = float(self.options.get("stop_timeout", 5.0))
        if proc.poll() is None:
            if self.options.get("stop"):
                with contextlib.suppress(subprocess.SubprocessError, OSError):
                    self._run("stop", timeout)
            else:
                self._signal_group(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                proc.wait(timeout=5)
        self._signal_group(signal.SIGKILL)          # nothing it started outlives it
        self._join_readers()
        self.history.append({"event": "stopped", "t": time.time(), "returncode": proc.returncode})
        if self._escpos is not None:
            shutil.rmtree(self._escpos, ignore_errors=True)
            self._escpos = None
        self.proc = None
        return proc.returncode

    def kill(self) -> None:
        """The power cut: the `kill` command, else SIGKILL to the till's whole process group, at once."""
        proc = self.proc
        if proc is None:
            return
        if self.power is not None:
            self._power("off")
        if self.options.get("kill"):
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                self._run("kill", 10.0)
        self._signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        self._join_readers()
        self.history.append({"event": "killed", "t": time.time(), "returncode": proc.returncode})
        if self._escpos is not None:                # a restart makes a fresh one (with the shared pickle)
            shutil.rmtree(self._escpos, ignore_errors=True)
            self._escpos = None
        self.proc = None

    def cut_now(self) -> bool:
        """The power cut at this very instant, from any thread (a printer's or a link's crash point): SIGKILL to the
        till's process group, not waiting for it (`kill()` then reaps it). False when the till's power is cut
        another way (a `kill` command, labgrid): the caller must call `kill()`."""
        proc = self.proc
        if proc is None or self.power is not None or self.options.get("kill"):
            return False
        self._signal_group(signal.SIGKILL)
        return True

    def _power(self, action: str) -> None:
        """Switch the till's power through labgrid; PowerError (labgrid-client's line) if it cannot."""
        getattr(self.power, action)()
        self.power_cut = action == "off"
        self.history.append({"event": f"power {action}", "t": time.time(), "via": "labgrid",
                             "place": self.power.place, "resource": self.power.resource})

    def write_evidence(self) -> None:
        if self.evidence is not None and self.history:
            self.evidence.write_json("till-lifecycle.json", self.history, "launches, stops and kills of the till")


def _power(options: dict[str, Any]) -> Any:
    """The labgrid power of a till (`labgrid_power` in its options, filled in from the rig's place), or None."""
    option = options.get("labgrid_power")
    if not option:
        return None
    from harness.labgrid.power import PlacePower

    return PlacePower.from_option(option)


class Launched:
    """Mixin for till drivers whose till posrig may launch (`launch` in the rig): start, kill, restart, stop.

    The driver calls `_launch(values, probe)` in `start()`, `_stop_launched()` in `close()`, and gets `kill()` and
    `restart()`; `_relaunched(ready_line)` reconnects it after a restart."""

    launcher: Launcher | None = None

    def _launch(self, values: dict[str, str], probe: Callable[[], bool] | None = None) -> dict[str, Any] | None:
        options = dict(self.spec.options or {})
        if not options.get("launch"):
            return None
        self.launcher = Launcher(self.name, options, values, namespace=self.ctx.namespace,
                                 evidence=self._launcher_evidence(), probe=probe)
        return self.launcher.start()

    def _launcher_evidence(self) -> Any:
        """Where the till's output and lifecycle go: the scenario's evidence (drivers may choose otherwise)."""
        return self.ctx.evidence

    def _stop_launched(self) -> None:
        launcher = self.launcher
        if launcher is not None:
            try:
                launcher.stop()
            finally:
                launcher.write_evidence()

    def _relaunched(self, ready: dict[str, Any]) -> None:
        """Reconnect after the till came back (drivers override)."""

    def kill(self) -> None:
        if self.launcher is None:
            power = _power(dict(self.spec.options or {}))
            if power is None:
                super().kill()          # TillCannot("lifecycle")
                return
            power.off()                 # a physical till: its power through labgrid
            self._power_cut = power
            return
        self.launcher.kill()

    def restart(self) -> None:
        if self.launcher is None:
            power = getattr(self, "_power_cut", None) or _power(dict(self.spec.options or {}))
            if power is None:
                super().restart()
                return
            power.on()
            self._power_cut = None
            self._await_boot()
            return
        self.launcher.stop()
        self._relaunched(self.launcher.start())

    def _await_boot(self) -> None:
        """A physical till after its power came back: reconnect until it answers (`ready_timeout`, default 120 s)."""
        timeout = float((self.spec.options or {}).get("ready_timeout", 4 * DEFAULT_READY_TIMEOUT))
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._relaunched({})
                return
            except Exception as exc:  # noqa: BLE001 - still booting: refused, reset, not yet healthy
                if time.monotonic() > deadline:
                    raise TillStartError(f"till {self.name!r} did not answer within {timeout:g}s after its power "
                                         f"came back through labgrid: {exc}") from exc
                time.sleep(1.0)

    def capabilities(self) -> frozenset[str]:
        caps = super().capabilities()
        options = self.spec.options or {}
        return caps | {"lifecycle"} if options.get("launch") or options.get("labgrid_power") else caps

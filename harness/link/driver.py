"""The harness side of a faultable link: starts the engine process, installs the NFQUEUE rules, arms faults.

`EmulatedLink` (namespaces) and `BenchLink` (physical bridge) only differ in where the engine runs and which
packets their iptables rules send to it; everything else is here.

>>> with link.inject("drop", stage="0210", direction="host->terminal") as fault:
...     till.sell(...)                      # the 0210 never reaches the terminal, nor do its retransmissions
>>> fault.fired[0]["packet"]                # the packet number in link-terminal-host.pcapng
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from harness.link import Link
from harness.link.faults import EVERY, FaultError, FaultSpec

log = logging.getLogger(__name__)

READY_TIMEOUT = 15.0
WATCHDOG_S = 3.0             # an engine silent this long is killed, so the queue goes and traffic passes


class LinkError(RuntimeError):
    """The link engine could not be started or controlled; the message says what to check."""


class FaultNotFired(AssertionError):
    """A fault was armed but its stage never came: the scenario did not test what it claims."""


class ResetNotTaken(AssertionError):
    """A forged RST was not accepted by its receiver (its socket stayed open)."""


class Fault:
    """An armed fault: when it was armed, when and on which packet it fired, what the receivers did.

    Usable as a context manager: the fault is cleared on exit, and exiting without an exception raises
    `FaultNotFired` if it never fired, `ResetNotTaken` if a forged reset was refused.
    """

    def __init__(self, link: EngineLink, fid: int, spec: FaultSpec, required: bool = True):
        self.link = link
        self.id = fid
        self.spec = spec
        self.required = required
        self.armed_at: float | None = None
        self.fired: list[dict[str, Any]] = []
        self.released: list[dict[str, Any]] = []
        self.verified: list[dict[str, Any]] = []
        self.cleared_at: float | None = None

    def __repr__(self) -> str:
        return f"<Fault #{self.id} {self.spec.describe()} on {self.link.name}: fired {len(self.fired)}x>"

    def wait_fired(self, timeout: float = 5.0, times: int = 1) -> dict[str, Any]:
        """Block until the fault fired `times` times; return the last firing. Raises FaultNotFired."""
        self.link._wait(lambda: len(self.fired) >= times, timeout)
        if len(self.fired) < times:
            raise FaultNotFired(self.never_fired_message())
        return self.fired[times - 1]

    def wait_verified(self, timeout: float = 5.0) -> list[dict[str, Any]]:
        """RST fault: wait until every forged reset was checked; raise ResetNotTaken unless all were taken."""
        self.wait_fired(timeout)
        # A refused connect has no socket to probe: only resets with an expected sequence number are checked.
        expected = len([r for r in self.fired[-1].get("resets", []) if "expected" in r])
        self.link._wait(lambda: len(self.verified) >= expected, timeout)
        bad = [v for v in self.verified if not v["taken"]]
        if bad or len(self.verified) < expected:
            details = "; ".join(v["detail"] for v in bad) or "no answer to the liveness probe"
            raise ResetNotTaken(f"link {self.link.name}: fault #{self.id} {self.spec.describe()}: "
                                f"forged reset not taken: {details} (capture: {self.link.pcap_path})")
        return self.verified

    def never_fired_message(self) -> str:
        s = self.spec
        seen = self.link.seen()
        where = s.direction or " or ".join(seen) or "either direction"
        stage = s.stage or "arming"
        if s.direction:
            counts = seen.get(s.direction, {})
        else:
            counts = {}
            for per_dir in seen.values():
                for k, v in per_dir.items():
                    counts[k] = counts.get(k, 0) + v
        got = counts.get(s.stage, 0) if s.stage not in (None, "any") else sum(counts.values())
        if got and s.occurrence != EVERY:
            why = f"only {got} {stage} seen on {self.link.name} ({where}), wanted #{s.occurrence}"
        else:
            why = f"no {stage} seen on {self.link.name} ({where})"
        others = ", ".join(f"{d}: " + " ".join(f"{k}x{v}" for k, v in c.items()) for d, c in seen.items())
        return (f"link {self.link.name}: fault #{self.id} '{s.describe()}' armed, never fired: {why}; "
                f"the link saw {others or 'no messages'} (capture: {self.link.pcap_path})")

    def clear(self) -> None:
        self.link.clear(self)

    def record(self) -> dict[str, Any]:
        return {"id": self.id, "link": self.link.name, "spec": self.spec.to_json(),
                "describe": self.spec.describe(), "required": self.required, "armed_at": self.armed_at,
                "fired": self.fired,
                "released": self.released, "verified": self.verified, "cleared_at": self.cleared_at}

    def __enter__(self) -> Fault:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None and self.required:
                if not self.fired:
                    self.wait_fired(timeout=0.5)
                if self.spec.action == "rst":
                    self.wait_verified(timeout=self.spec.param("verify_ms") / 1000.0 + 2.0)
        finally:
            self.clear()


class EngineLink(Link):
    """A link whose packets cross an NFQUEUE engine process. Subclasses say where and which packets."""

    close_timeout = 10.0

    def __init__(self, spec: Any, ctx: Any, **bound: Any):
        super().__init__(spec, ctx, **bound)
        self.proc: subprocess.Popen | None = None
        self.queue: int | None = None
        self.faults: list[Fault] = []
        self.events: list[dict[str, Any]] = []
        self.final: dict[str, Any] | None = None
        self._status: dict[str, Any] | None = None
        self._cond = threading.Condition()
        self._next_id = 1
        self._reader: threading.Thread | None = None
        self._rules_installed = False
        self._closed = False
        self._pong = False
        self._closing = threading.Event()
        self._watchdog: threading.Thread | None = None
        safe = self.name.replace("/", "_")
        self.pcap_path: Path = ctx.evidence.file(f"link-{safe}.pcapng", f"all traffic on link {self.name}, "
                                                 "faults marked as packet comments", "application/x-pcapng")
        self.fault_log_path: Path = ctx.evidence.file(f"link-{safe}-faults.json",
                                                      f"faults armed and fired on link {self.name}")
        self._config_path = ctx.evidence.file(f"link-{safe}-engine.json",
                                              f"engine configuration of {self.name}")
        self._log_path = ctx.evidence.file(f"link-{safe}-engine.log", f"engine log of {self.name}")

    # -- what subclasses provide -------------------------------------------------------------------
    def engine_config(self) -> dict[str, Any]:
        """Ends, addresses (ip -> end), server end, ports, bridged, queue range. Subclasses extend."""
        config = {"link": self.name, "ends": list(self.spec.ends), "ports": dict(self.spec.ports),
                  "server": self.server_end(), "pcap": str(self.pcap_path)}
        for key in ("max_queue", "realtime"):           # tuning and tests: DeviceContext.extra["link_<key>"]
            if f"link_{key}" in self.ctx.extra:
                config[key] = self.ctx.extra[f"link_{key}"]
        return config

    def install_rules(self, queue: int) -> None:
        raise NotImplementedError

    def remove_rules(self) -> None:
        raise NotImplementedError

    def popen(self, cmd: list[str], **kwargs: Any) -> subprocess.Popen:
        ns = self.ctx.namespace
        if ns is not None:
            return ns.popen(cmd, **kwargs)
        from harness.core.process import spawn

        return spawn(cmd, **kwargs)

    def server_end(self) -> str:
        """The end that listens on the link's ports (its device address carries one of them)."""
        ports = set(self.spec.ports.values())
        for end in self.spec.ends:
            dev = self.ctx.rig.devices.get(end)
            addr = getattr(dev, "address", None) or ""
            if ":" in addr and addr.rsplit(":", 1)[1].isdigit() and int(addr.rsplit(":", 1)[1]) in ports:
                return end
        return self.spec.ends[1]

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        config = self.engine_config()
        self._config_path.write_text(json.dumps(config, indent=2))
        log_fh = open(self._log_path, "ab")
        try:
            self.proc = self.popen([sys.executable, "-m", "harness.link.engine", str(self._config_path)],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_fh)
        finally:
            log_fh.close()
        self._reader = threading.Thread(target=self._read_events, name=f"link-{self.name}-events",
                                        daemon=True)
        self._reader.start()
        ready = self._wait_event("ready", READY_TIMEOUT)
        if ready is None:
            errors = [e.get("message") for e in self.events if e["ev"] == "error"]
            self.close()
            raise LinkError(f"link {self.name}: engine did not start within {READY_TIMEOUT:.0f}s: "
                            f"{'; '.join(errors) or 'no answer'} (log: {self._log_path})")
        self.queue = ready["queue"]
        try:
            self.install_rules(self.queue)
            self._rules_installed = True
            for fault in getattr(self.spec, "faults", None) or ():    # faults the rig arms for the whole run
                self.arm(fault)
        except BaseException:
            self.close()
            raise
        self._watchdog = threading.Thread(target=self._watch, name=f"link-{self.name}-watchdog", daemon=True)
        self._watchdog.start()

    def _watch(self) -> None:
        """Fail-open for a hung engine: one that stops answering is killed; --queue-bypass does the rest."""
        interval = float(self.ctx.extra.get("link_watchdog_s", WATCHDOG_S))
        while not self._closed and self.engine_alive:
            if self._closing.wait(interval) or not self.engine_alive:
                return
            with self._cond:
                self._pong = False
            with contextlib.suppress(LinkError):
                self._send({"op": "status"})
            if not self._wait(lambda: self._pong or self._closed, interval) and self.engine_alive:
                message = (f"engine unanswering for {interval:g}s: killed so the link fails open "
                           f"(traffic passes unfaulted from now)")
                log.error("link %s: %s", self.name, message)
                with self._cond:
                    self.events.append({"ev": "error", "message": message, "t": time.time()})
                self.kill_engine()
                return

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        if self._watchdog is not None and self._watchdog is not threading.current_thread():
            self._watchdog.join(timeout=2)
        errors = []
        if self._rules_installed:
            try:
                self.remove_rules()
            except Exception as exc:  # noqa: BLE001 - reported below, the engine must still stop
                errors.append(f"removing rules: {exc}")
            self._rules_installed = False
        self._stop_engine()
        self._write_fault_log()
        unfired = [f for f in self.faults if f.required and not f.fired and f.cleared_at is None]
        if errors:
            raise LinkError(f"link {self.name}: " + "; ".join(errors))
        if unfired:
            raise FaultNotFired("; ".join(f.never_fired_message() for f in unfired))

    def _stop_engine(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                proc.stdin.write(b'{"op": "stop"}\n')
                proc.stdin.flush()
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=3)
        with contextlib.suppress(OSError):
            proc.stdin.close()
        if self._reader is not None:
            self._reader.join(timeout=2)
        with contextlib.suppress(OSError):
            proc.stdout.close()

    @property
    def engine_alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill_engine(self) -> None:
        """SIGKILL the engine (to prove fail-open: the queue goes away and traffic keeps flowing)."""
        if self.engine_alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "ends": list(self.spec.ends), "ports": dict(self.spec.ports),
                "queue": self.queue, "pcap": str(self.pcap_path), "fault_log": str(self.fault_log_path)}

    # -- faults ------------------------------------------------------------------------------------
    def inject(self, action: str | FaultSpec, stage: str | None = None, direction: str | None = None,
               occurrence: int | str = 1, *, stan: str | None = None, required: bool = True,
               **params: Any) -> Fault:
        """Arm a fault; returns a `Fault` (also a context manager). `occurrence`: 1 = first, N = nth, "every".

        >>> link.inject("hold", stage="0210", direction="host->terminal", ms=800)
        >>> link.inject("rst", stage="zvt:04 0F", to="both")
        >>> link.inject("blackhole", ms=300)            # no stage: from now, both directions
        >>> link.inject("drop", stage="0210", stan="000123")   # only the answer to that request
        """
        if isinstance(action, FaultSpec):
            spec = action
        else:
            if occurrence == "first":
                occurrence = 1
            spec = FaultSpec(action=action, stage=stage, direction=direction, occurrence=occurrence,
                             params={k: v for k, v in params.items() if v is not None}, stan=stan)
        self._check(spec)
        return self._arm(spec, required)

    def arm(self, spec: str | dict[str, Any] | FaultSpec, required: bool = True) -> Fault:
        """Arm a fault given as text ("drop 0210 host->terminal"), a dict (from a rig file) or a FaultSpec."""
        if isinstance(spec, str):
            spec = FaultSpec.parse(spec)
        elif isinstance(spec, dict):
            spec = FaultSpec(**{"occurrence": 1, **spec})
        self._check(spec)
        return self._arm(spec, required)

    def _check(self, spec: FaultSpec) -> None:
        to = spec.params.get("to")
        if spec.action == "rst" and to not in (None, "both", "sender", "receiver", *self.spec.ends):
            raise FaultError(f"rst to={to!r}: use both, sender, receiver, or an end of link {self.name}: "
                             f"{', '.join(self.spec.ends)}")
        if spec.direction is None:
            return
        a, _, b = spec.direction.partition("->")
        ends = set(self.spec.ends)
        if {a, b} != ends:
            raise FaultError(f"direction {spec.direction!r} is not a direction of link {self.name}; use "
                             f"'{self.spec.ends[0]}->{self.spec.ends[1]}' or "
                             f"'{self.spec.ends[1]}->{self.spec.ends[0]}'")

    def _arm(self, spec: FaultSpec, required: bool) -> Fault:
        if not self.spec.faultable:
            raise FaultError(f"link {self.name} is 'faultable: false' in {self.ctx.rig.path}: it is watched "
                             f"(captured, stages counted) but not faulted; cannot arm {spec.describe()}")
        if not self.engine_alive:
            raise LinkError(f"link {self.name}: the engine is not running; cannot arm {spec.describe()}")
        with self._cond:
            fault = Fault(self, self._next_id, spec, required)
            self._next_id += 1
            self.faults.append(fault)
        self._send({"op": "arm", "id": fault.id, "spec": spec.to_json()})
        self._wait(lambda: fault.armed_at is not None, 5.0)
        if fault.armed_at is None:
            raise LinkError(f"link {self.name}: engine did not confirm arming {spec.describe()}")
        return fault

    def clear(self, fault: Fault | None = None) -> None:
        """Disarm one fault (or all): ongoing blackholes end, held packets are let through."""
        targets = [fault] if fault is not None else [f for f in self.faults if f.cleared_at is None]
        for f in targets:
            if f.cleared_at is None and self.engine_alive:
                self._send({"op": "clear", "id": f.id})
                self._wait(lambda f=f: f.cleared_at is not None, 5.0)
            if f.cleared_at is None:
                f.cleared_at = time.time()

    def status(self, timeout: float = 5.0) -> dict[str, Any]:
        """Engine counters: packets, accepted, dropped, held, injected; stages seen per direction."""
        if not self.engine_alive:
            return self.final or {}
        with self._cond:
            self._status = None
        self._send({"op": "status"})
        self._wait(lambda: self._status is not None, timeout)
        return self._status or {}

    def capture(self) -> Path:
        """The pcapng of everything that crossed the link so far (flushed), faults marked as comments."""
        self.status()
        return self.pcap_path

    def seen(self) -> dict[str, dict[str, int]]:
        """Messages seen so far per direction and stage, e.g. {"terminal->host": {"0200": 1}}."""
        if self.engine_alive:
            return self.status().get("seen", {})
        return (self.final or {}).get("seen", {})

    # -- engine I/O --------------------------------------------------------------------------------
    def _send(self, msg: dict[str, Any]) -> None:
        try:
            self.proc.stdin.write((json.dumps(msg) + "\n").encode())
            self.proc.stdin.flush()
        except (OSError, ValueError) as exc:
            raise LinkError(f"link {self.name}: engine is gone ({exc}); see {self._log_path}") from None

    def _wait(self, predicate: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def _wait_event(self, name: str, timeout: float) -> dict[str, Any] | None:
        found: list[dict[str, Any]] = []

        def check() -> bool:
            found[:] = [e for e in self.events if e["ev"] == name]
            return bool(found) or (self.proc is not None and self.proc.poll() is not None
                                   and not self._reader.is_alive())

        self._wait(check, timeout)
        return found[0] if found else None

    def _read_events(self) -> None:
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                log.warning("link %s: unreadable engine output %r", self.name, line[:200])
                continue
            with self._cond:
                self._dispatch(ev)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _dispatch(self, ev: dict[str, Any]) -> None:
        kind = ev["ev"]
        if kind not in ("status",):
            self.events.append(ev)
        fault = next((f for f in self.faults if f.id == ev.get("id")), None)
        if kind == "armed" and fault:
            fault.armed_at = ev["t"]
        elif kind == "fired" and fault:
            fault.fired.append(ev)
        elif kind == "released" and fault:
            fault.released.append(ev)
        elif kind == "verified" and fault:
            fault.verified.append(ev)
        elif kind == "cleared" and fault:
            fault.cleared_at = ev["t"]
        elif kind == "status":
            self._status = ev
            self._pong = True
        elif kind == "stopped":
            self.final = ev
        elif kind == "error":
            log.error("link %s engine: %s", self.name, ev.get("message"))

    def _write_fault_log(self) -> None:
        record = {"link": self.name, "ends": list(self.spec.ends), "ports": dict(self.spec.ports),
                  "queue": self.queue, "pcap": str(self.pcap_path),
                  "markers": "faulted packets carry pcapng comments starting 'posrig:'",
                  "faults": [f.record() for f in self.faults],
                  "engine": self.final, "errors": [e for e in self.events if e["ev"] == "error"]}
        self.ctx.evidence.write_json(self.fault_log_path.name, record)

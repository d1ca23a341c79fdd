"""The harness side of a faultable link: runs the engine process, installs the NFQUEUE rules, arms faults.

`EmulatedLink` (namespaces) and `BenchLink` (physical bridge) only differ in where the engine runs and which
packets their iptables rules send to it; everything else is here. The engine is a supervised child
(`harness.core.process.Child`): control lines go to its stdin, its events come back typed
(`harness.link.faults.FaultFired` and the others) onto the `Fault` they concern. On an emulated topology the
engine is kept warm across benches (`harness.link.warm`): a closing link parks it, the next bench's link adopts
and resets it, so each scenario still gets its own capture, fault log, events and stage counts.

>>> with link.inject("drop", stage="0210", direction="host->terminal") as fault:    # doctest: +SKIP
...     till.sell(...)                      # the 0210 never reaches the terminal, nor do its retransmissions
>>> fault.fired[0].packet                   # doctest: +SKIP
17
>>> fault.events()[1].what                  # doctest: +SKIP
'FIRED drop 0210 host->terminal first on packet #17'
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.core.address import port_of
from harness.core.events import Event
from harness.core.process import Child, ChildFailed
from harness.link import Link
from harness.link import warm as warm_engines
from harness.link.faults import (
    EVERY,
    FaultArmed,
    FaultCleared,
    FaultError,
    FaultEvent,
    FaultFired,
    FaultReleased,
    FaultSpec,
    OutageEnded,
    ResetVerified,
    fault_event,
)
from harness.protocols import stages
from harness.protocols.stages import ANY

log = logging.getLogger(__name__)

READY_TIMEOUT = 15.0         # s of the engine's own time to say ready (its waits for a CPU not counted) ...
READY_MAX_WAIT = 60.0        # ... and at most this long in all, however loaded the machine
STOP_TIMEOUT = 3.0           # an engine told to stop has this long before it is killed
WATCHDOG_S = 3.0             # an engine silent this long is killed, so the queue goes and traffic passes


ENGINE_PRELOAD = "harness.link.engine,netfilterqueue"   # what the fork server imports once (harness.core.forkserver)


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
        self.fired: list[FaultFired] = []
        self.released: list[FaultReleased] = []
        self.verified: list[ResetVerified] = []
        self.outages_ended: list[OutageEnded] = []
        self.cleared_at: float | None = None

    def __repr__(self) -> str:
        return f"<Fault #{self.id} {self.spec.describe()} on {self.link.name}: fired {len(self.fired)}x>"

    def wait_fired(self, timeout: float = 5.0, times: int = 1) -> FaultFired:
        """Block until the fault fired `times` times; return the last firing. Raises FaultNotFired."""
        self.link._wait(lambda: len(self.fired) >= times, timeout)
        if len(self.fired) < times:
            raise FaultNotFired(self.never_fired_message())
        return self.fired[times - 1]

    def wait_verified(self, timeout: float = 5.0) -> list[ResetVerified]:
        """RST fault: wait until every forged reset was checked; raise ResetNotTaken unless all were taken."""
        self.wait_fired(timeout)
        expected = self.resets_to_verify()
        self.link._wait(lambda: len(self.verified) >= expected, timeout)
        bad = [v for v in self.verified if not v.taken]
        if bad or len(self.verified) < expected:
            details = "; ".join(v.detail for v in bad) or "no answer to the liveness probe"
            raise ResetNotTaken(f"link {self.link.name}: fault #{self.id} {self.spec.describe()}: "
                                f"forged reset not taken: {details} (capture: {self.link.pcap_path})")
        return self.verified

    def prove(self, timeout: float = 1.0) -> None:
        """Raise FaultNotFired unless the fault fired, and for a reset ResetNotTaken unless every forged reset was
        taken by its receiver: a fault that never hit proves nothing."""
        self.wait_fired(timeout)
        if self.spec.action == "rst":
            self.wait_verified(timeout=self.spec.param("verify_ms") / 1000.0 + 2.0)

    def resets_to_verify(self) -> int:
        """Forged resets of the last firing that a liveness probe checks (a refused connect has no socket to
        probe: only resets with an expected sequence number are checked)."""
        return len([r for r in self.fired[-1].resets if r.get("expected") is not None]) if self.fired else 0

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
        got = counts.get(s.stage, 0) if s.stage not in (None, ANY.name) else sum(counts.values())
        if got and s.occurrence != EVERY:
            why = f"only {got} {stage} seen on {self.link.name} ({where}), wanted #{s.occurrence}"
        else:
            why = f"no {stage} seen on {self.link.name} ({where})"
        others = ", ".join(f"{d}: " + " ".join(f"{k}x{v}" for k, v in c.items()) for d, c in seen.items())
        return (f"link {self.link.name}: fault #{self.id} '{s.describe()}' armed, never fired: {why}; "
                f"the link saw {others or 'no messages'} (capture: {self.link.pcap_path})")

    def clear(self) -> None:
        self.link.clear(self)

    def events(self) -> list[Event]:
        """What happened to this fault, in time order, for a report's timeline: armed, FIRED on packet #n,
        released, reset taken (or not), outage over, cleared."""
        source, d = f"link {self.link.name}", self.spec.describe()
        out = []
        if self.armed_at is not None:
            out.append(Event(self.armed_at, source, f"armed {d}", {"fault": self.id}))
        for shot in self.fired:
            where = f"on packet #{shot.packet}" if shot.packet is not None else "when armed (no stage)"
            out.append(Event(shot.t, source, f"FIRED {d} {where}", shot.to_json()))
        for r in self.released:
            out.append(Event(r.t, source, f"released {r.packets} packet(s) held {r.held_ms:g} ms by {d}",
                             r.to_json()))
        for v in self.verified:
            said = {True: "taken", False: "NOT taken", None: "unanswered"}[v.taken]
            out.append(Event(v.t, source, f"reset to {v.end} {said} ({d})", v.to_json()))
        for o in self.outages_ended:
            out.append(Event(o.t, source, f"outage over ({d})", {"fault": self.id}))
        if self.cleared_at is not None:
            out.append(Event(self.cleared_at, source, f"cleared {d}", {"fault": self.id}))
        return sorted(out, key=lambda e: e.t)

    def record(self) -> dict[str, Any]:
        """Everything about this fault, JSON-ready (the link's fault log)."""
        return {"id": self.id, "link": self.link.name, "spec": self.spec.to_json(),
                "describe": self.spec.describe(), "required": self.required, "armed_at": self.armed_at,
                "fired": [e.to_json() for e in self.fired],
                "released": [e.to_json() for e in self.released],
                "verified": [e.to_json() for e in self.verified], "cleared_at": self.cleared_at}

    def _take(self, ev: FaultEvent) -> None:
        """Account one event from the engine (called by the link's reader, under its lock)."""
        if isinstance(ev, FaultArmed):
            self.armed_at = ev.t
        elif isinstance(ev, FaultFired):
            self.fired.append(ev)
        elif isinstance(ev, FaultReleased):
            self.released.append(ev)
        elif isinstance(ev, ResetVerified):
            self.verified.append(ev)
        elif isinstance(ev, OutageEnded):
            self.outages_ended.append(ev)
        elif isinstance(ev, FaultCleared):
            self.cleared_at = ev.t

    def __enter__(self) -> Fault:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None and self.required:
                self.prove(timeout=0.5)
        finally:
            self.clear()


class EngineLink(Link):
    """A link whose packets cross an NFQUEUE engine process. Subclasses say where and which packets."""

    close_timeout = 10.0
    warm_capable = False          # subclasses whose engine may be kept across benches (see harness.link.warm)

    def __init__(self, spec: Any, ctx: Any, **bound: Any):
        super().__init__(spec, ctx, **bound)
        self.engine: Child | None = None
        self.queue: int | None = None
        self.faults: list[Fault] = []
        self.errors: list[dict[str, Any]] = []      # engine error lines, and the watchdog's if it killed it
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
        self.warm: warm_engines.WarmEngine | None = None    # the kept engine this link adopted or started
        self._reset_epoch: int | None = None
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
        tls = getattr(self.spec, "tls", None)
        if tls is not None and tls.mode == "passthrough":   # stages from TLS record structure on these ports
            config["tls"] = {"ports": sorted(self.spec.ports.values()), "mode": tls.mode,
                             "tickets": list(tls.tickets)}
        for key in ("max_queue", "realtime"):           # tuning and tests: DeviceContext.extra["link_<key>"]
            if f"link_{key}" in self.ctx.extra:
                config[key] = self.ctx.extra[f"link_{key}"]
        return config

    def install_rules(self, queue: int) -> None:
        raise NotImplementedError

    def remove_rules(self) -> None:
        raise NotImplementedError

    def server_end(self) -> str:
        """The end that listens on the link's ports (its device address carries one of them)."""
        ports = set(self.spec.ports.values())
        for end in self.spec.ends:
            dev = self.ctx.rig.devices.get(end)
            if port_of(getattr(dev, "address", None), -1) in ports:
                return end
        return self.spec.ends[1]

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        config = self.engine_config()
        self._config_path.write_text(json.dumps(config, indent=2))
        pool = self._pool()
        key = json.dumps({k: v for k, v in config.items() if k != "pcap"}, sort_keys=True)
        if pool is not None:
            kept = pool.take(key, self.name)
            if kept is not None and self._adopt(pool, kept):
                self._started()
                return
        self.engine = Child(f"link {self.name} engine",
                            [sys.executable, "-m", "harness.link.engine", str(self._config_path)],
                            namespace=self.ctx.namespace, stdin=True, preload=ENGINE_PRELOAD,
                            log=self._log_path if pool is None else warm_engines.engine_log(self.name))
        try:
            ready = self.engine.start(READY_TIMEOUT, max_wait=READY_MAX_WAIT)
        except ChildFailed as exc:
            if pool is not None:
                with contextlib.suppress(OSError):
                    self.engine.log.unlink()                # a warm engine's own log: its tail is in the message
            self.close()
            raise LinkError(str(exc)) from None             # names the engine, says why, ends with its log
        self.queue = ready.get("queue")
        if pool is None:
            self._reader = threading.Thread(target=self._read_events, name=f"link-{self.name}-events",
                                            daemon=True)
            self._reader.start()
        else:
            self.warm = warm_engines.WarmEngine(pool, self.name, key, self.engine, self.queue, None)
            self.warm.owner = self
            pool.add(self.warm)
        try:
            self.install_rules(self.queue)
        except BaseException:
            self._rules_installed = True                   # whatever went in goes now, with the engine
            if self.warm is not None:
                self.warm.pool.discard(self.warm)
                self.warm = None
            self.close()
            raise
        if self.warm is not None:
            self.warm.rules = self.warm_rules()            # they stay with the warm engine
        else:
            self._rules_installed = True
        self._started()

    def _started(self) -> None:
        """Arm the rig's standing faults and start the watchdog (fresh or adopted engine alike)."""
        try:
            for fault in getattr(self.spec, "faults", None) or ():    # faults the rig arms for the whole run
                self.arm(fault)
        except BaseException:
            self.close()
            raise
        self._watchdog = threading.Thread(target=self._watch, name=f"link-{self.name}-watchdog", daemon=True)
        self._watchdog.start()

    # -- warm engines (harness.link.warm) ------------------------------------------------------------
    def _pool(self) -> warm_engines.WarmPool | None:
        """The topology's pool of warm engines, or None when this link starts and stops its own engine."""
        if not self.warm_capable or not warm_engines.warm_enabled() or not self.ctx.extra.get("link_warm", True):
            return None
        return warm_engines.pool_of(getattr(self.ctx.network, "topology", None))

    def warm_rules(self) -> Any:
        """The installed rules as an object with `.remove()`, handed to the warm engine. Subclasses provide."""
        raise NotImplementedError

    def adopt_rules(self, rules: Any) -> None:
        """Take the warm engine's rules as this link's (for `identity`, tests); they are not removed at close."""

    def _adopt(self, pool: warm_engines.WarmPool, kept: warm_engines.WarmEngine) -> bool:
        """Take over a parked engine: tell it to reset to a clean slate writing this scenario's capture, and
        listen to it only from its reset line on. False (engine discarded) if it does not confirm in time."""
        self.engine, self.queue, self.warm = kept.child, kept.queue, kept
        kept.epoch += 1
        epoch = kept.epoch
        kept.owner = self
        try:
            kept.child.send({"op": "reset", "epoch": epoch, "pcap": str(self.pcap_path)})
            ok = self._wait(lambda: self._reset_epoch == epoch or not kept.child.alive, 5.0)
            ok = ok and self._reset_epoch == epoch
        except OSError:
            ok = False
        if not ok:
            log.warning("link %s: warm engine did not confirm its reset; starting a fresh one", self.name)
            pool.discard(kept)
            kept.owner = None
            self.engine, self.queue, self.warm, self.final = None, None, None, None
            with self._cond:
                self.errors.clear()
            return False
        kept.scenarios += 1
        kept.skip_log()
        self.adopt_rules(kept.rules)
        return True

    def _hand_back(self) -> list[str]:
        """End the scenario on the warm engine (park: held packets let go, capture closed, final figures) and
        give it back to the pool, or discard it if it erred, died or did not answer."""
        kept = self.warm
        ok = False
        if kept.child.alive and not self.errors:
            with self._cond:
                self.final = None
            try:
                kept.child.send({"op": "park"})
                ok = self._wait(lambda: self.final is not None or not kept.child.alive, STOP_TIMEOUT)
                ok = ok and self.final is not None and not self.errors
            except OSError:
                ok = False
        if ok:
            self._keep_log(kept)
            kept.owner = None
            kept.pool.give_back(kept)
            return []
        errors = kept.pool.discard(kept)          # its "stopped" line still reaches this link
        self._keep_log(kept)
        kept.owner = None
        with contextlib.suppress(OSError):
            kept.child.log.unlink()
        return errors

    def _keep_log(self, kept: warm_engines.WarmEngine) -> None:
        """This scenario's part of the warm engine's log, as its evidence."""
        header = (f"# warm engine pid {kept.child.pid}, scenario {kept.scenarios + 1} on it; "
                  f"its log from this scenario's start\n").encode()
        with contextlib.suppress(OSError):
            self._log_path.write_bytes(header + kept.log_since())

    def _on_line(self, line: dict[str, Any] | None) -> None:
        """One engine line (None: its output ended), from this link's reader or the warm engine's."""
        with self._cond:
            if line is not None:
                self._dispatch(line)
            self._cond.notify_all()

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
                    self.errors.append({"message": message, "t": time.time()})
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
        if self.warm is not None:
            errors += self._hand_back()
        if self._rules_installed:
            try:
                self.remove_rules()
            except Exception as exc:  # noqa: BLE001 - reported below, the engine must still stop
                errors.append(f"removing rules: {exc}")
            self._rules_installed = False
        if self.warm is None:
            self._stop_engine()
        self._write_fault_log()
        unfired = [f for f in self.faults if f.required and not f.fired and f.cleared_at is None]
        if errors:
            raise LinkError(f"link {self.name}: " + "; ".join(errors))
        if unfired:
            raise FaultNotFired("; ".join(f.never_fired_message() for f in unfired))

    def _stop_engine(self) -> None:
        """Ask the engine to stop (it lets held packets go and closes the capture), kill it if it does not."""
        engine = self.engine
        if engine is None:
            return
        if engine.alive:
            with contextlib.suppress(OSError):
                engine.send({"op": "stop"})
            if self._reader is not None:
                self._reader.join(timeout=STOP_TIMEOUT)     # its output ends when it exits
        engine.stop(timeout=STOP_TIMEOUT)
        if self._reader is not None:
            self._reader.join(timeout=2)

    @property
    def engine_alive(self) -> bool:
        """The engine runs for this link (a warm engine handed back serves the next bench, not this link)."""
        if self.warm is not None and self._closed:
            return False
        return self.engine is not None and self.engine.alive

    def kill_engine(self) -> None:
        """SIGKILL the engine (to prove fail-open: the queue goes away and traffic keeps flowing)."""
        if self.engine is not None and not (self.warm is not None and self._closed):
            self.engine.kill()

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "ends": list(self.spec.ends), "ports": dict(self.spec.ports),
                "queue": self.queue, "pcap": str(self.pcap_path), "fault_log": str(self.fault_log_path)}

    # -- faults ------------------------------------------------------------------------------------
    def inject(self, action: str | FaultSpec, stage: str | None = None, direction: str | None = None,
               occurrence: int | str = 1, *, stan: str | None = None, required: bool = True,
               **params: Any) -> Fault:
        """Arm a fault; returns a `Fault` (also a context manager). `occurrence`: 1 = first, N = nth, "every".

        >>> link.inject("hold", stage="0210", direction="host->terminal", ms=800)      # doctest: +SKIP
        >>> link.inject("rst", stage="zvt:04 0F", to="both")                          # doctest: +SKIP
        >>> link.inject("blackhole", ms=300)            # no stage: from now, both directions  # doctest: +SKIP
        >>> link.inject("drop", stage="0210", stan="000123")   # only the answer to that request  # doctest: +SKIP
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

    def over_tls(self, spec: FaultSpec) -> FaultSpec:
        """On a TLS passthrough link, an ISO 8583 stage becomes its TLS stage by order (0200 request#1, 0210
        response#1, 0420 request#2, 0430 response#2: `harness.protocols.stages.over_tls`), so a matrix or test
        written for plaintext arms the same message over TLS. Other links: `spec` unchanged."""
        tls = getattr(self.spec, "tls", None)
        if tls is None or tls.mode != "passthrough" or spec.stage is None:
            return spec
        if spec.stan is not None:
            raise FaultError(f"{spec.describe()}: link {self.name} carries TLS without posrig holding the keys; "
                             f"a STAN cannot be read there: leave stan= out")
        try:
            return replace(spec, stage=stages.over_tls(spec.stage))
        except stages.StageError as exc:
            raise FaultError(f"link {self.name}: {exc}") from None

    def _arm(self, spec: FaultSpec, required: bool) -> Fault:
        spec = self.over_tls(spec)
        if not self.spec.faultable:
            raise FaultError(f"link {self.name} is 'faultable: false' in {self.ctx.rig.path}: it is watched "
                             f"(captured, stages counted) but not faulted; cannot arm {spec.describe()}")
        if not self.engine_alive:
            raise LinkError(f"link {self.name}: the engine is not running; cannot arm {spec.describe()}")
        with self._cond:
            fault = Fault(self, self._next_id, spec, required)
            self._next_id += 1
            self.faults.append(fault)
        self._send({"op": "arm", "fault": fault.id, "spec": spec.to_json()})
        self._wait(lambda: fault.armed_at is not None, 5.0)
        if fault.armed_at is None:
            raise LinkError(f"link {self.name}: engine did not confirm arming {spec.describe()}")
        return fault

    def clear(self, fault: Fault | None = None) -> None:
        """Disarm one fault (or all): ongoing blackholes end, held packets are let through."""
        targets = [fault] if fault is not None else [f for f in self.faults if f.cleared_at is None]
        for f in targets:
            if f.cleared_at is None and self.engine_alive:
                self._send({"op": "clear", "fault": f.id})
                self._wait(lambda f=f: f.cleared_at is not None, 5.0)
            if f.cleared_at is None:
                f.cleared_at = time.time()

    def events(self) -> list[Event]:
        """Every fault's events on this link, in time order (see `Fault.events`)."""
        return sorted((e for f in self.faults for e in f.events()), key=lambda e: e.t)

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
            self.engine.send(msg)
        except OSError as exc:
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

    def _read_events(self) -> None:
        for line in self.engine.lines():
            self._on_line(line)
        self._on_line(None)

    def _dispatch(self, line: dict[str, Any]) -> None:
        try:
            ev = fault_event(line)
        except FaultError as exc:
            log.warning("link %s: %s", self.name, exc)
            return
        if ev is not None:
            fault = next((f for f in self.faults if f.id == ev.fault), None)
            if fault is not None:
                fault._take(ev)
            return
        kind = line.get("event")
        if kind == "status":
            self._status = line
            self._pong = True
        elif kind in ("stopped", "parked"):
            self.final = line
        elif kind == "reset":
            self._reset_epoch = line.get("epoch")
        elif kind == "error":
            self.errors.append(line)
            log.error("link %s engine: %s", self.name, line.get("message"))
        else:
            log.warning("link %s: unexpected engine output %r", self.name, str(line)[:200])

    def _write_fault_log(self) -> None:
        record = {"link": self.name, "ends": list(self.spec.ends), "ports": dict(self.spec.ports),
                  "queue": self.queue, "pcap": str(self.pcap_path),
                  "markers": "faulted packets carry pcapng comments starting 'posrig:'",
                  "faults": [f.record() for f in self.faults],
                  "engine": self.final, "errors": self.errors}
        if self.warm is not None:
            record["warm"] = {"pid": self.warm.child.pid, "epoch": self.warm.epoch,
                              "scenario_on_engine": self.warm.scenarios + 1}
        self.ctx.evidence.write_json(self.fault_log_path.name, record)

"""Warm link engines: one engine per link per topology, re-armed between scenarios instead of restarted.

Starting an engine (scapy, NetfilterQueue, binding a queue, two iptables rules) costs about half a CPU-second; a
matrix pays it twice per scenario. On an emulated topology that serves many benches (one per xdist worker), a
link's engine is therefore kept: when a bench closes, its `EngineLink` parks the engine (the scenario ends as if
stopped: held packets let go, capture and fault log written) and hands it back to the topology's `WarmPool`; the
next bench's link of the same name and configuration adopts it and tells it to reset (clean slate, new capture).

What a reset guarantees (proven in tests/netns/link/test_warm.py): every fault, outage, drop range, probe and
timer is gone; packets still held are dropped, never delivered; connections are forgotten, stage counts and
packet numbers restart at zero; the capture is the new scenario's file. Events of the old scenario never reach
the new one: the driver drops every engine line until the engine's `reset` line carrying the new epoch.

The NFQUEUE rules stay with the engine while it is warm; the pool removes them and stops its engines when the
topology closes (`Topology.closers`). An engine that died, was killed by the watchdog, reported an error, or did
not answer park or reset is never reused: it is stopped, its rules removed, and the next bench starts a fresh
one. Engines die with the harness as before (`harness.core.process`), and the namespace's rules with the
topology. `POSRIG_LINK_WARM=0` (or a link's `ctx.extra["link_warm"] = False`) starts a fresh engine per bench.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from harness.core.process import Child

log = logging.getLogger(__name__)

STOP_TIMEOUT = 3.0


def engine_log(link: str) -> Path:
    """Where a warm engine's stderr goes: a file of its own, not a scenario's evidence (it outlives the scenario);
    each scenario's evidence gets the part written while it owned the engine (`WarmEngine.log_since`)."""
    fd, path = tempfile.mkstemp(prefix=f"posrig-{os.getpid()}-warm-{link.replace('/', '_')}-", suffix=".log")
    os.close(fd)
    return Path(path)


def warm_enabled() -> bool:
    """Warm engines unless POSRIG_LINK_WARM is 0/no/off."""
    return os.environ.get("POSRIG_LINK_WARM", "1").strip().lower() not in ("0", "no", "off", "false")


class WarmEngine:
    """One running engine kept across benches: its process, queue and rules, and the reader that passes its
    lines to the link currently owning it (only lines of the current epoch)."""

    def __init__(self, pool: WarmPool, link: str, key: str, child: Child, queue: int | None, rules: Any):
        self.pool = pool
        self.link = link
        self.key = key
        self.child = child
        self.queue = queue
        self.rules = rules                    # has .remove(); removed when the engine is discarded
        self.owner: Any = None                # the EngineLink it serves, None while parked
        self.epoch = 0                        # the epoch asked for by the last reset
        self.live_epoch = 0                   # the epoch the engine confirmed (its lines go to the owner)
        self.scenarios = 0
        self.broken = False
        self.log_offset = 0                   # where the current scenario's part of the engine log begins
        self._reader = threading.Thread(target=self._read, name=f"warm-link-{link}-events", daemon=True)
        self._reader.start()

    @property
    def alive(self) -> bool:
        return self.child.alive and not self.broken

    def _read(self) -> None:
        for line in self.child.lines():
            if line.get("event") == "reset":
                self.live_epoch = line.get("epoch", -1)
            owner = self.owner
            if owner is not None and self.live_epoch == self.epoch:
                owner._on_line(line)
            elif line.get("event") == "error":
                log.error("warm link %s engine (parked): %s", self.link, line.get("message"))
        owner = self.owner
        if owner is not None:
            owner._on_line(None)

    def log_since(self) -> bytes:
        """The engine's log from the current scenario's start; the next part starts after it."""
        log_path = self.child.log
        if log_path is None or not log_path.exists():
            return b""
        with open(log_path, "rb") as fh:
            fh.seek(self.log_offset)
            data = fh.read()
        self.log_offset += len(data)
        return data

    def skip_log(self) -> None:
        """What the engine logged while parked belongs to no scenario."""
        log_path = self.child.log
        if log_path is not None and log_path.exists():
            self.log_offset = log_path.stat().st_size

    def stop(self) -> list[str]:
        """Remove the rules, stop the process (it lets held packets go and closes its capture); returns errors."""
        errors = []
        self.broken = True
        if self.rules is not None:
            try:
                self.rules.remove()
            except Exception as exc:  # noqa: BLE001 - reported; the engine must still stop
                errors.append(f"removing rules: {exc}")
        if self.child.alive:
            with contextlib.suppress(OSError):
                self.child.send({"op": "stop"})
            self._reader.join(timeout=STOP_TIMEOUT)
        self.child.stop(timeout=STOP_TIMEOUT)
        self._reader.join(timeout=2)
        if self.owner is None and self.child.log is not None:
            with contextlib.suppress(OSError):
                self.child.log.unlink()
        return errors


class WarmPool:
    """The warm engines of one topology: idle ones by key, busy ones until handed back. `close()` stops all."""

    def __init__(self) -> None:
        self.idle: dict[str, WarmEngine] = {}
        self.busy: set[WarmEngine] = set()
        self.closed = False
        self._lock = threading.Lock()

    def take(self, key: str, link: str) -> WarmEngine | None:
        """An idle live engine for `key` (now busy), or None: start a fresh one and `add` it. Idle engines of the
        same link with another configuration are stopped first: their rules would catch the link's packets."""
        with self._lock:
            warm = self.idle.pop(key, None)
            others = [w for k, w in self.idle.items() if w.link == link]
            for w in others:
                del self.idle[w.key]
            if warm is not None and warm.alive and not self.closed:
                self.busy.add(warm)
                found = warm
            else:
                found, others = None, [*others, *([warm] if warm is not None else [])]
        for w in others:
            w.stop()
        return found

    def add(self, warm: WarmEngine) -> None:
        with self._lock:
            self.busy.add(warm)

    def give_back(self, warm: WarmEngine) -> None:
        """A parked engine, ready for the next bench (stopped instead if dead, broken, or the pool is closed)."""
        with self._lock:
            self.busy.discard(warm)
            keep = (warm.alive and not self.closed and warm.key not in self.idle
                    and not any(w.link == warm.link for w in self.busy))   # another's rules must stay on top
            if keep:
                self.idle[warm.key] = warm
        if not keep:
            warm.stop()

    def discard(self, warm: WarmEngine) -> list[str]:
        """Never reuse this engine: stop it and remove its rules."""
        with self._lock:
            self.busy.discard(warm)
            if self.idle.get(warm.key) is warm:
                del self.idle[warm.key]
        return warm.stop()

    def close(self) -> None:
        """Stop every engine, remove every rule (topology teardown). Idempotent; the pool then takes nothing."""
        with self._lock:
            self.closed = True
            engines = [*self.idle.values(), *self.busy]
            self.idle.clear()
            self.busy.clear()
        errors = []
        for warm in engines:
            errors += warm.stop()
        if errors:
            raise RuntimeError("warm link engines: " + "; ".join(errors))


def pool_of(topology: Any) -> WarmPool | None:
    """The topology's pool of warm engines (made on first use, closed with the topology); None without one."""
    if topology is None or not hasattr(topology, "closers") or getattr(topology, "_closed", False):
        return None
    pool = getattr(topology, "link_pool", None)
    if pool is None or pool.closed:
        pool = WarmPool()
        topology.link_pool = pool
        topology.closers.append(pool.close)
    return pool

"""A bench: every device and link a rig names, for one scenario, started lazily in dependency order.

>>> bench = Bench(rig, evidence, topology)                 # doctest: +SKIP
>>> bench.till.sell([{"sku": "milk", "price": "1.19"}])   # starts printer, host, terminal, till  # doctest: +SKIP
>>> bench.reconcile().violations                          # the oracle, once the bench is quiet  # doctest: +SKIP
[]
>>> bench.close()                                         # newest first, errors collected  # doctest: +SKIP

The bench is the only place that knows the whole rig: it builds each driver with the devices the driver declares
in `bindings` (started first) and a `DeviceContext` saying where it runs. Drivers never reach back into it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from harness.core.device import Device, DeviceContext
from harness.core.events import now
from harness.core.evidence import Evidence
from harness.core.keeper import Keeper
from harness.core.registry import lookup
from harness.core.rig import Rig
from harness.topology import Network, Topology

if TYPE_CHECKING:
    from harness.acceptance.oracle import Reconciliation

log = logging.getLogger(__name__)


class BenchError(RuntimeError):
    """A device could not be built or started; the message names it and its driver."""


class Bench:
    """The devices of one rig for one scenario. Devices start on first use; `close()` stops all of them."""

    def __init__(self, rig: Rig, evidence: Evidence, topology: Topology | None = None, *,
                 keeper: Keeper | None = None, carried: dict[str, Any] | None = None):
        self.rig = rig
        self.keeper = keeper                           # devices kept warm from the previous bench (a till)
        self.carried = carried                         # what a device's next instance starts from (terminal)
        self.evidence = evidence
        self.topology = topology
        self.network = Network(topology)              # where each node runs and how the others reach it
        self._devices: dict[str, Device] = {}
        self._order: list[Device] = []
        self._starting: dict[str, threading.Event] = {}
        self._local = threading.local()
        self._lock = threading.RLock()
        self.t0 = now()                                 # the origin of this bench's timeline
        self.closed = False
        self.expected: list[str] = []                   # what the test expects beyond the invariants

    # -- devices ---------------------------------------------------------------------------------
    def device(self, name: str) -> Device:
        """The started device named `name` in the rig (a device or a link). Safe to call from several threads:
        a device another thread is starting is waited for, never started twice."""
        if self.closed:
            raise BenchError(f"cannot start {name!r}: the bench is closed (its test ended and its devices were closed "
                             f"after the oracle reconciled them)")
        stack = self._local.__dict__.setdefault("stack", [])
        if name in stack:
            raise BenchError(f"dependency cycle while starting {name!r}: {' -> '.join([*stack, name])}")
        with self._lock:
            if name in self._devices:
                return self._devices[name]
            pending = self._starting.get(name)
            if pending is None:
                self._starting[name] = pending = threading.Event()
                mine = True
            else:
                mine = False
        if not mine:
            pending.wait()
            with self._lock:
                if name not in self._devices:
                    raise BenchError(f"{name!r} failed to start in another thread (see the error there)")
                return self._devices[name]
        stack.append(name)
        try:
            spec, kind, node = self._spec(name)
            cls = lookup(kind, spec.driver)
            bound = self._bind(name, cls)
            ctx = DeviceContext(rig=self.rig, evidence=self.evidence, timing=self.rig.timing,
                                namespace=self.network.namespace(node), network=self.network)
            if self.carried is not None:
                ctx.extra["carried"] = self.carried
            if self.keeper is not None:
                ctx.extra["keeper"] = True
            dev = self.keeper.adopt(name, cls, spec, ctx, bound) if self.keeper is not None else None
            if dev is None:
                dev = cls(spec, ctx, **bound)
                try:
                    dev.start()
                except BaseException:
                    _close_quietly(dev)
                    raise
            with self._lock:
                self._devices[name] = dev
                self._order.append(dev)
            return dev
        finally:
            stack.pop()
            with self._lock:
                self._starting.pop(name, None)
            pending.set()

    def start(self, *names: str) -> None:
        """Start several devices (all of the rig's by default) concurrently, so a bench comes up in the time of
        its slowest dependency chain rather than the sum of all. Raises the first start error."""
        errors: list[BaseException] = []

        def run(n: str) -> None:
            try:
                self.device(n)
            except BaseException as exc:  # noqa: BLE001 - re-raised below in the caller's thread
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(n,), name=f"start-{n}")
                   for n in (names or [*self.rig.devices, *self.rig.links])]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    def _bind(self, name: str, cls: type[Device]) -> dict[str, Device | None]:
        """The started devices `cls` binds to (the rig's first device of each kind it names)."""
        bound: dict[str, Device | None] = {}
        for attr, kind, optional in cls.needed_kinds():
            specs = self.rig.of_kind(kind)
            if specs:
                bound[attr] = self.device(specs[0].name)
            elif optional:
                bound[attr] = None
            else:
                raise BenchError(f"{name!r} ({cls.__name__}) binds to a {kind}, but rig {self.rig.name!r} "
                                 f"({self.rig.path}) has none: add a {kind} under 'devices'")
        return bound

    def _spec(self, name: str) -> tuple[Any, str, str]:
        if name in self.rig.devices:
            spec = self.rig.devices[name]
            return spec, spec.kind, spec.node
        if name in self.rig.links:
            return self.rig.links[name], "link", "link"
        known = ", ".join([*self.rig.devices, *self.rig.links])
        raise BenchError(f"rig {self.rig.name!r} ({self.rig.path}) has no device or link named {name!r}; "
                         f"it has: {known}")

    def of_kind(self, kind: str) -> Device:
        """The (first) device of `kind` in the rig, started."""
        specs = self.rig.of_kind(kind)
        if not specs:
            raise BenchError(f"rig {self.rig.name!r} ({self.rig.path}) has no {kind}; add one under 'devices'")
        return self.device(specs[0].name)

    def running(self, kind: str) -> Any:
        """The (first) device of `kind` if it was started, else None: never starts one."""
        specs = self.rig.of_kind(kind)
        with self._lock:
            return self._devices.get(specs[0].name) if specs else None

    @property
    def printer(self) -> Any:
        return self.of_kind("printer")

    @property
    def terminal(self) -> Any:
        return self.of_kind("terminal")

    @property
    def host(self) -> Any:
        return self.of_kind("host")

    @property
    def till(self) -> Any:
        return self.of_kind("till")

    @property
    def links(self) -> dict[str, Any]:
        """Every link of the rig, started, by name."""
        return {name: self.device(name) for name in self.rig.links}

    @property
    def started(self) -> list[Device]:
        return list(self._order)

    # -- the oracle ---------------------------------------------------------------------------------
    def expect(self, *text: str) -> None:
        """Add what this test expects beyond the invariants, in the matrix's words ("not charged, no sale
        receipt"; see `harness.acceptance.expectations`); checked by `reconcile()` and at the test's end."""
        from harness.acceptance.expectations import parse

        parse(text)                                     # unreadable words fail here, not at the end
        self.expected.extend(text)

    def reconcile(self, *only: str, skip: tuple[str, ...] = (), expect: str | None = None) -> Reconciliation:
        """Quiet the bench (stored reversals delivered, owed receipts printed), then let the oracle reconcile
        the records of the devices started so far: every invariant (or `only` those, minus `skip`) and this
        test's expectations (plus `expect`). Returns the `Reconciliation`, violations typed.

        Armed faults stay armed; the test's end clears them before its own, final reconciliation."""
        from harness.acceptance.bench_oracle import reconcile_bench

        return reconcile_bench(self, only=only or None, skip=skip,
                               expect=[*self.expected, *([expect] if expect else [])])

    def flush_captures(self) -> None:
        """Write out the capture of every running link, so what is read from it next holds every packet that crossed
        so far: a physical terminal's journal is decoded from the till-terminal capture, which a running engine
        writes out only now and then."""
        with self._lock:
            links = [d for d in self._order if d.kind == "link"]
        for link in links:
            if getattr(link, "engine_alive", False):
                try:
                    link.capture()
                except Exception as exc:  # noqa: BLE001 - the record is read anyway; its gap is the evidence
                    log.warning("could not flush the capture of link %s: %s", link.name, exc)

    def identities(self) -> list[dict[str, Any]]:
        return [d.identity() for d in self._order]

    def close(self) -> list[str]:
        """Close every started device, newest first; none starts afterwards. Returns (and logs) the errors instead
        of stopping at one."""
        errors = []
        self.flush_captures()                           # a record written at close reads a whole capture
        with self._lock:
            self.closed = True
            order, self._order, self._devices = self._order[::-1], [], {}
        for dev in order:
            if self.keeper is not None and self.keeper.wants(dev):
                self.keeper.park(dev)                # kept running for the next bench on this topology
                continue
            err = _close_quietly(dev)
            if err:
                errors.append(err)
        return errors


def _close_quietly(dev: Device) -> str | None:
    """Close a device within its `close_timeout`; return a description of what went wrong, if anything."""
    result: list[BaseException] = []

    def run() -> None:
        try:
            dev.close()
        except BaseException as exc:  # noqa: BLE001 - reported, never lost
            result.append(exc)

    t0 = time.monotonic()
    worker = threading.Thread(target=run, name=f"close-{dev.name}", daemon=True)
    worker.start()
    worker.join(dev.close_timeout)
    if worker.is_alive():
        msg = f"{dev.kind} {dev.name!r} did not close within {dev.close_timeout:.1f}s"
    elif result:
        msg = f"{dev.kind} {dev.name!r} failed to close: {result[0]!r}"
    else:
        return None
    log.error("%s (after %.2fs)", msg, time.monotonic() - t0)
    return msg

"""Devices kept running from one bench to the next on the same topology: today a launched till, whose start costs
a process and its imports (a quarter of a CPU-second) for every scenario otherwise.

A driver opts in with `keep_warm` (true) and three methods: `adopt(ctx, **bound)` takes the new bench's evidence and
devices (False: it cannot, and is closed), `park()` writes the ending scenario's evidence and detaches, and its
ordinary `close()` at the end. The keeper keeps a device only when the scenario that used it ended cleanly
(`keep_next`, set by whoever judged it); any doubt, and the next bench starts a fresh one.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.core.device import Device, DeviceContext

log = logging.getLogger(__name__)


class Keeper:
    """The parked devices of one bench slot, by name."""

    def __init__(self) -> None:
        self.parked: dict[str, Device] = {}
        self.keep_next = True            # the scenario ending now left its devices fit for the next one
        self._lock = threading.Lock()

    def adopt(self, name: str, cls: type, spec: Any, ctx: DeviceContext, bound: dict[str, Any]) -> Device | None:
        """The parked device `name` rebound to a new bench, or None (then the caller builds a fresh one)."""
        with self._lock:
            dev = self.parked.pop(name, None)
        if dev is None:
            return None
        ok = False
        if type(dev) is cls and getattr(dev, "rig_spec", dev.spec) is spec:
            try:
                ok = bool(dev.adopt(ctx, **bound))
            except Exception as exc:  # noqa: BLE001 - a device that cannot be adopted is replaced, not fatal
                log.warning("%s %r could not be kept for the next bench: %s", dev.kind, name, exc)
        if not ok:
            self._discard(dev)
            return None
        return dev

    def wants(self, dev: Device) -> bool:
        return getattr(dev, "keep_warm", False) is True and self.keep_next

    def park(self, dev: Device) -> None:
        """Detach `dev` from its bench and keep it (or close it, if parking fails)."""
        try:
            kept = bool(dev.park())
        except Exception as exc:  # noqa: BLE001 - closed instead
            log.warning("%s %r could not be parked: %s", dev.kind, dev.name, exc)
            kept = False
        if not kept:
            self._discard(dev)
            return
        with self._lock:
            old = self.parked.pop(dev.name, None)
            self.parked[dev.name] = dev
        if old is not None and old is not dev:
            self._discard(old)

    def _discard(self, dev: Device) -> None:
        from harness.core.bench import _close_quietly

        _close_quietly(dev)

    def close(self) -> list[str]:
        """Close every parked device; the errors, described."""
        from harness.core.bench import _close_quietly

        with self._lock:
            devices, self.parked = list(self.parked.values()), {}
        return [err for dev in devices if (err := _close_quietly(dev))]

"""The device base class shared by every printer, terminal, host, link and till driver.

A driver is built from its rig entry and a `DeviceContext`, started once, and closed once. `close()` must be
idempotent and finish within `close_timeout` seconds, whatever state the device is in (OpenHTF plug style).
"""

from __future__ import annotations

import abc
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from harness.core.evidence import Evidence
from harness.core.rig import Rig, Timing

if TYPE_CHECKING:
    from harness.core.bench import Bench
    from harness.topology import Namespace

log = logging.getLogger(__name__)


@dataclass
class DeviceContext:
    """Everything a driver may use: the rig, where to keep evidence, where it runs, the other devices."""

    rig: Rig
    evidence: Evidence
    timing: Timing
    namespace: Namespace | None = None      # the emulated node it runs in, None = this machine's own network
    bench: Bench | None = None              # to look up the devices it depends on
    extra: dict[str, Any] = field(default_factory=dict)


class Device(abc.ABC):
    """Base of every driver. Subclasses set `kind` and `needs` (names of device kinds started before it)."""

    kind: ClassVar[str] = ""
    needs: ClassVar[tuple[str, ...]] = ()
    close_timeout: ClassVar[float] = 5.0

    def __init__(self, spec: Any, ctx: DeviceContext):
        self.spec = spec
        self.ctx = ctx
        self.name: str = spec.name

    @abc.abstractmethod
    def start(self) -> None:
        """Bring the device up: listening, connected, or ready for the operator."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release everything this device holds. Idempotent; bounded by `close_timeout`."""

    def identity(self) -> dict[str, Any]:
        """Self-description for reports: driver, mode, model/firmware when known."""
        return {"name": self.name, "kind": self.kind, "driver": type(self).__name__,
                "mode": getattr(self.spec, "mode", "emulated")}

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

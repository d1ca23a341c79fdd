"""The device base class shared by every printer, terminal, host, link and till driver.

A driver is built from its rig entry, a `DeviceContext` and the devices it binds to, started once, and closed
once. `close()` must be idempotent and finish within `close_timeout` seconds, whatever state the device is in
(OpenHTF plug style). Bindings are declared, labgrid style: a driver names the kinds it needs, and the bench
hands it those devices, started, when it builds it. A driver never looks its neighbours up.

>>> class EmulatedTerminal(PaymentTerminal):                          # doctest: +SKIP
...     bindings = {"host": "host?"}           # the rig's host, started first; "?" = optional (None if absent)
>>> EmulatedTerminal(spec, ctx, host=started_host).host is started_host     # doctest: +SKIP
True
"""

from __future__ import annotations

import abc
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from harness.core.evidence import Evidence
from harness.core.rig import Rig, Timing
from harness.topology import Network

if TYPE_CHECKING:
    from harness.topology import Namespace

log = logging.getLogger(__name__)


class BindingError(TypeError):
    """A driver was built without a device it binds to (or with one it does not know)."""


@dataclass
class DeviceContext:
    """Everything a driver may use besides its bindings: the rig, where to keep evidence, where it runs."""

    rig: Rig | None
    evidence: Evidence
    timing: Timing
    namespace: Namespace | None = None      # the emulated node it runs in, None = this machine's own network
    network: Network = field(default_factory=Network)   # where the bench's nodes are (none: this machine)
    extra: dict[str, Any] = field(default_factory=dict)

    def address_of(self, node: str) -> str:
        """The IP other nodes use to reach `node` (loopback without an emulated topology)."""
        return self.network.address_of(node)


class Device(abc.ABC):
    """Base of every driver. Subclasses set `kind` and `bindings` (attribute -> device kind, "kind?" optional)."""

    kind: ClassVar[str] = ""
    bindings: ClassVar[dict[str, str]] = {}
    close_timeout: ClassVar[float] = 5.0

    def __init__(self, spec: Any, ctx: DeviceContext, **bound: Device | None):
        self.spec = spec
        self.ctx = ctx
        self.name: str = spec.name
        unknown = set(bound) - set(self.bindings)
        if unknown:
            raise BindingError(f"{type(self).__name__} {self.name!r} does not bind to {sorted(unknown)}; "
                               f"it binds to {sorted(self.bindings) or 'nothing'}")
        for attr, kind in self.bindings.items():
            if bound.get(attr) is None and not kind.endswith("?"):
                raise BindingError(f"{type(self).__name__} {self.name!r} needs its {kind} (`{attr}=`): "
                                   f"add a {kind} device to the rig")
            setattr(self, attr, bound.get(attr))

    @classmethod
    def needed_kinds(cls) -> list[tuple[str, str, bool]]:
        """(attribute, device kind, optional) for every binding, in declaration order."""
        return [(attr, kind.rstrip("?"), kind.endswith("?")) for attr, kind in cls.bindings.items()]

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

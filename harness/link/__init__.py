"""Network links between devices: the interface of a link that is watched and faulted at payment stages.

Drivers: `harness.link.emulated.EmulatedLink` (namespaces) and `harness.link.bench.BenchLink` (a physical
bridge), both built on `harness.link.driver.EngineLink` (NFQUEUE engine process, see `harness.link.engine`).
"""

from __future__ import annotations

import abc
from typing import Any

from harness.core.device import Device


class Link(Device):
    """A link between two devices (e.g. terminal-host). Traffic crosses it for real; faults aim at stages."""

    kind = "link"

    @abc.abstractmethod
    def inject(self, *args: Any, **kwargs: Any) -> Any:
        """Arm a fault (by direction, stage and occurrence); usable as a context manager.

        >>> with link.inject("drop", stage="0210", direction="host->terminal") as fault:  # doctest: +SKIP
        ...     ...                                   # fails on exit if no 0210 came ("armed, never fired")
        """

    @abc.abstractmethod
    def clear(self, fault: Any = None) -> None:
        """Disarm one fault, or all: blackholes end, held packets go through."""

    @abc.abstractmethod
    def seen(self) -> dict[str, dict[str, int]]:
        """Messages seen so far per direction and stage, e.g. {"terminal->host": {"0200": 1}}."""

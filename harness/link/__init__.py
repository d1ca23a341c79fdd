"""Network links between devices: the interface of a link that can be watched and faulted at payment stages."""

from __future__ import annotations

import abc
from typing import Any

from harness.devices import Device


class Link(Device):
    """A link between two devices (e.g. terminal-host). Traffic crosses it for real; faults are aimed by stage."""

    kind = "link"

    @abc.abstractmethod
    def inject(self, *args: Any, **kwargs: Any) -> Any:
        """Arm a fault (by direction, stage and occurrence); usable as a context manager."""

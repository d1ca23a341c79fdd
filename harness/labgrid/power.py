"""Power through labgrid: `labgrid-client -x COORDINATOR -p PLACE power off|on|get [-n RESOURCE]`, the client
driving the place's power resource (a `NetworkPowerPort` of any model labgrid knows, a USB relay, a PDU). The
till's `kill` then cuts real power and its restart restores it (`harness.till.lifecycle`).

    power = PlacePower("127.0.0.1:20408", "pos-bench-3", "till-power"); power.off(); power.on()
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


class PowerError(RuntimeError):
    """labgrid could not switch the power; the message carries labgrid-client's last line."""


def client_path() -> str:
    """labgrid-client beside this Python (the venv posrig runs in), else on PATH."""
    here = Path(sys.executable).with_name("labgrid-client")
    return str(here) if here.exists() else (shutil.which("labgrid-client") or "labgrid-client")


class PlacePower:
    def __init__(self, coordinator: str, place: str, resource: str = "", timeout: float = 30.0):
        self.coordinator, self.place, self.resource, self.timeout = coordinator, place, resource, timeout
        self.history: list[dict[str, Any]] = []

    @classmethod
    def from_option(cls, option: dict[str, Any]) -> PlacePower:
        return cls(option["coordinator"], option["place"], option.get("resource", ""))

    def as_option(self) -> dict[str, str]:
        return {"coordinator": self.coordinator, "place": self.place, "resource": self.resource}

    def _client(self, action: str) -> str:
        argv = [client_path(), "-x", self.coordinator, "-p", self.place, "power", action]
        if self.resource:
            argv += ["-n", self.resource]
        t = time.time()
        done = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout, env=dict(os.environ))
        self.history.append({"event": f"power {action}", "t": t, "argv": argv, "returncode": done.returncode})
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or done.stdout.strip().splitlines() or ["no output"])[-1]
            raise PowerError(f"labgrid place {self.place}: power {action} through {self.resource or 'its power'} "
                             f"failed: {last}")
        return done.stdout.strip()

    def off(self) -> None:
        self._client("off")

    def on(self) -> None:
        self._client("on")

    def get(self) -> bool:
        """True when the power is on (labgrid-client prints 'power for place X is on')."""
        return self._client("get").rstrip().endswith("on")

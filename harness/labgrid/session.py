"""One run on a labgrid place: acquire it, bridge its serial ports, fill the rig in, and release it at the end
(also after a failure, on SIGTERM/SIGINT and at exit). The pytest plugin opens it once, on the controller, before
any worker starts; workers find the filled-in rig through `$POSRIG_LABGRID_STATE` (a JSON file).

    lab = LabgridSession(rig); bound = lab.open()     # PlaceHeld names who holds the place
    ...; lab.report()  # the acceptance.json `labgrid` block
    lab.close()

A place the user already had acquired (by hand, `labgrid-client -p PLACE acquire`, as the same user) is used and
left acquired, as found.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.core.rig import Rig
from harness.labgrid import resources
from harness.labgrid.bridge import BridgeError, SerialBridge
from harness.labgrid.place import Place, PlaceError

STATE_ENV = "POSRIG_LABGRID_STATE"
STATE_PREFIX = "posrig-labgrid-"             # + pid: a SIGKILLed run's state is reaped by `release_stale`


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("labgrid")
    except metadata.PackageNotFoundError:
        return "not installed"


class LabgridSession:
    def __init__(self, rig: Rig):
        assert rig.labgrid is not None
        self.rig = rig
        self.place = Place(rig.labgrid.coordinator, rig.labgrid.place)
        self.bridges: dict[str, SerialBridge] = {}
        self.acquired: dict[str, Any] | None = None
        self.released = False
        self.state_dir: Path | None = None
        self._block: dict[str, Any] = {}

    def open(self) -> Rig:
        """Acquire the place and return the rig with its resources filled in. PlaceError (PlaceHeld) if not."""
        try:
            self.acquired = self.place.acquire()
        except KeyboardInterrupt:
            # Stopped (SIGTERM, Ctrl-C) while the coordinator acquired it for us: give it back. (A place this user
            # held before the run is given back too: this cannot tell, its answer never came.)
            with contextlib.suppress(Exception):
                shown = self.place.show()
                if shown.get("acquired") and shown.get("acquired") == shown.get("me"):
                    self.place.release()
            raise
        atexit.register(self.close)
        try:
            plan = resources.plan(self.rig, self.acquired)
            for device, params in plan.serial.items():
                self.bridges[device] = SerialBridge(params["host"], params["port"], params.get("speed", 115200),
                                                    params.get("protocol", "rfc2217")).start()
        except (PlaceError, BridgeError):
            self.close()
            raise
        addresses = {d: b.path for d, b in self.bridges.items()}
        bound = resources.apply(self.rig, addresses, plan.interfaces, plan.power)
        exporters = sorted({r["exporter"] for r in self.acquired.get("resources", [])})
        self._block = {"coordinator": self.place.coordinator, "place": self.place.name,
                       "acquired_by": self.acquired.get("me"), "acquired_at": time.strftime(
                           "%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "already_acquired": self.acquired.get("already"),
                       "labgrid": _version(), "exporters": exporters,
                       "resources": resources.identities(self.acquired, plan.used),
                       "devices": {d: {"address": addresses[d], **{k: v for k, v in plan.serial[d].items()
                                                                  if k in ("host", "port", "speed")}}
                                   for d in addresses},
                       "interfaces": {k: list(v) for k, v in plan.interfaces.items()},
                       "power": plan.power}
        self.state_dir = Path(tempfile.mkdtemp(prefix=f"{STATE_PREFIX}{os.getpid()}-"))
        state = self.state_dir / "state.json"
        state.write_text(json.dumps({"rig_sha256": self.rig.sha256, "addresses": addresses,
                                     "interfaces": plan.interfaces, "power": plan.power, "report": self._block}))
        os.environ[STATE_ENV] = str(state)
        return bound

    def report(self) -> dict[str, Any]:
        """The acceptance.json block: coordinator, place, who acquired it, exporters and every resource's identity,
        what each serves, and bytes carried by the serial bridges."""
        out = dict(self._block)
        if self.bridges:
            out["bridges"] = {d: b.describe() for d, b in self.bridges.items()}
        return out

    def close(self) -> None:
        """Close the bridges and release the place (unless it was acquired before the run). Idempotent."""
        if self.released:
            return
        self.released = True
        for bridge in self.bridges.values():
            bridge.close()
        if os.environ.get(STATE_ENV, "").startswith(str(self.state_dir or "\0")):
            os.environ.pop(STATE_ENV, None)
        if self.state_dir is not None:
            shutil.rmtree(self.state_dir, ignore_errors=True)
        if self.acquired is not None and not self.acquired.get("already"):
            with contextlib.suppress(PlaceError):
                self.place.release()
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)


def bound_from_state(rig: Rig) -> Rig:
    """In a pytest-xdist worker: the rig as the controller's session filled it in (the rig unchanged when there
    is no state, or it is another rig's)."""
    path = os.environ.get(STATE_ENV)
    if not path or rig.labgrid is None:
        return rig
    try:
        state = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return rig
    if state.get("rig_sha256") != rig.sha256:
        return rig
    return resources.apply(rig, state["addresses"], state["interfaces"], state["power"])


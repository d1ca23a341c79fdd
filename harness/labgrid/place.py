"""A labgrid place, seen and locked from posrig: show, acquire, release through labgrid's own client (run as a
child, `harness.labgrid.agent`), and a record of every place this machine's posrig holds, so a place a SIGKILLed
run left acquired is found and released (`posrig doctor --clean`, or the next run's preflight).

labgrid keeps a place acquired until someone releases it: the coordinator does not release a place when its
client goes away (only a coordinator restart forgets acquisitions). So posrig releases at the end of a run, on
SIGTERM/SIGINT and at exit; after a SIGKILL the record below is what lets the next run release it.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

AGENT_TIMEOUT = 60.0


class PlaceError(RuntimeError):
    """The place cannot be used: the message is one line, naming the place and what to do."""


class PlaceHeld(PlaceError):
    """Someone else has the place acquired; `holder` is labgrid's 'host/user'."""

    def __init__(self, place: str, coordinator: str, holder: str):
        self.place, self.coordinator, self.holder = place, coordinator, holder
        super().__init__(f"labgrid place {place} (coordinator {coordinator}) is acquired by {holder}: wait until "
                         f"they release it, or ask them; `labgrid-client -x {coordinator} -p {place} release "
                         "--kick` takes it from them")


def records_dir() -> Path:
    """Where posrig notes the places it holds ($POSRIG_LABGRID_RECORDS, else /run/posrig-labgrid or /tmp)."""
    env = os.environ.get("POSRIG_LABGRID_RECORDS")
    if env:
        return Path(env)
    base = Path("/run") if os.access("/run", os.W_OK) else Path("/tmp")
    return base / f"posrig-labgrid-{os.geteuid()}"


class Place:
    """One place on one coordinator, driven through labgrid's client."""

    def __init__(self, coordinator: str, name: str, env: dict[str, str] | None = None):
        self.coordinator, self.name = coordinator, name
        self.env = {**os.environ, **(env or {})}

    def _agent(self, command: str, *extra: str) -> dict[str, Any]:
        argv = [sys.executable, "-m", "harness.labgrid.agent", self.coordinator, self.name, command, *extra]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=AGENT_TIMEOUT, env=self.env)
        except subprocess.TimeoutExpired:
            raise PlaceError(f"labgrid place {self.name}: the coordinator {self.coordinator} did not answer "
                             f"within {AGENT_TIMEOUT:g}s; is labgrid-coordinator running there?") from None
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if not lines:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            if "No module named 'labgrid'" in done.stderr:
                tail = "labgrid is not installed: pip install 'posrig[labgrid]'"
            raise PlaceError(f"labgrid place {self.name}: {command} failed: {tail}")
        return json.loads(lines[-1])

    def show(self) -> dict[str, Any]:
        """The place: {name, acquired ('host/user' or ''), resources: [...]}, and `me` (who posrig is to labgrid)."""
        out = self._agent("show")
        if not out.get("ok"):
            raise PlaceError(f"labgrid place {self.name}: {out['error']}")
        return {**out["place"], "me": out["me"]}

    def acquire(self) -> dict[str, Any]:
        """Acquire the place (already ours is fine); PlaceHeld when another user holds it, or another posrig run
        of this machine (labgrid cannot tell two runs of one user apart)."""
        other = running_here(self)
        if other:
            raise PlaceHeld(self.name, self.coordinator, f"{other['me']} (posrig pid {other['pid']} on this machine)")
        out = self._agent("acquire")
        if not out.get("ok"):
            if out.get("error") == "held" or out.get("acquired") and out.get("acquired") != out.get("me"):
                raise PlaceHeld(self.name, self.coordinator, out["acquired"])
            raise PlaceError(f"labgrid place {self.name}: cannot acquire: {out['error']}")
        if not out.get("already"):
            note_held(self, out["me"])
        return {**out["place"], "me": out["me"], "already": bool(out.get("already"))}

    def release(self, kick: bool = False) -> None:
        out = self._agent("release", *(["--kick"] if kick else []))
        if not out.get("ok"):
            raise PlaceError(f"labgrid place {self.name}: cannot release: {out['error']}")
        forget_held(self)


# -- what this machine's posrig holds (for a run that was SIGKILLed) ----------------------------------------
def _record(place: Place) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{place.coordinator}-{place.name}")
    return records_dir() / f"{safe}.json"


def note_held(place: Place, me: str) -> None:
    path = _record(place)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"coordinator": place.coordinator, "place": place.name, "me": me,
                                "pid": os.getpid(), "since": time.time()}))


def forget_held(place: Place) -> None:
    with contextlib.suppress(FileNotFoundError):
        _record(place).unlink()


def running_here(place: Place) -> dict[str, Any] | None:
    """The record of another live posrig process of this machine holding `place`, if there is one."""
    with contextlib.suppress(ValueError, OSError):
        rec = json.loads(_record(place).read_text())
        if int(rec.get("pid", 0)) != os.getpid() and _alive(int(rec.get("pid", 0))):
            return rec
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale() -> list[dict[str, Any]]:
    """Places a posrig on this machine acquired and that posrig is gone (SIGKILLed) without releasing."""
    root = records_dir()
    found = []
    for path in sorted(root.glob("*.json")) if root.is_dir() else []:
        with contextlib.suppress(ValueError, OSError):
            rec = json.loads(path.read_text())
            if not _alive(int(rec.get("pid", 0))):
                found.append({**rec, "record": str(path)})
    return found


def _reap_state_dirs() -> None:
    """The run-state folders (`session.py`) of posrig processes that are gone."""
    import shutil
    import tempfile

    for path in Path(tempfile.gettempdir()).glob("posrig-labgrid-*-*"):
        pid = path.name.split("-")[2]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def release_stale(only: tuple[str, str] | None = None) -> list[str]:
    """Release the places killed runs left acquired (only while still acquired by the same user), or only the
    place `only` (coordinator, place); one line each for what was done."""
    done = []
    _reap_state_dirs()
    for rec in stale():
        if only is not None and (rec["coordinator"], rec["place"]) != only:
            continue
        place = Place(rec["coordinator"], rec["place"])
        try:
            now = place.show()
            if now.get("acquired") == rec.get("me"):
                place.release()
                done.append(f"released labgrid place {rec['place']} ({rec['coordinator']}), left acquired by "
                            f"posrig pid {rec['pid']}")
            else:
                forget_held(place)
        except PlaceError as exc:
            done.append(f"could not release labgrid place {rec['place']}: {exc}")
            continue
    return done

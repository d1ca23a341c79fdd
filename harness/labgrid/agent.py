"""The labgrid client posrig runs as a child: labgrid's own Python client (`labgrid.remote.client`, gRPC to the
coordinator) for one command, one JSON line out. posrig never loads gRPC into its own process, which forks
namespaces and devices.

    python -m harness.labgrid.agent 127.0.0.1:20408 pos-bench-3 show|acquire|release [--kick]

Out: {"ok": true, "place": {...}, "resources": [...]} or {"ok": false, "error": "...", "acquired": "host/user"}.
The user labgrid records is `$LG_HOSTNAME/$LG_USERNAME` (default: this host and login), as for labgrid-client.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def _resources(session: Any, place: Any) -> list[dict[str, Any]]:
    """Every resource of the coordinator the place matches (its acquired ones once it is acquired)."""
    out = []
    acquired = {tuple(p) for p in place.acquired_resources or []}
    for exporter, groups in sorted(session.resources.items()):
        for group_name, group in sorted(groups.items()):
            for resource_name, resource in sorted(group.items()):
                path = (exporter, group_name, resource.cls, resource_name)
                match = place.getmatch(path)
                if match is None:
                    continue
                out.append({"name": match.rename or resource_name, "resource": resource_name, "cls": resource.cls,
                            "exporter": exporter, "group": group_name, "avail": bool(resource.avail),
                            "acquired": path in acquired, "params": resource.params})
    return out


def _place(session: Any, name: str) -> dict[str, Any] | None:
    place = session.places.get(name)
    if place is None:
        return None
    return {"name": place.name, "acquired": place.acquired or "", "matches": [repr(m) for m in place.matches],
            "comment": place.comment, "tags": dict(place.tags or {}), "changed": place.changed,
            "resources": _resources(session, place)}


def run(coordinator: str, place: str, command: str, kick: bool = False) -> dict[str, Any]:
    from labgrid.remote.client import Error, start_session

    try:
        session = start_session(coordinator, extra={"args": argparse.Namespace(
            place=place, allow_unmatched=False, kick=kick)})
    except Exception as exc:  # noqa: BLE001 - gRPC and labgrid raise several kinds for an unreachable coordinator
        return {"ok": False, "error": f"cannot reach the labgrid coordinator at {coordinator}: {exc}",
                "unreachable": True}
    me = f"{session.gethostname()}/{session.getuser()}"
    try:
        found = _place(session, place)
        if found is None:
            known = ", ".join(sorted(session.places)) or "none"
            return {"ok": False, "error": f"no place {place!r} on the labgrid coordinator {coordinator} "
                    f"(places: {known})", "missing": True, "me": me}
        already = bool(found["acquired"])
        if command == "acquire":
            if found["acquired"] and found["acquired"] != me:
                return {"ok": False, "error": "held", "acquired": found["acquired"], "me": me, "place": found}
            if not found["acquired"]:
                session.loop.run_until_complete(session.acquire())
        elif command == "release":
            if found["acquired"]:
                session.loop.run_until_complete(session.release())
        elif command != "show":
            return {"ok": False, "error": f"unknown command {command!r}"}
        return {"ok": True, "me": me, "already": already, "place": _place(session, place)}
    except Error as exc:
        return {"ok": False, "error": str(exc), "me": me, "acquired": (_place(session, place) or {}).get("acquired")}
    finally:
        session.loop.run_until_complete(session.stop())
        session.loop.run_until_complete(session.close())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.labgrid.agent")
    p.add_argument("coordinator")
    p.add_argument("place")
    p.add_argument("command", choices=("show", "acquire", "release"))
    p.add_argument("--kick", action="store_true", help="release a place another user holds")
    args = p.parse_args(argv)
    out = run(args.coordinator, args.place, args.command, args.kick)
    print(json.dumps(out, default=str))
    return 0 if out.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())

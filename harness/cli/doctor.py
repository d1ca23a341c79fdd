"""`posrig doctor [--rig FILE] [--json] [--clean]`: is this machine ready for the rig? Exit 0 when ready, 1 otherwise.

The same checks are the preflight of `posrig run` (`harness.core.doctor`). `--clean` first removes what killed
runs left behind (named namespaces, bench bridges, iptables rules carrying a dead run's id, labgrid places a
killed run left acquired).
"""

from __future__ import annotations

import json
import sys

from harness.core.doctor import Options, diagnose
from harness.core.rig import RigError, load_rig, resolve_rig


def register(sub) -> None:
    p = sub.add_parser("doctor", help="report what the rig needs and what is ready or missing")
    p.add_argument("--rig", default=None, metavar="FILE|NAME",
                   help="rig file, or a shipped rig's name (default: rigs/emulated.yaml here, else the shipped one)")
    p.add_argument("--till-profile", default=None, metavar="NAME", help="the reference till profile a run would test")
    p.add_argument("--json", action="store_true", help="print the checks as JSON")
    p.add_argument("--clean", action="store_true",
                   help="first remove the namespaces, bridges and iptables rules of killed runs")
    p.set_defaults(func=run)


def clean() -> list[str]:
    """Reap what killed runs left (where namespaces can be handled at all); returns what was removed."""
    from harness import topology as netns
    from harness.labgrid.place import release_stale

    removed = netns.reap_leftovers() if netns.probe()[0] else []
    return removed + release_stale()          # labgrid places a SIGKILLed run left acquired


def run(args) -> int:
    removed = clean() if args.clean else []
    if args.clean and not args.json:
        print(f"cleaned: removed {len(removed)} leftover(s) of killed runs" + "".join(f"\n  {r}" for r in removed))
    try:
        rig = load_rig(resolve_rig(args.rig))
    except RigError as exc:
        print(f"posrig doctor: bad rig: {exc}", file=sys.stderr)
        return 1
    checks = diagnose(rig, Options(till_profile=args.till_profile))
    ready = all(c.ok or not c.blocking for c in checks)
    if args.json:
        print(json.dumps({"rig": rig.name, "file": str(rig.path), "ready": ready, "removed": removed,
                          "checks": [c.__dict__ for c in checks]}, indent=2))
    else:
        print(f"rig {rig.name} ({rig.path})")
        width = max((len(c.name) for c in checks), default=10)
        for c in checks:
            mark = "ok     " if c.ok else "MISSING" if c.blocking else "warning"
            print(f"  {mark}  {c.name:<{width}}  {c.detail}")
        print("ready" if ready else "NOT ready: fix the MISSING lines above")
    return 0 if ready else 1

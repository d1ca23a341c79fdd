"""`posrig doctor [--rig FILE] [--json]`: is this machine ready for the rig? Exit 0 when ready, 1 otherwise."""

from __future__ import annotations

import json
import sys

from harness.core.doctor import diagnose
from harness.core.rig import RigError, load_rig, resolve_rig


def register(sub) -> None:
    p = sub.add_parser("doctor", help="report what the rig needs and what is ready or missing")
    p.add_argument("--rig", default=None, metavar="FILE|NAME",
                   help="rig file, or a shipped rig's name (default: rigs/emulated.yaml here, else the shipped one)")
    p.add_argument("--json", action="store_true", help="print the checks as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    try:
        rig = load_rig(resolve_rig(args.rig))
    except RigError as exc:
        print(f"posrig doctor: bad rig: {exc}", file=sys.stderr)
        return 1
    checks = diagnose(rig)
    ready = all(c.ok for c in checks)
    if args.json:
        print(json.dumps({"rig": rig.name, "file": str(rig.path), "ready": ready,
                          "checks": [c.__dict__ for c in checks]}, indent=2))
    else:
        print(f"rig {rig.name} ({rig.path})")
        width = max((len(c.name) for c in checks), default=10)
        for c in checks:
            print(f"  {'ok     ' if c.ok else 'MISSING'}  {c.name:<{width}}  {c.detail}")
        print("ready" if ready else "NOT ready: fix the MISSING lines above")
    return 0 if ready else 1

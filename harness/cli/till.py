"""`posrig till serve ...`: run the reference till on its own (for demos, or for a rig that starts it
elsewhere).

    posrig till serve --ecr 127.0.0.1:20007 --printer 127.0.0.1:9100 --profile correct \\
        --control 127.0.0.1:8080 --journal till.sqlite
    posrig till profiles

Announces itself in posrig's one readiness line ({"event": "ready", "pid": ..., "control": "127.0.0.1:8080",
"identity": {...}}; {"event": "failed", "error": ...} when it cannot start), then serves the till contract
(docs/till-contract.md) until interrupted.
"""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("till", help="run the reference till (system under test) by hand")
    tsub = p.add_subparsers(dest="till_command", metavar="ACTION", required=True)
    from harness.reference_till.app import add_serve_arguments

    serve = tsub.add_parser("serve", help="serve the reference till's HTTP control API")
    add_serve_arguments(serve)
    serve.set_defaults(func=run_serve)
    profiles = tsub.add_parser("profiles", help="list the reference till's profiles")
    profiles.set_defaults(func=run_profiles)


def run_serve(args) -> int:
    from harness.reference_till.app import serve

    return serve(args)


def run_profiles(args) -> int:
    from harness.reference_till.profiles import PROFILES

    for name, cls in PROFILES.items():
        print(json.dumps({"profile": name, "summary": " ".join((cls.__doc__ or "").split()),
                          "timers": cls.timers.__dict__}))
    return 0

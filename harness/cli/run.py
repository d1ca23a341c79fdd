"""`posrig run`: the main job. Runs the acceptance suite shipped in the package against a rig, writes the reports.

    posrig run --rig rigs/emulated.yaml --report report -n 2
    posrig run -k 0210-lost                     # in any folder: the shipped emulated rig, report/ here

The suite is `harness.acceptance.suite` (installed with posrig), so a vendor who installs posrig into their own
test repository runs the same matrix. pytest is isolated from the caller's configuration (the suite's own ini),
so the job is the same wherever it runs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import harness.acceptance.suite as suite


def suite_dir() -> Path:
    """The acceptance suite, where the installed package keeps it."""
    return Path(suite.__file__).resolve().parent


def register(sub) -> None:
    p = sub.add_parser("run", help="run the acceptance suite on a rig and write the reports")
    p.add_argument("--rig", default=os.environ.get("POSRIG_RIG"), metavar="FILE|NAME",
                   help="rig file, or a shipped rig's name (default: $POSRIG_RIG, else rigs/emulated.yaml here, "
                        "else the shipped emulated rig)")
    p.add_argument("--report", default="report", metavar="DIR", help="report folder (HTML, JUnit XML, evidence)")
    p.add_argument("--till-profile", default=None, metavar="NAME", help="reference till profile to test")
    p.add_argument("-k", dest="keyword", default=None, metavar="EXPR", help="only scenarios matching EXPR")
    p.add_argument("-n", dest="workers", default=None, metavar="N", help="parallel workers (pytest-xdist)")
    p.set_defaults(func=run)


def pytest_args(args) -> list[str]:
    from harness.core.rig import resolve_rig

    report = Path(args.report).resolve()
    rig = resolve_rig(args.rig)
    argv = [str(suite_dir()), "-c", str(suite_dir() / "suite.ini"), f"--rootdir={Path.cwd()}",
            f"--rig={rig}", f"--evidence-dir={report / 'evidence'}",
            f"--html={report / 'report.html'}", "--self-contained-html", f"--junitxml={report / 'junit.xml'}",
            f"--acceptance-json={report / 'acceptance.json'}",
            "-p", "no:cacheprovider", "-o", "console_output_style=progress",
            "-o", "render_collapsed=none"]          # every scenario's receipt, timeline and ledger visible
    if args.till_profile:
        argv.append(f"--till-profile={args.till_profile}")
    if args.keyword:
        argv += ["-k", args.keyword]
    if args.workers:
        argv += ["-n", str(args.workers)]
    return argv


def run(args) -> int:
    import pytest

    from harness.core.rig import RigError, load_rig, resolve_rig

    try:
        load_rig(resolve_rig(args.rig))
    except RigError as exc:
        print(f"posrig run: bad rig: {exc}", file=sys.stderr)
        return 2
    try:
        Path(args.report).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"posrig run: cannot make the report folder {args.report}: {exc.strerror or exc}; "
              "give --report a folder you can write", file=sys.stderr)
        return 2
    rc = pytest.main(pytest_args(args))
    if rc == 5:
        print("posrig run: no scenario was collected; nothing was tested", file=sys.stderr)
        return 1
    print(f"posrig run: report at {Path(args.report) / 'report.html'}")
    return int(rc)

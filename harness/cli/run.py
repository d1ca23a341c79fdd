"""`posrig run`: the main job. Runs the acceptance suite against a rig and writes the reports.

    posrig run --rig rigs/emulated.yaml --report report -n 2
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DEFAULT_RIG = "rigs/emulated.yaml"


def acceptance_dir() -> Path:
    """The acceptance suite shipped beside the harness package (a source checkout)."""
    return Path(__file__).resolve().parents[2] / "tests" / "acceptance"


def register(sub) -> None:
    p = sub.add_parser("run", help="run the acceptance suite on a rig and write the reports")
    p.add_argument("--rig", default=os.environ.get("POSRIG_RIG", DEFAULT_RIG), help="rig file")
    p.add_argument("--report", default="report", metavar="DIR", help="report folder (HTML, JUnit XML, evidence)")
    p.add_argument("--till-profile", default=None, metavar="NAME", help="reference till profile to test")
    p.add_argument("-k", dest="keyword", default=None, metavar="EXPR", help="only scenarios matching EXPR")
    p.add_argument("-n", dest="workers", default=None, metavar="N", help="parallel workers (pytest-xdist)")
    p.set_defaults(func=run)


def pytest_args(args) -> list[str]:
    report = Path(args.report)
    argv = [str(acceptance_dir()), f"--rig={args.rig}", f"--evidence-dir={report / 'evidence'}",
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

    suite = acceptance_dir()
    if not suite.is_dir():
        print(f"posrig run: no acceptance suite at {suite}; run from a posrig source checkout", file=sys.stderr)
        return 2
    Path(args.report).mkdir(parents=True, exist_ok=True)
    rc = pytest.main(pytest_args(args))
    if rc == 5:
        print("posrig run: no scenario was collected; nothing was tested", file=sys.stderr)
        return 1
    print(f"posrig run: report at {Path(args.report) / 'report.html'}")
    return int(rc)

"""`posrig verify REPORT_DIR`: is this signed-off report as it was written? Exit 0 when intact, 1 otherwise.

Re-hashes every evidence file, the rig and acceptance.json against the digest sealed into it, and recounts the
summary (verdicts, ran, passed) from the scenario rows; prints one line per discrepancy.

    posrig verify report/
"""

from __future__ import annotations

import sys
from pathlib import Path

from harness.acceptance.report.signoff import verify


def register(sub) -> None:
    p = sub.add_parser("verify", help="check a report folder against its digest and recount its summary")
    p.add_argument("report", metavar="REPORT_DIR", help="the folder holding acceptance.json (posrig run --report)")
    p.set_defaults(func=run)


def run(args) -> int:
    folder = Path(args.report)
    if folder.name == "acceptance.json" and folder.is_file():
        folder = folder.parent
    if not folder.is_dir():
        print(f"posrig verify: {folder}: no such folder; give the report folder that holds acceptance.json",
              file=sys.stderr)
        return 2
    problems, checked = verify(folder)
    for line in problems:
        print(f"posrig verify: {line}")
    if problems:
        print(f"posrig verify: {folder}: {len(problems)} discrepanc{'y' if len(problems) == 1 else 'ies'}: "
              "this report is not the one that was signed off", file=sys.stderr)
        return 1
    passed = "passed" if checked.get("passed") else "NOT passed"
    print(f"posrig verify: {folder}: intact: {checked['scenarios']} scenarios ({passed}), "
          f"{checked['evidence']} evidence files and the rig match the digest; summary recounted")
    return 0

"""`posrig explore`: random compound fault schedules on warm benches for a time budget; every broken invariant
is shrunk to a minimal schedule and written as a replayable scenario file (docs/explore.md).

    posrig explore --budget 10m --seed 1 --till-profile reset-voids-sale --report explore-report
    posrig run --scenario explore-report/finding-1-<key>.yaml --till-profile reset-voids-sale

Exit 1 when a finding was confirmed, 0 when none, 2 for bad input (nothing run).
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

_BUDGET = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h)?$")


def parse_budget(text: str) -> float:
    """Seconds in '10m', '90s', '1.5h' or '120' (seconds).

    >>> parse_budget("10m"), parse_budget("90"), parse_budget("1.5h")
    (600.0, 90.0, 5400.0)
    """
    m = _BUDGET.match(str(text).strip().lower())
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"--budget {text!r}: expected a duration such as 10m, 90s or 1h")
    return float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]


def register(sub) -> None:
    p = sub.add_parser("explore", help="run random compound fault schedules; shrink and save what breaks")
    p.add_argument("--budget", default="10m", metavar="DURATION", help="how long to explore (10m, 90s, 1h)")
    p.add_argument("--seed", default=0, type=int, metavar="N", help="the schedules drawn (same seed, same schedules)")
    p.add_argument("--rig", default=os.environ.get("POSRIG_RIG"), metavar="FILE|NAME",
                   help="rig file or shipped rig name (default: as posrig run)")
    p.add_argument("--till-profile", default=None, metavar="NAME", help="reference till profile to explore")
    p.add_argument("--benches", default="auto", metavar="N|auto", help="benches run at once (auto: from the cores)")
    p.add_argument("--report", default="explore-report", metavar="DIR",
                   help="folder for exploration.json, summary.txt and the findings' scenario files")
    p.add_argument("--max-faults", default=4, type=int, metavar="N", help="at most N link faults per schedule")
    p.add_argument("--shrink-runs", default=60, type=int, metavar="N", help="bench runs allowed per shrink")
    p.add_argument("--confirm", default=2, type=int, metavar="N",
                   help="a minimal schedule must fail N times out of N to be kept")
    p.add_argument("--every-finding", action="store_true",
                   help="shrink every failing run not containing an earlier finding (default: one finding per set "
                        "of broken invariants)")
    p.set_defaults(func=run)


def run(args) -> int:
    from harness.acceptance.pool import ScenarioPool, parse_benches
    from harness.cli.run import preflight
    from harness.core.rig import load_rig, resolve_rig
    from harness.explore.explorer import Explorer, Options, evidence_cleaner
    from harness.explore.report import write
    from harness.explore.strategies import Limits

    def bad(line: str) -> int:
        print(f"posrig explore: {line}", file=sys.stderr)
        return 2

    try:
        budget = parse_budget(args.budget)
        size = parse_benches(args.benches, workers=1)
    except ValueError as exc:
        return bad(str(exc))
    if args.max_faults < 1 or args.shrink_runs < 0 or args.confirm < 1:
        return bad("--max-faults and --confirm must be >= 1, --shrink-runs >= 0")
    problems = preflight(args)
    for line in problems:
        print(f"posrig explore: {line}", file=sys.stderr)
    if problems:
        return 2
    rig = load_rig(resolve_rig(args.rig))
    if rig.network_mode != "namespaces":
        return bad(f"rig {rig.name!r} is not emulated in namespaces: exploring needs faults on emulated links")
    folder = Path(args.report)
    try:
        (folder / "evidence").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return bad(f"cannot make the report folder {folder}: {exc.strerror or exc}; give --report a folder you "
                   "can write")
    if args.till_profile:
        os.environ["POSRIG_TILL_PROFILE"] = args.till_profile
    meta = {"till_profile": args.till_profile or "", "rig": str(rig.path), "rig_sha256": rig.sha256}
    options = Options(budget=budget, seed=args.seed, scale=rig.timing.scale,
                      limits=Limits(max_faults=args.max_faults), shrink_runs=args.shrink_runs,
                      confirm=args.confirm, meta=meta, every_finding=args.every_finding)
    pool = ScenarioPool(rig, size)
    tty = sys.stdout.isatty()
    last = [0.0]

    def progress(book, line: str) -> None:
        head = (f"[explore {book.elapsed / 60:4.1f}/{budget / 60:.1f} min] {book.explored} schedules "
                f"({book.rate:.1f}/min) ok {book.verdicts.get('OK', 0)} fail {book.verdicts.get('FAIL', 0)} "
                f"inconclusive {book.verdicts.get('INCONCLUSIVE', 0)} error {book.verdicts.get('ERROR', 0)}; "
                f"findings {len(book.findings)}")
        loud = line.startswith(("FINDING", "shrinking")) or "candidate" in line or "reproduce" in line
        if tty:
            print(("\r\033[K" + line + "\n" if loud else "\r\033[K") + head[:160], end="", flush=True)
        elif loud or time.monotonic() - last[0] > 10:
            last[0] = time.monotonic()
            print(head + ("\n  " + line if loud else ""), flush=True)

    def submit(schedule, tag):
        return pool.submit(schedule.scenario(tag), folder / "evidence" / tag).future

    keep = evidence_cleaner(lambda record: False)
    print(f"posrig explore: {budget / 60:.1f} min on {pool.size} bench(es), seed {args.seed}, "
          f"till profile {args.till_profile or 'the rig default'}; report in {folder}", flush=True)
    try:
        book = Explorer(submit, options, folder, pool.size, progress=progress, discard=keep).run()
    finally:
        errors = pool.close()
    for line in errors:
        print(f"posrig explore: teardown: {line}", file=sys.stderr)
    doc, text = write(folder, book, meta)
    print(("\n" if tty else "") + text.read_text(), end="")
    print(f"posrig explore: report at {doc}")
    return 1 if book.findings else 0

"""Benchmark: `posrig explore` against the planted compound-fault bug (reference till `reset-voids-sale`), with the
figures issue 14 asks for.

    .venv/bin/python tests/benchmarks/bench_explore.py [--budget 3m] [--seed 1] [--benches 4] [--replays 10]
        [--matrix] [--correct 0]

1. `posrig explore --till-profile reset-voids-sale --budget B --seed S`: throughput (schedules/min), time to the
   first finding (its failing run, then shrunk and confirmed), shrink steps and runs, the minimal schedule.
2. The finding's scenario file replayed `--replays` times through `posrig run --scenario FILE ...` (one session,
   the file under as many names, run on the bench pool): how many FAIL with the same invariant (10/10 wanted).
3. `--matrix`: the whole shipped matrix (one fault per scenario) against the same profile: it must NOT fail
   (the bug needs two faults).
4. `--correct M`: M minutes of exploring the `correct` till: findings there are false alarms (0 wanted).

Figures are wall-clock on a shared machine: noisy when other work runs. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROFILE = "reset-voids-sale"


def posrig(*argv: str, cwd: Path) -> tuple[int, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "harness.cli", *argv], cwd=cwd, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(done.stdout[-3000:])
    return done.returncode, time.monotonic() - t0


def explore(work: Path, profile: str, budget: str, seed: int, benches: str) -> dict:
    report = work / f"explore-{profile}"
    rc, wall = posrig("explore", "--till-profile", profile, "--budget", budget, "--seed", str(seed),
                      "--benches", benches, "--report", str(report), cwd=work)
    doc = json.loads((report / "exploration.json").read_text())
    first = doc["findings"][0] if doc["findings"] else None
    return {"rc": rc, "wall_s": round(wall, 1), "schedules": doc["summary"]["schedules_run"],
            "rate_per_min": doc["summary"]["rate_per_min"],
            "exploring_rate_per_min": doc["summary"]["exploring_rate_per_min"], "verdicts": doc["summary"]["verdicts"],
            "findings": len(doc["findings"]),
            "first_failing_run_s": first and first["found_after_s"],
            "first_finding_s": first and round(first["found_after_s"] + first["shrink_s"], 1),
            "first_finding_index": first and first["index"],
            "shrink_steps": first and first["shrink_steps"], "shrink_runs": first and first["shrink_runs"],
            "original_faults": first and first["original_faults"], "minimal_faults": first and first["faults"],
            "invariants": first and first["invariants"], "file": first and first["file"]}


def replay(work: Path, file: str, times: int, invariants: list[str]) -> dict:
    copies = work / "replays"
    shutil.rmtree(copies, ignore_errors=True)
    copies.mkdir()
    argv = ["run", "--till-profile", PROFILE, "--report", str(work / "replay-report")]
    for i in range(1, times + 1):
        copy = copies / f"replay-{i:02d}.yaml"
        shutil.copy(file, copy)
        argv += ["--scenario", str(copy)]
    rc, wall = posrig(*argv, cwd=work)
    doc = json.loads((work / "replay-report" / "acceptance.json").read_text())
    rows = [r for r in doc["scenarios"] if r["id"].startswith("replay/")]
    hits = [r for r in rows if r["verdict"] == "FAIL" and
            any(v.startswith(tuple(f"{i} (" for i in invariants)) for v in r.get("violations") or [])]
    return {"rc": rc, "wall_s": round(wall, 1), "replayed": len(rows), "reproduced": len(hits),
            "verdicts": sorted(r["verdict"] for r in rows)}


def matrix(work: Path) -> dict:
    rc, wall = posrig("run", "--till-profile", PROFILE, "--report", str(work / "matrix-report"), cwd=work)
    doc = json.loads((work / "matrix-report" / "acceptance.json").read_text())
    fails = [r["id"] for r in doc["scenarios"] if r["verdict"] == "FAIL"]
    return {"rc": rc, "wall_s": round(wall, 1), "scenarios": len(doc["scenarios"]), "FAIL": fails,
            "summary": {k: v for k, v in doc["summary"].items() if k.isupper()}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", default="3m")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--benches", default="4")
    ap.add_argument("--replays", type=int, default=10)
    ap.add_argument("--matrix", action="store_true", help="also run the matrix against the planted profile")
    ap.add_argument("--correct", type=float, default=0.0, metavar="MIN", help="minutes of exploring `correct`")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (reports, findings)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-explore-"))
    figures: dict = {"budget": args.budget, "seed": args.seed, "benches": args.benches, "work": str(work)}
    try:
        found = figures["explore"] = explore(work, PROFILE, args.budget, args.seed, args.benches)
        print(f"explore {PROFILE}: {found['schedules']} schedules, {found['rate_per_min']}/min "
              f"({found['exploring_rate_per_min']}/min while exploring); first finding "
              f"after {found['first_finding_s']} s (failing run at {found['first_failing_run_s']} s, schedule "
              f"#{found['first_finding_index']}), {found['original_faults']} -> {found['minimal_faults']} in "
              f"{found['shrink_steps']} shrink steps ({found['shrink_runs']} runs)")
        if found["file"] and args.replays:
            again = figures["replay"] = replay(work, found["file"], args.replays, found["invariants"])
            print(f"replay: {again['reproduced']}/{again['replayed']} reproduce {', '.join(found['invariants'])}")
        if args.matrix:
            m = figures["matrix"] = matrix(work)
            print(f"matrix vs {PROFILE}: {m['scenarios']} scenarios, FAIL {len(m['FAIL'])} {m['FAIL'][:5]}")
        if args.correct:
            c = figures["correct"] = explore(work, "correct", f"{args.correct:g}m", args.seed, args.benches)
            print(f"explore correct: {c['schedules']} schedules ({c['rate_per_min']}/min), findings {c['findings']}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())

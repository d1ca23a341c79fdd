"""Benchmark: wall time of the whole fault matrix on this machine with 1 and 2 workers, and seconds per scenario.

    .venv/bin/python tests/benchmarks/bench_matrix.py [--workers 1 2] [-k EXPR]

Runs `pytest harness/acceptance/suite/test_matrix.py` as a subprocess per worker count (the same rig, same process
tree); the last line is one JSON object of figures. Goal: the whole matrix under 3 minutes with -n 2.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(workers: int, keyword: str | None, rig: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "acceptance.json"
        argv = [sys.executable, "-m", "pytest", "harness/acceptance/suite/test_matrix.py", "-q",
                "-p", "no:cacheprovider", f"--rig={rig}", f"--acceptance-json={out}",
                f"--evidence-dir={Path(tmp) / 'ev'}"]
        if workers > 1:
            argv += ["-n", str(workers)]
        if keyword:
            argv += ["-k", keyword]
        t0 = time.monotonic()
        p = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
        wall = time.monotonic() - t0
        doc = json.loads(out.read_text()) if out.exists() else {"scenarios": [], "summary": {}}
    per = [s["elapsed"] for s in doc["scenarios"]]
    return {"workers": workers, "wall_s": round(wall, 1), "scenarios": len(per), "exit": p.returncode,
            "median_s_per_scenario": round(statistics.median(per), 3) if per else None,
            "p90_s_per_scenario": round(statistics.quantiles(per, n=10)[-1], 3) if len(per) > 2 else None,
            "verdicts": {k: v for k, v in doc["summary"].items() if k in ("OK", "FAIL", "ERROR", "INCONCLUSIVE")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("-k", dest="keyword", default=None)
    ap.add_argument("--rig", default=str(ROOT / "rigs" / "emulated.yaml"))
    args = ap.parse_args()
    results = []
    for n in args.workers:
        r = run(n, args.keyword, args.rig)
        results.append(r)
        print(f"-n {n}: {r['scenarios']} scenarios in {r['wall_s']} s (median {r['median_s_per_scenario']} s per "
              f"scenario, exit {r['exit']}, {r['verdicts']})", flush=True)
    figures = {f"wall_s_n{r['workers']}": r["wall_s"] for r in results}
    figures.update({f"median_s_per_scenario_n{r['workers']}": r["median_s_per_scenario"] for r in results})
    figures["scenarios"] = results[0]["scenarios"] if results else 0
    if len(results) >= 2 and results[-1]["wall_s"]:
        figures["speedup_n2_vs_n1"] = round(results[0]["wall_s"] / results[-1]["wall_s"], 2)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

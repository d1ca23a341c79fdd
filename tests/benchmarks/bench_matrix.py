"""Benchmark: wall time of the whole fault matrix on this machine with 1 and 2 workers, and seconds per scenario.

    .venv/bin/python tests/benchmarks/bench_matrix.py [--workers 1 2] [-k EXPR] [--links warm cold]

Runs `pytest harness/acceptance/suite/test_matrix.py` as a subprocess per worker count (the same rig, same process
tree), with warm link engines (kept across scenarios, the default) and/or cold ones (POSRIG_LINK_WARM=0: two
engine starts per scenario); reports wall time and the CPU seconds of the whole process tree (user+system of the
reaped children). The last line is one JSON object of figures. Goal: the whole matrix under 3 minutes with -n 2.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(workers: int, keyword: str | None, rig: str, links: str = "warm") -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "acceptance.json"
        argv = [sys.executable, "-m", "pytest", "harness/acceptance/suite/test_matrix.py", "-q",
                "-p", "no:cacheprovider", f"--rig={rig}", f"--acceptance-json={out}",
                f"--evidence-dir={Path(tmp) / 'ev'}"]
        if workers > 1:
            argv += ["-n", str(workers)]
        if keyword:
            argv += ["-k", keyword]
        env = {**os.environ, "POSRIG_LINK_WARM": "1" if links == "warm" else "0"}
        t0, cpu0 = time.monotonic(), children_cpu()
        p = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env=env)
        wall, cpu = time.monotonic() - t0, children_cpu() - cpu0
        doc = json.loads(out.read_text()) if out.exists() else {"scenarios": [], "summary": {}}
    per = [s["elapsed"] for s in doc["scenarios"]]
    return {"workers": workers, "links": links, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "cpu_s_per_scenario": round(cpu / len(per), 3) if per else None, "scenarios": len(per),
            "exit": p.returncode,
            "median_s_per_scenario": round(statistics.median(per), 3) if per else None,
            "p90_s_per_scenario": round(statistics.quantiles(per, n=10)[-1], 3) if len(per) > 2 else None,
            "verdicts": {k: v for k, v in doc["summary"].items() if k in ("OK", "FAIL", "ERROR", "INCONCLUSIVE")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("-k", dest="keyword", default=None)
    ap.add_argument("--rig", default=str(ROOT / "rigs" / "emulated.yaml"))
    ap.add_argument("--links", nargs="+", choices=["warm", "cold"], default=["warm"],
                    help="warm: link engines kept across scenarios; cold: started per scenario (both: compare)")
    args = ap.parse_args()
    results = []
    for links in args.links:
        for n in args.workers:
            r = run(n, args.keyword, args.rig, links)
            results.append(r)
            print(f"-n {n} {links}: {r['scenarios']} scenarios in {r['wall_s']} s, {r['cpu_s']} CPU-s "
                  f"({r['cpu_s_per_scenario']} per scenario; median {r['median_s_per_scenario']} s per scenario, "
                  f"exit {r['exit']}, {r['verdicts']})", flush=True)
    figures = {}
    for r in results:
        tag = f"n{r['workers']}_{r['links']}"
        figures.update({f"wall_s_{tag}": r["wall_s"], f"cpu_s_per_scenario_{tag}": r["cpu_s_per_scenario"],
                        f"median_s_per_scenario_{tag}": r["median_s_per_scenario"]})
    figures["scenarios"] = results[0]["scenarios"] if results else 0
    by = {(r["workers"], r["links"]): r for r in results}
    for links in args.links:
        if (1, links) in by and (2, links) in by and by[(2, links)]["wall_s"]:
            figures[f"speedup_n2_vs_n1_{links}"] = round(by[(1, links)]["wall_s"] / by[(2, links)]["wall_s"], 2)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

"""Benchmark: the whole fault matrix, warm (bench pool, warm till and link engines, fork server) against cold (one
fresh bench at a time per worker), with the figures issue 12 asks for.

    .venv/bin/python tests/benchmarks/bench_matrix.py [--modes warm cold] [-n auto] [-k EXPR]
        [--profiles correct print-on-timeout ...] [--hogs 0] [--repeat 1]

Each run is `pytest harness/acceptance/suite/test_matrix.py -n N` in a subprocess (the same suite `posrig run` runs)
and prints:
- wall time, and CPU seconds per scenario: user+system of the whole process tree (workers, engines, fork
  servers, tills; reaped children), over the scenarios run;
- the floor: the scaled protocol timers each scenario must outlast (the sum of its faults' `linger`: how long a
  fault stays armed after it fired, past the waiting side's timer; plus the cashier's pause before an abort),
  summed over the matrix and divided by the concurrency (workers x benches per worker, from acceptance.json);
  and the ratio wall / floor;
- verdicts, and (with both modes) a scenario-by-scenario comparison of warm against cold: they must be identical.

`--profiles` runs every named reference-till profile (each seeded profile must still be caught: some FAIL);
`--hogs N` runs N busy loops for the whole run (stability: 0 false failures on `correct`); `--repeat K` runs the
warm matrix K times in a row. A `correct` run with any row not OK keeps its report, evidence and pytest output in
`--keep` (default benchmarks-kept/), so a false alarm can be read, not only counted. The last line is one JSON
object with every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

HOG = "while True: pass"
COLD_ENV = {"POSRIG_LINK_WARM": "0", "POSRIG_TILL_WARM": "0", "POSRIG_FORKSERVER": "0"}


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def floor_seconds(scale: float, keyword_ids: set[str] | None = None) -> tuple[float, int]:
    """The sum over the matrix's scenarios of the scaled timers each must outlast, and how many scenarios."""
    from harness.acceptance.matrix import scenarios

    total, n = 0.0, 0
    for s in scenarios(scale):
        if keyword_ids is not None and s.id not in keyword_ids:
            continue
        n += 1
        total += sum(f.linger for f in s.faults)
        if s.cashier_abort:
            total += 2.0 * scale                      # the cashier's pause once the host is deciding
    return total, n


@contextlib.contextmanager
def hogs(n: int):
    procs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(n)]
    try:
        if n:
            time.sleep(1.0)
        yield
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def run(mode: str, workers: str, keyword: str | None, rig: str, profile: str, benches: str,
        keep: Path | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "acceptance.json"
        argv = [sys.executable, "-m", "pytest", "harness/acceptance/suite/test_matrix.py", "-q",
                "-p", "no:cacheprovider", "-p", "no:hypothesispytest", f"--rig={rig}", f"--acceptance-json={out}",
                f"--evidence-dir={Path(tmp) / 'ev'}", f"--till-profile={profile}", "-n", workers,
                f"--benches={'1' if mode == 'cold' else benches}"]
        if keyword:
            argv += ["-k", keyword]
        env = {**os.environ, **(COLD_ENV if mode == "cold" else {})}
        t0, cpu0 = time.monotonic(), children_cpu()
        p = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env=env)
        wall, cpu = time.monotonic() - t0, children_cpu() - cpu0
        doc = json.loads(out.read_text()) if out.exists() else {"scenarios": [], "summary": {}}
        kept = None
        if keep is not None and profile == "correct" and (p.returncode or any(
                s["verdict"] != "OK" for s in doc["scenarios"])):       # a false alarm: its evidence is the point
            kept = keep / f"{profile}-{mode}-{time.strftime('%Y%m%dT%H%M%S')}"
            shutil.copytree(tmp, kept)
            (kept / "pytest-output.txt").write_text(p.stdout + p.stderr)
    rows = doc["scenarios"]
    per = [s["elapsed"] for s in rows if s.get("elapsed")]
    conc = doc.get("concurrency") or {}
    return {"mode": mode, "profile": profile, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "cpu_s_per_scenario": round(cpu / len(rows), 3) if rows else None, "scenarios": len(rows),
            "exit": p.returncode, "workers": conc.get("workers"), "benches_per_worker": conc.get("benches_per_worker"),
            "median_s_per_scenario": round(statistics.median(per), 3) if per else None,
            "verdicts": {r["id"]: r["verdict"] for r in rows},
            "counts": {k: v for k, v in doc.get("summary", {}).items() if k in ("OK", "FAIL", "ERROR", "INCONCLUSIVE",
                                                                              "NOT_APPLICABLE")},
            "kept": str(kept) if kept else None,
            "tail": "" if p.returncode == 0 else (p.stdout[-1500:] + p.stderr[-500:])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modes", nargs="+", choices=["warm", "cold"], default=["warm", "cold"])
    ap.add_argument("-n", dest="workers", default="auto", help="pytest-xdist workers (default auto)")
    ap.add_argument("--benches", default="auto", help="benches per worker in warm mode (default auto)")
    ap.add_argument("-k", dest="keyword", default=None)
    ap.add_argument("--rig", default=str(ROOT / "rigs" / "emulated.yaml"))
    ap.add_argument("--profiles", nargs="+", default=["correct"])
    ap.add_argument("--hogs", type=int, default=0, help="busy-loop processes running for the whole benchmark")
    ap.add_argument("--repeat", type=int, default=1, help="warm runs of each profile, in a row")
    ap.add_argument("--keep", type=Path, default=ROOT / "benchmarks-kept",
                    help="where a `correct` run with a row not OK keeps its report, evidence and output")
    args = ap.parse_args()

    from harness.core.rig import load_rig

    scale = load_rig(Path(args.rig)).timing.scale
    figures: dict = {"cores": os.cpu_count(), "loadavg_at_start": os.getloadavg(), "hogs": args.hogs,
                     "timing_scale": scale, "runs": []}
    with hogs(args.hogs):
        for profile in args.profiles:
            results = {}
            for mode in args.modes:
                for i in range(args.repeat if mode == "warm" else 1):
                    r = run(mode, args.workers, args.keyword, args.rig, profile, args.benches, args.keep)
                    ids = set(r["verdicts"]) or None
                    floor_sum, n = floor_seconds(scale, ids)
                    concurrency = (r["workers"] or 1) * (r["benches_per_worker"] or 1)
                    r["floor_s"] = round(floor_sum / concurrency, 1)
                    r["ratio_wall_to_floor"] = round(r["wall_s"] / r["floor_s"], 2) if r["floor_s"] else None
                    print(f"{profile} {mode}#{i + 1}: {r['scenarios']} scenarios in {r['wall_s']} s wall, "
                          f"{r['cpu_s_per_scenario']} CPU-s per scenario, concurrency {concurrency} "
                          f"({r['workers']} workers x {r['benches_per_worker']} benches), floor {r['floor_s']} s "
                          f"(timers {floor_sum:.0f} s / {concurrency}), wall/floor {r['ratio_wall_to_floor']}, "
                          f"exit {r['exit']}, {r['counts']}", flush=True)
                    bad = {k: v for k, v in r["verdicts"].items() if v != "OK"}
                    if bad:
                        print(f"  not OK: {bad}" + (f" (kept in {r['kept']})" if r["kept"] else ""), flush=True)
                    if r["tail"]:
                        print(r["tail"], flush=True)
                    results.setdefault(mode, []).append(r)
            if "warm" in results and "cold" in results:
                warm, cold = results["warm"][0]["verdicts"], results["cold"][0]["verdicts"]
                differ = sorted(k for k in set(warm) | set(cold) if warm.get(k) != cold.get(k))
                print(f"{profile}: warm vs cold verdicts: {len(warm) - len(differ)} identical, {len(differ)} differ"
                      + (": " + ", ".join(f"{k} warm {warm.get(k)} cold {cold.get(k)}" for k in differ[:20])
                         if differ else ""), flush=True)
                figures.setdefault("warm_vs_cold", {})[profile] = {"identical": len(warm) - len(differ),
                                                                   "differ": differ}
            for rs in results.values():
                for r in rs:
                    figures["runs"].append({k: v for k, v in r.items() if k not in ("verdicts", "tail")})
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

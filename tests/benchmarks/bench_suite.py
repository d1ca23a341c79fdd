"""Where the CI suite's minutes go: wall time, CPU seconds, and worker-seconds (setup + call + teardown) per tier
and per file, from one pytest run with `--durations=0`.

    .venv/bin/python tests/benchmarks/bench_suite.py                   # the whole suite, -n auto (`./bootstrap test`)
    .venv/bin/python tests/benchmarks/bench_suite.py -n 2 tests/unit   # any pytest arguments instead
    .venv/bin/python tests/benchmarks/bench_suite.py --from run.txt    # read a saved `--durations=0` output

Worker-seconds summed over all workers, divided by the wall time, say how busy the workers were; CPU seconds (this
run's processes and the children they waited for) against wall x cores say how busy the machine was for it. A
machine shared with other work gives noisy figures: the load average before and after is printed with them.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^([\d.]+)s (setup|call|teardown)\s+(\S+)")
SUMMARY = re.compile(r"^=* ?(\d+ (?:passed|failed|error).*?) in ([\d.]+)s", re.M)


def tier(nodeid: str) -> str:
    path = nodeid.split("::")[0]
    parts = path.split("/")
    return "/".join(parts[:2]) if parts[0] == "tests" else "/".join(parts[:-1]) or path


def parse(text: str) -> dict[str, dict[str, float]]:
    """node id -> {phase: seconds} from pytest's `--durations=0` lines."""
    tests: dict[str, dict[str, float]] = collections.defaultdict(dict)
    for line in text.splitlines():
        m = LINE.match(line)
        if m:
            tests[m[3]][m[2]] = float(m[1])
    return tests


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="saved", metavar="FILE", help="read a saved `pytest --durations=0` output")
    ap.add_argument("--top", type=int, default=15, help="files and tests to list (default 15)")
    args, pytest_args = ap.parse_known_args(argv)
    load_before = os.getloadavg()
    wall = cpu = None
    if args.saved:
        text = Path(args.saved).read_text(errors="replace")
    else:
        cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--durations=0",
               *(pytest_args or ["-n", "auto"])]
        print("running:", " ".join(cmd), file=sys.stderr)
        began, before = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
        text = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True).stdout
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = time.monotonic() - began
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    tests = parse(text)
    by_file, by_tier = collections.Counter(), collections.Counter()
    for nodeid, phases in tests.items():
        spent = sum(phases.values())
        by_file[nodeid.split("::")[0]] += spent
        by_tier[tier(nodeid)] += spent
    total = sum(by_tier.values())
    summary = SUMMARY.findall(text)
    print(f"outcome: {summary[-1][0] if summary else 'no summary line'}")
    if wall is not None:
        cores = len(os.sched_getaffinity(0))
        print(f"wall {wall:.1f} s; CPU {cpu:.1f} s ({100 * cpu / (wall * cores):.0f}% of {cores} cores); "
              f"load {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after")
    print(f"worker-seconds {total:.1f} over {len(tests)} tests (those of 5 ms or more)")
    print("by tier:")
    for name, spent in by_tier.most_common():
        print(f"  {spent:8.1f} s  {name}")
    print(f"by file (top {args.top}):")
    for name, spent in by_file.most_common(args.top):
        print(f"  {spent:8.1f} s  {name}")
    print(f"by test (top {args.top}):")
    slowest = sorted(tests.items(), key=lambda kv: -sum(kv[1].values()))[: args.top]
    for nodeid, phases in slowest:
        print(f"  {sum(phases.values()):8.2f} s  {nodeid}")
    print(json.dumps({"wall_s": wall and round(wall, 1), "cpu_s": cpu and round(cpu, 1),
                      "worker_s": round(total, 1), "tests": len(tests),
                      "by_tier": {k: round(v, 1) for k, v in by_tier.most_common()},
                      "load_before": round(load_before[0], 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

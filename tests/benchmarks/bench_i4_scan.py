"""CPU cost of the oracle's I4 evidence scan (`scan_evidence`), per scenario folder, on real evidence.

    PYTHONPATH=$PWD .venv/bin/python tests/benchmarks/bench_i4_scan.py EVIDENCE_ROOT [--runs 3]

EVIDENCE_ROOT holds one folder per scenario (a matrix run's `evidence/`). Each folder is scanned `--runs` times;
reported: folders, files, MB, CPU ms per folder (median of the runs' totals / folders) and what was found. The
last line is one JSON object. Run it against another tree's harness (PYTHONPATH) to compare implementations.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from harness.acceptance.oracle import scan_evidence


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    folders = sorted(p for p in args.root.iterdir() if p.is_dir())
    files = [f for d in folders for f in d.rglob("*") if f.is_file()]
    size = sum(f.stat().st_size for f in files)
    totals, found = [], 0
    for _ in range(args.runs):
        t0 = time.process_time()
        found = sum(len(scan_evidence(d)) for d in folders)
        totals.append(time.process_time() - t0)
    per_folder_ms = statistics.median(totals) / max(1, len(folders)) * 1000
    print(f"{len(folders)} folders, {len(files)} files, {size / 1e6:.1f} MB: "
          f"{per_folder_ms:.2f} ms CPU per folder; {found} file(s) with a card number in clear")
    print(json.dumps({"folders": len(folders), "files": len(files), "mb": round(size / 1e6, 2),
                      "cpu_ms_per_folder": round(per_folder_ms, 3), "found": found}))


if __name__ == "__main__":
    main()

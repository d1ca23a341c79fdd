"""Long fuzz runs: a million frames into each decoder, reporting frames/s, exceptions by type, hangs and memory.

    nice .venv/bin/python tests/benchmarks/bench_fuzz.py                      # 1,000,000 frames per decoder
    nice .venv/bin/python tests/benchmarks/bench_fuzz.py --frames 20000 --target escpos --save crashes/

The decoders are the fuzz tier's targets (`tests/fuzz/targets.py`): the ESC/POS decoder and receipt builder,
the ISO 8583 host (framing, decoding, booking in a real SQLite ledger, answering), the ZVT terminal's ECR side
(framing, decoding, dispatch) and the link's framing (stage detection, FrameReader, scapy dissection). Each is
fed frames from its own generator (valid messages, mutations of them, random bytes), state kept across frames
as on one connection.

Per decoder: frames/s (time inside `feed` only, and wall time with generation), exceptions by type (the first
frame of each saved with --save; the target is rebuilt after one), hangs (a frame still running after
--hang-seconds is interrupted by SIGALRM and counted), the slowest frame, and memory growth: RSS and Python
heap (tracemalloc, --tracemalloc, slows the run ~3x) after the first 10 % of frames against the end. The last
line is one JSON object.
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import logging
import os
import random
import signal
import sys
import time
import traceback
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.fuzz.targets import TARGETS  # noqa: E402


class Hang(Exception):
    """A frame ran past the per-frame time bound."""


def _alarm(signum, frame):
    raise Hang


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def heap_mib() -> float | None:
    return tracemalloc.get_traced_memory()[0] / 2**20 if tracemalloc.is_tracing() else None


def run(name: str, frames: int, seed: int, hang_seconds: float, save: Path | None) -> dict:
    rng = random.Random(seed)
    target = TARGETS[name]()
    source = target.frames(rng)
    errors: collections.Counter[str] = collections.Counter()
    first: dict[str, str] = {}
    hangs = 0
    slowest = (0.0, b"")
    busy = 0.0
    mark = max(1, frames // 10)
    base_rss = base_heap = None
    started = time.perf_counter()
    clock = time.perf_counter
    for i in range(frames):
        frame = next(source)
        signal.setitimer(signal.ITIMER_REAL, hang_seconds)
        t0 = clock()
        try:
            target.feed(frame)
        except Hang:
            hangs += 1
            errors["Hang"] += 1
            first.setdefault("Hang", frame.hex())
            target, source = _rebuilt(name, target, rng)
        except Exception as exc:  # noqa: BLE001 - counted and reported: that is the point
            kind = type(exc).__name__
            errors[kind] += 1
            if kind not in first:
                first[kind] = f"{frame.hex()[:400]} :: {traceback.format_exc(limit=-3).strip().splitlines()[-1]}"
                if save is not None:
                    save.mkdir(parents=True, exist_ok=True)
                    (save / f"{name}-{kind}.bin").write_bytes(frame)
            target, source = _rebuilt(name, target, rng)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        spent = clock() - t0
        busy += spent
        if spent > slowest[0]:
            slowest = (spent, frame)
        if i + 1 == mark:
            gc.collect()
            base_rss, base_heap = rss_mib(), heap_mib()
    wall = time.perf_counter() - started
    counts = ("receipts", "streams", "answers", "messages", "staged", "ledgers")
    extra = {k: v for k, v in vars(target).items() if k in counts}
    try:
        target.close()
    except Exception:  # noqa: BLE001 - a close failure is reported, not fatal
        errors["close:" + traceback.format_exc(limit=-1).strip().splitlines()[-1][:60]] += 1
    gc.collect()
    end_rss, end_heap = rss_mib(), heap_mib()
    return {
        "decoder": name, "frames": frames, "seed": seed, "frames_per_s": round(frames / busy),
        "wall_frames_per_s": round(frames / wall), "wall_s": round(wall, 1),
        "exceptions": dict(errors), "first_of_each": first, "hangs": hangs, "hang_bound_s": hang_seconds,
        "slowest_frame_ms": round(slowest[0] * 1000, 2), "slowest_frame_bytes": len(slowest[1]),
        "slowest_frame_hex": slowest[1][:100].hex(),
        "rss_mib_after_10pct": round(base_rss, 1) if base_rss else None, "rss_mib_end": round(end_rss, 1),
        "rss_growth_mib": round(end_rss - base_rss, 1) if base_rss else None,
        "heap_growth_mib": round(end_heap - base_heap, 2) if end_heap is not None and base_heap is not None
        else None,
        **extra,
    }


def _rebuilt(name: str, target, rng: random.Random):
    try:
        target.close()
    except Exception:  # noqa: BLE001 - the broken one is dropped either way
        pass
    fresh = TARGETS[name]()
    return fresh, fresh.frames(rng)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=1_000_000, help="frames per decoder (default 1,000,000)")
    ap.add_argument("--target", action="append", choices=sorted(TARGETS),
                    help="one decoder (repeatable; default: all)")
    ap.add_argument("--seed", type=int, default=20260101)
    ap.add_argument("--hang-seconds", type=float, default=2.0, help="per-frame time bound (default 2 s)")
    ap.add_argument("--tracemalloc", action="store_true", help="also measure the Python heap (slower)")
    ap.add_argument("--save", type=Path, help="write the first frame of each exception type here")
    args = ap.parse_args(argv)
    logging.disable(logging.CRITICAL)          # the devices log every malformed frame they survive
    signal.signal(signal.SIGALRM, _alarm)
    if args.tracemalloc:
        tracemalloc.start()
    results = []
    for name in args.target or list(TARGETS):
        r = run(name, args.frames, args.seed, args.hang_seconds, args.save)
        results.append(r)
        print(f"{name:14} {r['frames']:>9,} frames  {r['frames_per_s']:>8,} frames/s ({r['wall_frames_per_s']:,} "
              f"with generation, {r['wall_s']} s)  exceptions {r['exceptions'] or 'none'}  hangs {r['hangs']}  "
              f"slowest {r['slowest_frame_ms']} ms  RSS {r['rss_mib_after_10pct']} -> {r['rss_mib_end']} MiB"
              + (f"  heap +{r['heap_growth_mib']} MiB" if r["heap_growth_mib"] is not None else ""), flush=True)
        for kind, where in r["first_of_each"].items():
            print(f"    first {kind}: {where}", flush=True)
    print(json.dumps({"bench": "fuzz", "results": results}))
    return 1 if any(r["exceptions"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())

"""The exploration report: `exploration.json` (machine-readable, in the spirit of acceptance.json) and
`summary.txt` (what a person reads first), both in the report folder beside the findings' scenario files."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from harness import __version__
from harness.core.masking import mask_obj
from harness.explore.explorer import Exploration


def to_json(book: Exploration, meta: dict[str, Any]) -> dict[str, Any]:
    opts = book.options
    return mask_obj({
        "posrig": __version__, "kind": "exploration", **meta,
        "seed": opts.seed, "budget_s": opts.budget, "timing_scale": opts.scale,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(book.started)),
        "summary": {"schedules_run": book.explored, "elapsed_s": round(book.elapsed, 1),
                    "rate_per_min": round(book.rate, 1), "exploring_rate_per_min": round(book.exploring_rate, 1),
                    "shrinking_s": round(book.shrinking, 1), "verdicts": book.verdicts,
                    "candidates": book.candidates, "similar_to_a_finding": book.similar, "findings": len(book.findings),
                    "not_reproduced": len(book.unconfirmed), "shrink_and_confirm_runs": book.extra_runs,
                    "interrupted": book.interrupted},
        "findings": [f.to_json() for f in book.findings],
        "not_reproduced": book.unconfirmed,
        "runs": book.runs,
    })


def summary(book: Exploration, meta: dict[str, Any]) -> str:
    lines = [f"posrig explore: {book.explored} schedules in {book.elapsed / 60:.1f} min "
             f"({book.rate:.1f}/min; {book.exploring_rate:.1f}/min while exploring), seed {book.options.seed}, "
             f"till profile {meta.get('till_profile') or '?'}",
             "verdicts: " + (", ".join(f"{k} {v}" for k, v in sorted(book.verdicts.items())) or "none"),
             "(INCONCLUSIVE: a fault of the schedule never fired or a reset was not taken; not a finding)",
             f"findings: {len(book.findings)} (failing runs like an earlier finding, not shrunk again: "
             f"{book.similar})"]
    for f in book.findings:
        lines += [f"  {Path(f.file).name}: breaks {', '.join(f.invariants)}",
                  f"    minimal: {f.schedule.describe()}",
                  f"    found in schedule #{f.index} after {f.found_after:.0f} s; shrunk from "
                  f"{len(f.original.faults)} faults in {f.shrink_steps} steps ({f.shrink_runs} runs, "
                  f"{f.shrink_seconds:.0f} s); reproduced {f.reproduced}",
                  *(f"    {v[:200]}" for v in f.violations[:3]),
                  f"    replay: posrig run --scenario {f.file}"
                  + (f" --till-profile {meta['till_profile']}" if meta.get("till_profile") else "")]
    for u in book.unconfirmed:
        lines.append(f"  not reproduced ({u['reproduced']}): #{u['index']} {u['minimal']}")
    return "\n".join(lines) + "\n"


def write(folder: Path, book: Exploration, meta: dict[str, Any]) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    doc, text = folder / "exploration.json", folder / "summary.txt"
    doc.write_text(json.dumps(to_json(book, meta), indent=1, default=str))
    text.write_text(summary(book, meta))
    return doc, text

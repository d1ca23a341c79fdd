"""Benchmark: detection power by mutation testing (issue 14): how many small, plausible mistakes in the reference
till's decision code does the acceptance matrix (then `posrig explore`) catch? A figure nobody can tune to.

    .venv/bin/python tests/benchmarks/bench_detection.py --list                 # the mutants, nothing run
    .venv/bin/python tests/benchmarks/bench_detection.py [--mutants N] [--seed S] [--only ID ...] [--workers N]
        [--explore-budget 10m] [--explore-split total|each] [--out detection.json] [--markdown detection.md]

1. Mutants (`detection_mutants.py`): flipped conditions, dropped calls (aborts, queries, prints, status writes),
   swapped statuses and answers, prints and drawer pulses moved early or late, removed exception handlers, in
   the decision code of harness/reference_till (the `correct` profile, the sale flow, the ZVT client's verdicts,
   the printer client; not the seeded bug profiles). Ids are stable: `register.py:183 flip-if`. `--mutants N`
   takes a seeded sample (default: all).
2. Baseline: the unmutated tree's matrix must be clean (a row FAIL or INCONCLUSIVE under load is excused only
   when it passes run alone; anything else stops the benchmark).
3. Sanity mutant: every settled payment recorded as failed; the matrix must kill it, and the probe must show the
   launched till imported the copied tree (else the runs test something else: stop).
4. Each mutant: `harness` (and `fixtures`, `rigs`) copied to a fresh folder, the one file replaced by the mutant,
   `posrig run --maxfail 1` with that folder as working directory and only PYTHONPATH (the till, its warm keeper
   and the fork server are children of the run and inherit both). KILLED: a scenario's verdict is FAIL (its
   first failing scenario and invariants are shown), and that scenario fails again when run alone (else the
   matrix runs once more, up to 3 runs: a row that fails once under load is not the mutant's doing; a mutant
   whose every run FAILs, on rows that pass alone, is killed as intermittent: the unmutated matrix FAILs in
   none of 20 runs); CRASH: no FAIL but the
   run broke (ERROR verdicts, a till that would not start, a suite that could not load); TIMEOUT: the run
   outlived `--run-timeout`. A probe
   appended to the mutated module records every process that imported it: a mutant the launched till never
   imported is marked `not-run`.
5. Survivors of the matrix: `posrig explore` on the mutated tree for `--explore-budget` (shared by all survivors
   with `--explore-split total`, the default, or for each with `each`; 0 skips); a confirmed finding kills it.
   A finding is replayed on the unmutated tree first: if that fails too, it is not the mutant's (no kill).
   A matrix run stopped on an INCONCLUSIVE row runs that row alone: INCONCLUSIVE again is `killed-signoff` (the
   mutant keeps a fault from ever hitting its stage, e.g. the till never sends the abort; the run is not signed
   off), FAIL a kill; OK alone was load: the whole matrix runs once more.
6. Still surviving: `equivalent` when `tests/benchmarks/detection_equivalents.yaml` gives a reason for its id,
   `allowed` when that reason starts with "allowed:" (the till behaves differently, but as docs/till-contract.md
   permits: e.g. `unknown` instead of `failed` with nothing charged; an oracle failing it would fail correct
   tills), `gap` when it starts with "gap:" (a real mistake the matrix misses: counted against the score), else
   `unexplained`. Score = killed (matrix + crash + sign-off + explore) / (mutants run - equivalent - allowed);
   the strict score also counts the allowed ones as missed.
   `--rescore JSON` applies an edited equivalents file to an earlier run without running anything.

The JSON (`--out`) is rewritten after every mutant, so a cut-short run still has its table; `--markdown` writes
the table for a closing note. Figures are wall-clock on a shared machine: noisy when other work runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import detection_mutants as dm  # noqa: E402

EQUIVALENTS = HERE / "detection_equivalents.yaml"
COPIED = ("harness", "fixtures", "rigs")
PROBE = '''

# -- posrig mutation probe (tests/benchmarks/bench_detection.py): who imported this mutant --
def _posrig_mutant_probe():
    import json as _j, os as _o, sys as _s
    where = _o.environ.get("POSRIG_MUTANT_PROBE")
    if where:
        with open(where, "a") as out:
            out.write(_j.dumps({"pid": _o.getpid(), "argv": _s.argv[:3], "file": __file__}) + "\\n")


_posrig_mutant_probe()
'''
KILLED = ("killed-matrix", "killed-crash", "killed-signoff", "killed-explore")
SURVIVED = ("survived", "equivalent", "allowed", "gap", "unexplained")
NOT_COUNTED = ("equivalent", "allowed")      # outside the score's denominator: no mistake for the oracle to see


# -- trees and runs --------------------------------------------------------------------------------------------------
def make_tree(work: Path, name: str) -> Path:
    """A fresh copy of the harness (and fixtures, rigs) under work/name; no bytecode caches."""
    tree = work / name
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    for part in COPIED:
        if (ROOT / part).exists():
            shutil.copytree(ROOT / part, tree / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return tree


def plant(tree: Path, file: str, source: str) -> None:
    (tree / "harness" / "reference_till" / file).write_text(source + PROBE)


def posrig(tree: Path, argv: list[str], log: Path, timeout: float) -> tuple[int | None, float]:
    """`python -m harness.cli ARGV` with `tree` as working directory and the only PYTHONPATH entry (so `python -m`
    in the children, whose sys.path starts with the working directory, imports the same tree). rc None: timeout."""
    env = {**os.environ, "PYTHONPATH": str(tree), "POSRIG_MUTANT_PROBE": str(tree / "probe.jsonl")}
    env.pop("POSRIG_TILL_PROFILE", None)
    t0 = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "harness.cli", *argv], cwd=tree, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            rc = None
    return rc, time.monotonic() - t0


def probe(tree: Path) -> dict:
    """Which processes imported the mutated module from the copy: the launched till and the run itself."""
    lines = []
    try:
        lines = [json.loads(x) for x in (tree / "probe.jsonl").read_text().splitlines() if x.strip()]
    except (OSError, ValueError):
        pass
    ours = [x for x in lines if str(x.get("file", "")).startswith(str(tree))]
    till = [x for x in ours if any("reference_till" in str(a) for a in x.get("argv", []))]
    return {"imports": len(lines), "from_copy": len(ours), "till_imports": len(till),
            "foreign": len(lines) - len(ours)}


def confirm(tree: Path, report: Path, scenario: str, args) -> str:
    """The verdict of one scenario run again on `tree` (a kill counts once its failing row fails twice)."""
    shutil.rmtree(report, ignore_errors=True)
    report.mkdir(parents=True, exist_ok=True)
    posrig(tree, ["run", "-k", scenario, "--report", str(report)], report / "posrig-run.log", args.run_timeout)
    try:
        rows = json.loads((report / "acceptance.json").read_text())["scenarios"]
    except (OSError, ValueError, KeyError):
        return "no report"
    return next((r["verdict"] for r in rows if r["id"] == scenario), "not run")


MATRIX_RUNS = 3   # matrix runs of one mutant at most, when what stopped a run does not happen again alone


def judge(tree: Path, report: Path, scratch: Path, args) -> dict:
    """The matrix on a mutant's tree (stopping at its first row not OK), that row then run alone.

    FAIL, and FAIL again alone: `killed-matrix`. INCONCLUSIVE, and INCONCLUSIVE again alone: `killed-signoff` (the
    mutant keeps a fault from ever hitting its stage, e.g. the till never sends the cashier's abort: the run is not
    signed off); FAIL alone is a kill. A row that passes alone was load or a race: the matrix runs again, up to
    MATRIX_RUNS times. A mutant whose every matrix run FAILs, a row each time that passes alone, is killed too
    (`intermittent`: its mistake shows only in some interleavings; the unmutated matrix FAILs in none of 20 runs);
    one whose runs stop only on rows that pass alone survives, the rows named. Anything else (clean, crash,
    timeout) is the result as it is."""
    failed, doubtful, alone = [], [], {}
    got: dict = {}
    for run in range(1, MATRIX_RUNS + 1):
        got = matrix(tree, report, args)
        if got["result"] == "killed-matrix":
            again = confirm(tree, scratch, got["scenario"], args)
            alone[got["scenario"]] = again
            if again == "FAIL":
                return {**got, "confirmed": True, "runs": run, "alone": alone}
            failed.append(got["scenario"])
            continue
        if got["result"] == "inconclusive":
            for row in got.get("inconclusive") or []:
                alone[row] = confirm(tree, scratch, row, args)
            for verdict, result in (("FAIL", "killed-matrix"), ("INCONCLUSIVE", "killed-signoff")):
                hit = next((row for row in got["inconclusive"] if alone.get(row) == verdict), None)
                if hit:
                    return {**got, "result": result, "scenario": hit, "confirmed": True, "runs": run, "alone": alone}
            doubtful += got["inconclusive"]
            continue
        return {**got, "runs": run, "alone": alone, "unconfirmed": failed + doubtful}
    if len(failed) == MATRIX_RUNS:
        return {**got, "result": "killed-matrix", "intermittent": True, "runs": MATRIX_RUNS, "alone": alone,
                "unconfirmed": failed}
    return {**got, "result": "survived", "runs": MATRIX_RUNS, "alone": alone, "unconfirmed": failed + doubtful,
            "why": f"every matrix run stopped on a row that passed alone: {', '.join(failed + doubtful)}"}


def matrix(tree: Path, report: Path, args, maxfail: int | None = 1) -> dict:
    """Run the matrix on `tree`; the classification and what it is based on."""
    argv = ["run", "--report", str(report)]
    if maxfail:
        argv += ["--maxfail", str(maxfail)]
    if args.workers:
        argv += ["-n", str(args.workers)]
    if args.benches:
        argv += ["--benches", str(args.benches)]
    if args.keyword:
        argv += ["-k", args.keyword]
    report.mkdir(parents=True, exist_ok=True)
    rc, wall = posrig(tree, argv, report / "posrig-run.log", args.run_timeout)
    out = {"rc": rc, "matrix_s": round(wall, 1)}
    if rc is None:
        return {**out, "result": "timeout", "why": f"the run outlived --run-timeout {args.run_timeout:g} s"}
    try:
        doc = json.loads((report / "acceptance.json").read_text())
    except (OSError, ValueError):
        doc = None
    return {**out, **classify(doc, rc, tail(report / "posrig-run.log"))}


def classify(doc: dict | None, rc: int, log_tail: str = "") -> dict:
    """A finished matrix run's result from its acceptance.json (None: none was written) and exit code.

    >>> classify({"summary": {"OK": 3, "passed": True}, "scenarios": [{"id": "a", "verdict": "OK"}]}, 0)["result"]
    'survived'
    """
    if doc is None:
        return {"result": "killed-crash", "why": f"no acceptance.json (posrig run exit {rc}): {log_tail}"}
    rows = doc.get("scenarios", [])
    summary = doc.get("summary", {})
    out: dict = {"verdicts": {k: summary.get(k, 0) for k in ("OK", "FAIL", "ERROR", "INCONCLUSIVE",
                                                             "NOT_APPLICABLE")},
                 "ran": summary.get("ran")}
    fails = [r for r in rows if r.get("verdict") == "FAIL"]
    if fails:
        first = fails[0]
        return {**out, "result": "killed-matrix", "scenario": first["id"],
                "invariants": sorted({v.split(" ", 1)[0] for v in first.get("violations") or []}),
                "why": "; ".join(first.get("violations") or [])[:300]}
    bad = [r for r in rows if r.get("verdict") == "ERROR" and r.get("status", "ran") != "not started"]
    if doc.get("collection_errors") or bad:
        where = bad[0] if bad else {}
        return {**out, "result": "killed-crash", "scenario": where.get("id"),
                "why": (f"suite not collected: {doc['collection_errors'][:2]}" if doc.get("collection_errors")
                        else f"ERROR: {(where.get('observed') or where.get('reason') or '')[:300]}")}
    unsure = [r for r in rows if r.get("verdict") == "INCONCLUSIVE"]
    if unsure:
        return {**out, "result": "inconclusive", "scenario": unsure[0]["id"], "inconclusive": [r["id"] for r in unsure],
                "why": (unsure[0].get("observed") or "")[:300]}
    if rc != 0 and not summary.get("passed"):
        return {**out, "result": "killed-crash", "why": f"posrig run exit {rc}: {log_tail}"}
    return {**out, "result": "survived"}


def replay_unmutated(work: Path, scenario_file: str | None, args) -> str:
    """The verdict of an explore finding's scenario file on the unmutated tree ('OK' makes it the mutant's)."""
    if not scenario_file:
        return "no scenario file"
    tree = make_tree(work, "control")
    report = work / "control-report"
    shutil.rmtree(report, ignore_errors=True)
    try:
        posrig(tree, ["run", "--scenario", scenario_file, "--report", str(report)], work / "control.log",
               args.run_timeout)
        doc = json.loads((report / "acceptance.json").read_text())
        rows = [r for r in doc["scenarios"] if r["id"].startswith("replay/")]
        return rows[0]["verdict"] if rows else "not run"
    except (OSError, ValueError, KeyError) as exc:
        return f"replay failed ({exc})"
    finally:
        shutil.rmtree(tree, ignore_errors=True)


def tail(log: Path, n: int = 300) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])[-n:]
    except OSError:
        return ""


def explore(tree: Path, report: Path, budget_s: float, seed: int, args) -> dict:
    argv = ["explore", "--budget", f"{max(budget_s, 1):.0f}s", "--seed", str(seed), "--report", str(report)]
    if args.benches:
        argv += ["--benches", str(args.benches)]
    report.mkdir(parents=True, exist_ok=True)
    rc, wall = posrig(tree, argv, report / "posrig-explore.log", budget_s * 3 + 300)
    out = {"explore_rc": rc, "explore_s": round(wall, 1), "explore_budget_s": round(budget_s)}
    try:
        doc = json.loads((report / "exploration.json").read_text())
    except (OSError, ValueError):
        return {**out, "explore": "no exploration.json: " + tail(report / "posrig-explore.log")}
    out["explore_schedules"] = doc.get("summary", {}).get("schedules_run")
    if doc.get("findings"):
        f = doc["findings"][0]
        return {**out, "explore": "finding", "invariants": f.get("invariants"), "scenario": f.get("file")}
    return {**out, "explore": "none"}


# -- equivalents, table ----------------------------------------------------------------------------------------------
def equivalents(path: Path = EQUIVALENTS) -> dict[str, str]:
    """Mutant id -> why it is equivalent (cannot change what the till does that the oracle could see)."""
    if not path.exists():
        return {}
    import yaml

    doc = yaml.safe_load(path.read_text()) or {}
    if not isinstance(doc, dict):
        raise SystemExit(f"bench_detection: {path}: expected a mapping of mutant id to reason")
    return {str(k): str(v).strip() for k, v in doc.items()}


def outcome_text(row: dict) -> str:
    r = row.get("result", "")
    if r == "killed-matrix":
        how = (f"FAIL in all {row.get('runs')} runs, each row passing alone: {', '.join(row.get('unconfirmed') or [])}"
               if row.get("intermittent") else ', '.join(row.get('invariants') or []) or '?')
        return f"killed by matrix: {row.get('scenario')} ({how})"
    if r == "killed-crash":
        return f"killed: crash ({(row.get('why') or '')[:90]})"
    if r == "killed-signoff":
        return f"killed: not signed off ({row.get('scenario')} INCONCLUSIVE twice: its fault never hit)"
    if r == "killed-explore":
        return f"killed by explore ({', '.join(row.get('invariants') or [])})"
    if r == "equivalent":
        return f"equivalent: {row.get('reason', '').removeprefix('equivalent:').strip()}"
    if r == "allowed":
        return f"allowed by the till contract: {row.get('reason', '')[8:].strip()}"
    if r == "gap":
        return f"survived, known gap: {row.get('reason', '')[4:].strip()}"
    if r == "unexplained":
        return "survived: UNEXPLAINED"
    return f"{r} ({(row.get('why') or '')[:90]})" if row.get("why") else r


def score(rows: list[dict]) -> dict:
    done = [r for r in rows if r.get("result") not in (None, "pending")]
    killed = sum(r["result"] in KILLED for r in done)
    equivalent = sum(r["result"] in NOT_COUNTED for r in done)
    counts: dict[str, int] = {}
    for r in done:
        counts[r["result"]] = counts.get(r["result"], 0) + 1
    denominator = len(done) - equivalent
    strict = len(done) - counts.get("equivalent", 0)
    return {"mutants_run": len(done), "killed": killed, "equivalent": equivalent, "counts": counts,
            "score": round(killed / denominator, 3) if denominator else None,
            "strict_score": round(killed / strict, 3) if strict else None,
            "matrix_score": round(sum(r["result"] in ("killed-matrix", "killed-crash") for r in done)
                                  / denominator, 3) if denominator else None}


def markdown(rows: list[dict], figures: dict) -> str:
    s = figures["score"]
    out = [f"Mutation score {s['killed']}/{s['mutants_run'] - s['equivalent']} = "
           f"{(s['score'] or 0) * 100:.0f}% (killed / (run - equivalent - allowed by the till contract); "
           f"{(s.get('strict_score') or 0) * 100:.0f}% counting the allowed ones as missed); {s['counts']}", "",
           "| mutant | operator | function | original | mutated | result |", "|---|---|---|---|---|---|"]

    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")[:110]

    for r in rows:
        out.append(f"| `{r['id']}` | {r['operator']} | {r['function']} | `{cell(r['original'])}` | "
                   f"`{cell(r['mutated'])}` | {cell(outcome_text(r))} |")
    return "\n".join(out) + "\n"


def write(out: Path, md: Path | None, rows: list[dict], figures: dict) -> None:
    figures["score"] = score(rows)
    out.write_text(json.dumps({"figures": figures, "mutants": rows}, indent=1, default=str))
    if md:
        md.write_text(markdown(rows, figures))


# -- main -------------------------------------------------------------------------------------------------------------
def parse_budget(text: str) -> float:
    text = str(text).strip().lower()
    if text in ("0", "0s", "0m", "none", "off"):
        return 0.0
    unit = {"s": 1, "m": 60, "h": 3600}.get(text[-1:], None)
    return float(text[:-1]) * unit if unit else float(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--list", action="store_true", help="list the mutants (after --only/--mutants) and stop")
    ap.add_argument("--mutants", type=int, default=None, metavar="N", help="a seeded sample of N (default: all)")
    ap.add_argument("--seed", type=int, default=1, help="sample seed, and the explore seed")
    ap.add_argument("--only", action="append", default=[], metavar="ID",
                    help="run this mutant id (repeatable; 'register.py:183 flip-if'); a file name takes its all")
    ap.add_argument("--workers", "-n", default=None, metavar="N", help="posrig run -n (default: none, one process)")
    ap.add_argument("--benches", default=None, metavar="N|auto", help="posrig run/explore --benches")
    ap.add_argument("-k", dest="keyword", default=None, metavar="EXPR",
                    help="only these matrix scenarios (for trying the script; a score needs the whole matrix)")
    ap.add_argument("--explore-budget", default="10m", metavar="DURATION", help="posrig explore time (0: none)")
    ap.add_argument("--explore-split", choices=("total", "each"), default="total",
                    help="total: the budget is shared equally by the matrix survivors; each: per survivor")
    ap.add_argument("--run-timeout", type=float, default=900.0, metavar="S", help="limit for one matrix run")
    ap.add_argument("--no-sanity", action="store_true", help="skip the sanity mutant (when just checked)")
    ap.add_argument("--skip-baseline", action="store_true", help="skip the unmutated run (when just checked)")
    ap.add_argument("--work", default=None, metavar="DIR", help="working folder (default: a new temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep each mutant's copied tree (reports are always kept)")
    ap.add_argument("--out", default=None, metavar="FILE", help="JSON results (default: WORK/detection.json)")
    ap.add_argument("--markdown", default=None, metavar="FILE", help="markdown table (default: next to --out)")
    ap.add_argument("--resume", default=None, metavar="JSON",
                    help="reuse the matrix results of an earlier run's JSON (by mutant id; e.g. one cut short) and "
                         "run only the rest, then explore the survivors")
    ap.add_argument("--rescore", default=None, metavar="JSON",
                    help="nothing run: apply the current equivalents file to an earlier run's JSON, rewrite it and "
                         "its markdown, print the table")
    args = ap.parse_args()
    if args.rescore:
        path = Path(args.rescore).resolve()
        doc = json.loads(path.read_text())
        md = Path(args.markdown).resolve() if args.markdown else path.with_suffix(".md")
        return finish(doc["mutants"], doc["figures"], equivalents(), path, md)

    everything = dm.mutants()
    chosen = everything
    if args.only:
        files = {o for o in args.only if o in dm.SCOPES}
        ids = set(args.only) - files
        unknown = ids - {m.id for m in everything}
        if unknown:
            print(f"bench_detection: no mutant {sorted(unknown)}; see --list", file=sys.stderr)
            return 2
        chosen = [m for m in everything if m.id in ids or m.file in files]
    chosen = dm.select(chosen, args.mutants, args.seed)
    marked = equivalents()
    if args.list:
        for m in chosen:
            note = f"   [equivalent: {marked[m.id]}]" if m.id in marked else ""
            print(f"{m.id:38} {m.function:32} {m.original[:60]!s:60} => {m.mutated[:60]}{note}")
        by_op: dict[str, int] = {}
        for m in everything:
            by_op[m.operator.split("@")[0]] = by_op.get(m.operator.split("@")[0], 0) + 1
        print(f"{len(chosen)} mutants listed of {len(everything)} "
              f"({', '.join(f'{k} {v}' for k, v in sorted(by_op.items()))}); "
              f"{len(marked)} marked equivalent in {EQUIVALENTS.name}")
        return 0

    work = Path(args.work or tempfile.mkdtemp(prefix="posrig-detection-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    out = Path(args.out or work / "detection.json").resolve()
    md = Path(args.markdown).resolve() if args.markdown else out.with_suffix(".md")
    budget = parse_budget(args.explore_budget)
    figures: dict = {"work": str(work), "root": str(ROOT), "mutants_total": len(everything),
                     "mutants_selected": len(chosen), "seed": args.seed, "workers": args.workers,
                     "explore_budget_s": budget, "explore_split": args.explore_split, "keyword": args.keyword,
                     "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    print(f"bench_detection: {len(chosen)} of {len(everything)} mutants; work in {work}; results {out}", flush=True)
    t_start = time.monotonic()

    if not args.skip_baseline:
        tree = make_tree(work, "baseline")
        got = matrix(tree, work / "baseline-report", args, maxfail=None)
        if got["result"] != "survived":              # rows that failed under load must pass alone to be excused
            try:
                rows = json.loads((work / "baseline-report" / "acceptance.json").read_text())["scenarios"]
            except (OSError, ValueError, KeyError):
                rows = []
            bad = [r["id"] for r in rows if r.get("verdict") in ("FAIL", "INCONCLUSIVE")]
            again = {row: confirm(tree, work / "baseline-confirm", row, args) for row in bad}
            got["confirmed_alone"] = again
            errors = [r for r in rows if r.get("verdict") == "ERROR"]
            if again and not errors and all(v == "OK" for v in again.values()):
                got["result"] = "survived"           # only load: each of those rows passes alone
        figures["baseline"] = got
        clean = "clean" if got["result"] == "survived" else f"NOT clean ({got['result']})"
        print(f"baseline (unmutated): {clean} in {got['matrix_s']} s {got.get('verdicts', '')}", flush=True)
        if got["result"] != "survived":
            print(f"bench_detection: the unmutated tree's matrix is not clean ({got['result']}: "
                  f"{got.get('scenario') or ''} {got.get('why') or ''}); fix that first: a mutant score against "
                  f"a failing matrix means nothing. Report: {work / 'baseline-report'}", file=sys.stderr)
            return 2
        shutil.rmtree(tree, ignore_errors=True)

    if not args.no_sanity:
        tree = make_tree(work, "sanity")
        plant(tree, "register.py", dm.sanity_source())
        got = {**matrix(tree, work / "sanity-report", args), "probe": probe(tree)}
        figures["sanity"] = got
        print(f"sanity mutant (every payment recorded failed): {got['result']} in {got['matrix_s']} s "
              f"{got.get('scenario') or ''}; probe {got['probe']}", flush=True)
        if got["result"] != "killed-matrix" or not got["probe"]["till_imports"]:
            print("bench_detection: the sanity mutant was not killed by the matrix, or the launched till did not "
                  "import the copied tree: the mutant runs would not test the mutants. Look at "
                  f"{work / 'sanity-report'}", file=sys.stderr)
            return 2
        shutil.rmtree(tree, ignore_errors=True)

    done = {}
    if args.resume:                       # matrix results of an earlier (cut-short) run, reused by mutant id
        earlier = json.loads(Path(args.resume).read_text())["mutants"]
        done = {r["id"]: {**r, "result": "survived" if r["result"] in SURVIVED else r["result"]}
                for r in earlier if r.get("result") not in (None, "pending", "error", "not-run")}
        print(f"resuming: {sum(m.id in done for m in chosen)} mutant(s) already run in {args.resume}", flush=True)
    rows = [done.get(m.id) or {**m.to_dict(), "result": "pending"} for m in chosen]
    write(out, md, rows, figures)
    for i, (m, row) in enumerate(zip(chosen, rows, strict=True), 1):
        if m.id in done:
            continue
        tree = make_tree(work, f"m{i:03d}")
        try:
            plant(tree, m.file, dm.mutated_source(m))
        except dm.MutantError as exc:
            row.update(result="error", why=str(exc))
            continue
        report = work / f"m{i:03d}-report"
        got = judge(tree, report, work / f"m{i:03d}-confirm", args)
        got["probe"] = probe(tree)
        if got["result"] == "survived" and not got["probe"]["till_imports"]:
            got.update(result="not-run", why="the launched till never imported the mutated module")
        row.update(got, report=str(report))
        print(f"[{i:3d}/{len(chosen)}] {m.id:36} {outcome_text(row)[:100]}  {got['matrix_s']} s", flush=True)
        if not args.keep:
            shutil.rmtree(tree, ignore_errors=True)
        write(out, md, rows, figures)

    survivors = [r for r in rows if r["result"] == "survived"]
    figures["matrix_done_s"] = round(time.monotonic() - t_start, 1)
    if survivors and budget > 0:
        each = budget if args.explore_split == "each" else budget / len(survivors)
        print(f"explore: {len(survivors)} matrix survivor(s), {each:.0f} s each "
              f"({'per survivor' if args.explore_split == 'each' else f'{budget:.0f} s shared'})", flush=True)
        for r in survivors:
            m = next(x for x in chosen if x.id == r["id"])
            i = chosen.index(m) + 1
            tree = make_tree(work, f"m{i:03d}")
            plant(tree, m.file, dm.mutated_source(m))
            got = explore(tree, work / f"m{i:03d}-explore", each, args.seed, args)
            r.update({k: v for k, v in got.items() if k not in ("invariants", "scenario")})
            if got.get("explore") == "finding":
                control = replay_unmutated(work, got.get("scenario"), args)
                if control == "OK":
                    r.update(result="killed-explore", invariants=got.get("invariants"),
                             explore_scenario=got.get("scenario"))
                else:                                  # the unmutated till fails it too: not the mutant's doing
                    r.update(explore="finding also on the unmutated tree: " + control)
            print(f"  explore {r['id']:36} {got.get('explore')} {got.get('invariants') or ''} "
                  f"({got.get('explore_schedules')} schedules, {got['explore_s']} s)", flush=True)
            shutil.rmtree(tree, ignore_errors=True)
            write(out, md, rows, figures)
    figures["total_s"] = round(time.monotonic() - t_start, 1)
    return finish(rows, figures, marked, out, md)


def explain(rows: list[dict], marked: dict[str, str]) -> None:
    """Survivors get their reason from the equivalents file: `equivalent`, `gap` (a reason starting "gap:": a real
    mistake the matrix misses, still counted against the score) or `unexplained`."""
    for r in rows:
        if r["result"] in SURVIVED:
            reason = marked.get(r["id"], "")
            low = reason.lower()
            kind = ("unexplained" if not reason else "gap" if low.startswith("gap:") else
                    "allowed" if low.startswith("allowed:") else "equivalent")
            r.update(result=kind, reason=reason)
        elif r["id"] in marked and r["result"] in KILLED:
            r["note"] = f"listed in {EQUIVALENTS.name} but killed: remove it there"


def finish(rows: list[dict], figures: dict, marked: dict[str, str], out: Path, md: Path) -> int:
    explain(rows, marked)
    write(out, md, rows, figures)
    print("\n" + markdown(rows, figures))
    s = figures["score"]
    for r in rows:
        if r.get("note"):
            print(f"note: {r['id']}: {r['note']}")
    unexplained = [r["id"] for r in rows if r["result"] == "unexplained"]
    gaps = [r["id"] for r in rows if r["result"] == "gap"]
    if gaps:
        print(f"{len(gaps)} known gap(s) (survivors the matrix should catch): {', '.join(gaps)}")
    print(f"score {s['killed']}/{s['mutants_run'] - s['equivalent']} = {(s['score'] or 0) * 100:.1f}% "
          f"(matrix alone {(s['matrix_score'] or 0) * 100:.1f}%; counting contract-allowed mutants as missed "
          f"{(s.get('strict_score') or 0) * 100:.1f}%); {s['counts']}; "
          f"{len(unexplained)} unexplained survivor(s){': ' + ', '.join(unexplained) if unexplained else ''}")
    print(f"total {figures.get('total_s')} s; JSON {out}; markdown {md}")
    print(json.dumps({"figures": figures}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

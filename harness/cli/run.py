"""`posrig run`: the main job. Runs the acceptance suite shipped in the package against a rig, writes the reports.

    posrig run --rig rigs/emulated.yaml --report report -n 2
    posrig run -k 0210-lost                     # in any folder: the shipped emulated rig, report/ here
    posrig run --scenario explore-report/finding-1-<key>.yaml     # replay a schedule `posrig explore` found

The suite is `harness.acceptance.suite` (installed with posrig), so a vendor who installs posrig into their own
test repository runs the same matrix. pytest is isolated from the caller's configuration (the suite's own ini),
so the job is the same wherever it runs.

Before pytest starts, the preflight (`harness.core.doctor`, the checks of `posrig doctor`) loads the rig, resolves
its drivers and the till profile, checks privileges, iptables/NFQUEUE and ports; each problem is one line and
the exit code 2, with nothing built. Leftovers of killed runs are reaped first. Exit 0 only when
acceptance.json says `passed`: every selected scenario ran and is OK.

While it runs it shows progress instead of pytest's dots (`fixtures.progress`): on a terminal one line rewritten
in place, in a log one line per scenario:

    [ 12/168] OK    terminal-host/0210-lost/approve  1.8 s  (fail 0, 4.1/min, ETA 38:03)
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import harness.acceptance.suite as suite


def suite_dir() -> Path:
    """The acceptance suite, where the installed package keeps it."""
    return Path(suite.__file__).resolve().parent


def register(sub) -> None:
    p = sub.add_parser("run", help="run the acceptance suite on a rig and write the reports")
    p.add_argument("--rig", default=os.environ.get("POSRIG_RIG"), metavar="FILE|NAME",
                   help="rig file, or a shipped rig's name (default: $POSRIG_RIG, else rigs/emulated.yaml here, "
                        "else the shipped emulated rig)")
    p.add_argument("--report", default="report", metavar="DIR", help="report folder (HTML, JUnit XML, evidence)")
    p.add_argument("--till-profile", default=None, metavar="NAME", help="reference till profile to test")
    p.add_argument("-k", dest="keyword", default=None, metavar="EXPR", help="only scenarios matching EXPR")
    p.add_argument("-n", dest="workers", default=None, metavar="N", help="parallel workers (pytest-xdist)")
    p.add_argument("--benches", default="auto", metavar="N|auto",
                   help="benches each worker runs at once (auto: from the machine's cores and load)")
    p.add_argument("--shard", default=None, metavar="I/N",
                   help="run shard I of N of the selection (balanced by measured durations; the same on every "
                        "machine); merge the shards' reports with `posrig report merge` (docs/scaling.md)")
    p.add_argument("--scenario", action="append", default=[], metavar="FILE",
                   help="run this scenario file (from posrig explore) instead of the matrix; repeatable; the "
                        "file's till profile is used unless --till-profile is given")
    p.add_argument("--maxfail", default=None, type=int, metavar="N",
                   help="stop after N scenarios did not pass (pytest --maxfail; e.g. mutation testing: the first "
                        "FAIL is enough)")
    p.set_defaults(func=run)


def scenario_files(args) -> list[str]:
    """Check the --scenario files (one line per problem, raised as ValueError) and take the till profile they
    were found with when none is given."""
    from harness.explore.schedule import ScenarioFileError, load

    profiles = set()
    for path in getattr(args, "scenario", None) or []:
        try:
            profiles.add(load(path)[1].get("till_profile") or "")
        except ScenarioFileError as exc:
            raise ValueError(str(exc)) from None
    if not args.till_profile and len(profiles) == 1 and "" not in profiles:
        args.till_profile = profiles.pop()
        print(f"posrig run: till profile {args.till_profile} (from the scenario file)", file=sys.stderr)
    return [str(Path(p).resolve()) for p in getattr(args, "scenario", None) or []]


def pytest_args(args) -> list[str]:
    from harness.core.rig import resolve_rig

    report = Path(args.report).resolve()
    rig = resolve_rig(args.rig)
    argv = [str(suite_dir()), "-c", str(suite_dir() / "suite.ini"), f"--rootdir={Path.cwd()}",
            f"--rig={rig}", f"--evidence-dir={report / 'evidence'}",
            f"--html={report / 'report.html'}", "--self-contained-html", f"--junitxml={report / 'junit.xml'}",
            f"--acceptance-json={report / 'acceptance.json'}",
            "-p", "no:cacheprovider", "-o", "render_collapsed=none",   # every scenario's receipt etc. visible
            "-p", "no:hypothesispytest",                               # a dev tool: a second of CPU per worker
            f"--benches={getattr(args, 'benches', 'auto')}",
            "--posrig-progress", "-q", "-o", "console_output_style=classic"]   # our progress line, not pytest's
    if args.till_profile:
        argv.append(f"--till-profile={args.till_profile}")
    if args.keyword:
        argv += ["-k", args.keyword]
    if args.workers and not _single_bench(rig):
        argv += ["-n", str(args.workers)]
    if getattr(args, "shard", None):
        argv.append(f"--shard={args.shard}")
    if getattr(args, "maxfail", None):
        argv.append(f"--maxfail={args.maxfail}")
    argv += [f"--scenario-file={Path(f).resolve()}" for f in getattr(args, "scenario", None) or []]
    return argv


def _single_bench(rig: Path) -> str | None:
    """Why the rig's scenarios must run one at a time (its devices exist once), said once on stderr."""
    from harness.acceptance.pool import shareable
    from harness.core.rig import RigError, load_rig

    try:
        why = shareable(load_rig(rig))
    except RigError:
        return None                                     # the preflight reports the rig's problem
    if why:
        print(f"posrig run: one scenario at a time (no -n): {why}", file=sys.stderr)
    return why


def preflight(args) -> list[str]:
    """Load and check the rig for this run, reaping leftovers of killed runs first; one line per problem."""
    from harness import topology as netns
    from harness.core.doctor import Options
    from harness.core.doctor import preflight as check
    from harness.core.rig import RigError, load_rig, resolve_rig

    try:
        rig = load_rig(resolve_rig(args.rig))
    except RigError as exc:
        return [f"bad rig: {exc}"]
    except (OSError, UnicodeDecodeError) as exc:
        return [f"bad rig: {args.rig or 'the default rig'}: cannot be read ({exc})"]
    if (rig.network_mode == "namespaces" or any(link.faultable for link in rig.links.values())) \
            and netns.probe()[0]:
        removed = netns.reap_leftovers()
        if removed:
            print(f"posrig run: removed {len(removed)} leftover(s) of killed runs", file=sys.stderr)
    if rig.labgrid is not None:
        from harness.labgrid.place import release_stale

        lab = (rig.labgrid.coordinator, rig.labgrid.place)
        for line in release_stale(only=lab):        # the place, if a SIGKILLed run of this machine left it acquired
            print(f"posrig run: {line}", file=sys.stderr)
    return check(rig, Options(till_profile=args.till_profile))


def verdict(report: Path, rc: int) -> tuple[int, str]:
    """The job's exit code and, unless it passed, the one line saying why, from acceptance.json."""
    path = report / "acceptance.json"
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return (rc or 1), f"no acceptance report at {path}; pytest ended with code {rc}"
    from harness.acceptance.report.signoff import why_not_passed

    summary = doc.get("summary", {})
    if summary.get("passed") and rc == 0:
        if summary.get("NOT_APPLICABLE"):
            print(f"posrig run: passed, covering {summary.get('covers')}", file=sys.stderr)
        return 0, ""
    if doc.get("collection_errors"):
        return (rc or 1), (f"the suite could not be collected ({', '.join(doc['collection_errors'][:3])}); "
                           "nothing ran; the pytest output above says why")
    why = why_not_passed(summary, doc.get("scenarios", [])) or f"pytest ended with code {rc}"
    return (rc if rc not in (0, 5) else 1), why


def shard_problem(args) -> str:
    """One line when --shard names no shard ("" when it is fine or not given)."""
    if getattr(args, "shard", None) is None:
        return ""
    from harness.acceptance.shard import ShardError, parse_shard

    try:
        parse_shard(args.shard)
    except ShardError as exc:
        return str(exc)
    return ""


def empty_shard(report: Path) -> str:
    """The line for a shard that got no scenario of the selection (more shards than scenarios), else ""."""
    try:
        doc = json.loads((report / "acceptance.json").read_text())
    except (OSError, ValueError):
        return ""
    block = doc.get("shard") or {}
    if block.get("shards") and not block["shards"][block["index"] - 1] and not doc.get("scenarios"):
        return (f"shard {block['index']}/{block['total']} has none of the {block['selection']['count']} selected "
                "scenarios; nothing to run (its report still counts for the merge)")
    return ""


def run(args) -> int:
    import pytest

    bad_shard = shard_problem(args)
    try:
        scenario_files(args)
    except ValueError as exc:
        bad_shard = bad_shard or str(exc)
    problems = [bad_shard] if bad_shard else preflight(args)
    for line in problems:
        print(f"posrig run: {line}", file=sys.stderr)
    if problems:
        return 2
    try:
        Path(args.report).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"posrig run: cannot make the report folder {args.report}: {exc.strerror or exc}; "
              "give --report a folder you can write", file=sys.stderr)
        return 2
    rc = int(pytest.main(pytest_args(args)))
    code, why = verdict(Path(args.report), rc)
    if code and getattr(args, "shard", None):
        empty = empty_shard(Path(args.report))
        code, why = (0, empty) if empty else (code, why)
    if why:
        print(f"posrig run: {why}", file=sys.stderr)
    print(f"posrig run: report at {Path(args.report) / 'report.html'}")
    return code

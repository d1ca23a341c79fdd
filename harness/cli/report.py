"""`posrig report`: work on finished reports.

    posrig report merge shard-1 shard-2 shard-3 -o report      # the shards of `posrig run --shard I/N`, as one
    posrig report durations report -o harness/acceptance/suite/durations.json   # what --shard balances by

`merge` writes one acceptance.json (sealed: `posrig verify` checks it), report.html and junit.xml, with each
shard's folder copied under OUT/shards/; exit 0 when the merged report passed, 1 when it did not (a shard missing
or not verifying, a scenario not OK: each problem one line), 2 when the folders are not the shards of one run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("report", help="merge shard reports; measure scenario durations for --shard")
    verbs = p.add_subparsers(dest="report_command", metavar="ACTION")
    m = verbs.add_parser("merge", help="merge the reports of `posrig run --shard I/N` into one")
    m.add_argument("folders", nargs="+", metavar="DIR", help="the shards' report folders (each with acceptance.json)")
    m.add_argument("-o", "--output", default="report", metavar="OUT", help="merged report folder (default: report)")
    m.set_defaults(func=merge)
    d = verbs.add_parser("durations", help="seconds per scenario from reports, the file `--shard` balances by")
    d.add_argument("reports", nargs="+", metavar="REPORT_DIR", help="report folders (or acceptance.json files)")
    d.add_argument("-o", "--output", default=None, metavar="FILE",
                   help="write here (e.g. harness/acceptance/suite/durations.json); default: standard output")
    d.set_defaults(func=durations)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def merge(args) -> int:
    from harness.acceptance.report.merge import MergeRefused
    from harness.acceptance.report.merge import merge as do_merge
    from harness.acceptance.report.signoff import why_not_passed

    try:
        doc = do_merge([Path(f) for f in args.folders], Path(args.output))
    except MergeRefused as exc:
        print(f"posrig report merge: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"posrig report merge: cannot write {args.output}: {exc.strerror or exc}; "
              "give -o a folder you can write", file=sys.stderr)
        return 2
    for line in doc["merge"]["problems"]:
        print(f"posrig report merge: {line}", file=sys.stderr)
    s = doc["summary"]
    out = Path(args.output)
    if s["passed"]:
        print(f"posrig report merge: passed, covering {s['covers']}; report at {out / 'report.html'}")
        return 0
    why = why_not_passed(s, doc["scenarios"])
    if s["scenarios"] > s["selected"]:
        why = (f"not signed off: {s['scenarios']} rows for {s['selected']} selected scenarios "
               "(a scenario in two shards' rows)")
    print(f"posrig report merge: {why}", file=sys.stderr)
    print(f"posrig report merge: report at {out / 'report.html'}")
    return 1


def durations(args) -> int:
    from harness.acceptance.shard import durations_doc, durations_from_reports

    docs, sources = [], []
    for where in args.reports:
        path = Path(where)
        path = path if path.name == "acceptance.json" else path / "acceptance.json"
        try:
            docs.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            print(f"posrig report durations: {path}: cannot be read ({exc}); give a report folder of posrig run",
                  file=sys.stderr)
            return 2
        sources.append(f"{docs[-1].get('generated', '?')} {docs[-1].get('command', '')}".strip())
    found = durations_from_reports(docs)
    if not found:
        print("posrig report durations: no scenario ran in " + ", ".join(args.reports), file=sys.stderr)
        return 2
    text = json.dumps(durations_doc(found, sources), indent=1) + "\n"
    if args.output:
        Path(args.output).write_text(text)
        print(f"posrig report durations: {len(found)} scenarios -> {args.output}")
    else:
        sys.stdout.write(text)
    return 0

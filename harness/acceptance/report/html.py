"""HTML pieces for pytest-html: the report's title (rig and verdict), per-scenario extras (receipt image and
text, timeline, ledger, evidence links), the sign-off line (selected, ran, passed; every scenario that did not
run and why) and the summary grid of stage x fault."""

from __future__ import annotations

import base64
import html
import os
from collections import defaultdict
from pathlib import Path

from harness.acceptance.report.record import ScenarioRecord
from harness.acceptance.report.signoff import RAN, summary
from harness.acceptance.verdict import WORST_FIRST, Verdict

COLOURS = {Verdict.OK: "#1a7f37", Verdict.FAIL: "#cf222e", Verdict.ERROR: "#9a6700", Verdict.INCONCLUSIVE: "#6e7781"}


def _table(rows: list[dict], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in columns) + "</tr>"
                   for r in rows)
    return f"<table class='posrig'><tr>{head}</tr>{body}</table>"


def scenario_html(record: ScenarioRecord, report_dir: Path | None = None) -> str:
    """The block shown under a scenario's row: verdict, expected/observed, timeline, ledger, receipts, evidence."""
    colour = COLOURS.get(record.verdict, "#000")
    parts = [f"<div class='posrig-scenario'><p><b style='color:{colour}'>{record.verdict}</b> "
             f"{html.escape(record.id)} &middot; {record.elapsed:.2f}s &middot; seed {record.seed}</p>",
             f"<p><b>Expected:</b> {html.escape(record.expected)}<br><b>Observed:</b> "
             f"{html.escape(record.observed)}</p>"]
    if record.violations:
        parts.append("<ul>" + "".join(f"<li>{html.escape(v)}</li>" for v in record.violations) + "</ul>")
    for rc in record.receipts:
        parts.append(f"<div style='display:inline-block;vertical-align:top;margin:4px'>"
                     f"<p>receipt #{rc.get('index')} ({html.escape(str(rc.get('kind', '')))})</p>")
        png = rc.get("png")
        if png and Path(png).is_file():
            data = base64.b64encode(Path(png).read_bytes()).decode()
            parts.append(f"<img class='posrig-receipt' alt='receipt {rc.get('index')}' "
                         f"src='data:image/png;base64,{data}' style='max-width:320px;border:1px solid #ccc'/>")
        parts.append(f"<pre style='font-size:11px'>{html.escape(str(rc.get('text', '')))}</pre></div>")
    if record.timeline:
        rows = [{"t": f"{e.get('t', 0):.3f}", "source": e.get("source", ""), "event": e.get("event", "")}
                for e in record.timeline]
        parts.append("<p><b>Timeline</b></p>" + _table(rows, ["t", "source", "event"]))
    if record.ledger:
        cols = list(dict.fromkeys(k for row in record.ledger for k in row))
        parts.append("<p><b>Acquirer ledger</b></p>" + _table(record.ledger, cols))
    if record.evidence:
        links = []
        for e in record.evidence:
            target = e["path"]
            if report_dir is not None:
                target = os.path.relpath(e["path"], report_dir)
            links.append(f"<a href='{html.escape(target)}'>{html.escape(e['name'])}</a>")
        parts.append("<p><b>Evidence:</b> " + " &middot; ".join(links) + "</p>")
    parts.append("</div>")
    return "".join(parts)


def report_title(records: list[ScenarioRecord], selected: int, rig: str | None) -> str:
    """The page's title: which rig, and the verdict a sign-off reads.

    >>> ok = ScenarioRecord(id="a", verdict=Verdict.OK, status=RAN)
    >>> report_title([ok, ok], 2, "emulated")
    'posrig acceptance: emulated rig: PASSED 2/2'
    >>> report_title([ok, ScenarioRecord(id="b", verdict=Verdict.FAIL, status=RAN)], 3, "bench-7")
    'posrig acceptance: bench-7 rig: FAILED: 2 of 3 not OK'
    """
    counts = summary([{"verdict": str(r.verdict), "status": r.status} for r in records], selected)
    where = f"posrig acceptance: {rig} rig" if rig else "posrig acceptance: rig not loaded"
    if counts["passed"]:
        return f"{where}: PASSED {counts[str(Verdict.OK)]}/{counts['selected']}"
    if not counts["selected"]:
        return f"{where}: NOT PASSED: no scenario selected"
    ok = sum(r.verdict is Verdict.OK and r.status == RAN for r in records)
    return f"{where}: FAILED: {max(counts['selected'], len(records)) - ok} of {counts['selected']} not OK"


def contract_html(records: list[ScenarioRecord], selected: int) -> str:
    """The sign-off line: selected, ran, passed; then each scenario that did not run, or is not OK, and why."""
    counts = summary([{"verdict": str(r.verdict), "status": r.status, "reason": r.reason or r.observed}
                      for r in records], selected)
    verdict = "PASSED" if counts["passed"] else "NOT PASSED"
    colour = COLOURS[Verdict.OK] if counts["passed"] else COLOURS[Verdict.FAIL]
    verdicts = ", ".join(f"{v} {counts[str(v)]}" for v in Verdict if counts[str(v)])
    not_run = ", ".join(f"{k} {n}" for k, n in counts["not_run"].items())
    out = [f"<h2>Sign-off</h2><p class='posrig-signoff'><b style='color:{colour}'>{verdict}</b>: "
           f"{counts['selected']} selected, {counts['ran']} ran ({html.escape(verdicts or 'no verdicts')})"
           + (f"; did not run: {html.escape(not_run)}" if not_run else "")
           + f"<br>covers: {html.escape(counts['covers'])}</p>"]
    bad = [r for r in records if r.status != RAN or r.verdict is not Verdict.OK]
    if bad:
        rows = [{"scenario": r.id, "status": r.status, "verdict": r.verdict, "reason": r.reason or r.observed}
                for r in sorted(bad, key=lambda r: (r.status == RAN, r.id))]
        out.append(_table(rows, ["scenario", "status", "verdict", "reason"]))
    return "".join(out)


def summary_grid(records: list[ScenarioRecord]) -> str:
    """Stage (rows) x fault (columns); each cell counts verdicts, coloured by the worst."""
    cells: dict[tuple[str, str], list[Verdict]] = defaultdict(list)
    for r in records:
        cells[(f"{r.link}/{r.stage}" if r.link else r.stage, r.fault)].append(r.verdict)
    stages = sorted({s for s, _ in cells})
    faults = sorted({f for _, f in cells})
    out = ["<h2>Stage x fault</h2><table class='posrig-grid' border='1' cellpadding='3'><tr><th>stage</th>"]
    out += [f"<th>{html.escape(f)}</th>" for f in faults]
    out.append("</tr>")
    for s in stages:
        out.append(f"<tr><td>{html.escape(s)}</td>")
        for f in faults:
            verdicts = cells.get((s, f), [])
            if not verdicts:
                out.append("<td></td>")
                continue
            worst = Verdict.worst(verdicts)
            order = [*WORST_FIRST, *(v for v in Verdict if v not in WORST_FIRST)]
            text = " ".join(f"{v}:{verdicts.count(v)}" for v in order if v in verdicts)
            out.append(f"<td style='background:{COLOURS.get(worst, '#444')};color:white'>{text}</td>")
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)

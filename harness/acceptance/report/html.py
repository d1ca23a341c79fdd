"""HTML pieces for pytest-html: per-scenario extras (receipt image and text, timeline, ledger, evidence links)
and the summary grid of stage x fault."""

from __future__ import annotations

import base64
import html
import os
from collections import defaultdict
from pathlib import Path

from harness.acceptance.report.record import ScenarioRecord
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
            text = " ".join(f"{v}:{verdicts.count(v)}" for v in WORST_FIRST if v in verdicts)
            out.append(f"<td style='background:{COLOURS[worst]};color:white'>{text}</td>")
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)

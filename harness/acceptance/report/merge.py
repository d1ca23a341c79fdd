"""Merge the reports of a sharded run (`posrig run --shard I/N`) into one: acceptance.json, report.html, junit.xml.

Every shard records the whole selection and every shard's part of it, so the merge knows what must be there:

- a shard missing (N declared, fewer present; also a folder without acceptance.json): each scenario of its part
  is a row "not started" naming the shard, so `passed` is false (a missing shard that had no scenario is only a
  line in `merge.problems`: nothing of the selection is lost);
- a shard whose own report does not verify against its digest: its rows are ERROR naming the shard (their
  verdicts cannot be trusted), so `passed` is false;
- a scenario in no shard's rows, or in two: a row "not started", or both rows (more rows than selected): not passed.

Refused (`MergeRefused`, exit 2), because the result would not be one run: a folder that is not a shard's
report or whose suite could not be collected, the same shard given twice, shards of different selections (`-k`,
till profile, shard count), rigs, posrig versions or durations files.

Each shard's folder is copied whole to `OUT/shards/I-of-N/` (its own report stays verifiable there) and the
merged rows point into the copies, so every link of the merged HTML works; the merged digest covers the copies.
"""

from __future__ import annotations

import html
import json
import shutil
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.acceptance.report.html import contract_html, report_title, scenario_html, summary_grid
from harness.acceptance.report.record import ScenarioRecord
from harness.acceptance.report.signoff import RAN, seal, summary, verify
from harness.acceptance.shard import key_of_row
from harness.acceptance.verdict import Verdict

SHARDS_DIR = "shards"


class MergeRefused(Exception):
    """These folders are not the shards of one run: one line saying which and why."""


@dataclass
class Shard:
    folder: Path
    doc: dict[str, Any]
    problems: list[str] = field(default_factory=list)       # why its own digest does not verify

    @property
    def block(self) -> dict[str, Any]:
        return self.doc["shard"]

    @property
    def index(self) -> int:
        return int(self.block["index"])

    @property
    def name(self) -> str:
        return f"shard {self.block['index']}/{self.block['total']}"

    @property
    def copy_name(self) -> str:
        return f"{self.block['index']}-of-{self.block['total']}"


# -- reading and checking the shards -------------------------------------------------------------------------
def load_shards(folders: list[Path]) -> tuple[list[Shard], list[str]]:
    """The shard reports in `folders`, and a line for each folder left out (no acceptance.json: its shard then
    counts as missing). Raises MergeRefused for a folder that cannot be a shard of this run."""
    shards, left_out = [], []
    for folder in folders:
        folder = Path(folder)
        if folder.name == "acceptance.json" and folder.is_file():
            folder = folder.parent
        if not folder.is_dir():
            raise MergeRefused(f"{folder}: no such folder; give the report folders of the shards "
                               "(posrig run --shard I/N --report DIR)")
        path = folder / "acceptance.json"
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            left_out.append(f"{folder}: no acceptance.json (did its shard's job fail before writing it?): "
                            "left out; its shard counts as missing")
            continue
        except (ValueError, UnicodeDecodeError) as exc:
            left_out.append(f"{path}: not valid JSON ({exc}): left out; its shard counts as missing")
            continue
        block = doc.get("shard")
        if not isinstance(block, dict):
            raise MergeRefused(f"{path}: not a shard's report (no `shard` in it); merge only reports of "
                               "`posrig run --shard I/N`")
        if doc.get("collection_errors"):
            raise MergeRefused(f"{path}: shard {block.get('index', '?')}/{block.get('total', '?')} could not collect "
                               f"the suite ({', '.join(doc['collection_errors'][:3])}), so its selection is unknown; "
                               "fix that and run the shard again")
        if "shards" not in block or "selection" not in block:
            raise MergeRefused(f"{path}: the shard did not record its selection ({block.get('error', 'incomplete')}); "
                               "run that shard again")
        problems, _ = verify(folder)
        shards.append(Shard(folder.resolve(), doc, problems))
    if not shards:
        raise MergeRefused("no shard report among " + ", ".join(str(f) for f in folders) +
                           ("; " + "; ".join(left_out) if left_out else ""))
    return sorted(shards, key=lambda s: (s.index, str(s.folder))), left_out


def _identity(shard: Shard) -> dict[str, Any]:
    """What must be the same in every shard of one run, by what a person would call it."""
    rig = shard.doc.get("rig") or {}
    return {
        "number of shards": shard.block["total"],
        "selection": shard.block["selection"]["sha256"],
        "options (-k, -m, till profile)": shard.block.get("options"),
        "rig": (rig.get("name"), rig.get("sha256")),
        "posrig version": (shard.doc.get("versions") or {}).get("posrig"),
        "durations file": shard.block.get("durations_sha256"),
        "partition": shard.block["shards"],
    }


def check_one_run(shards: list[Shard]) -> None:
    """Refuse shards that are not of one run: the same shard twice, or differing selection, rig, version."""
    first = shards[0]
    seen: dict[int, Shard] = {}
    for s in shards:
        if s.index in seen:
            raise MergeRefused(f"{s.name} given twice ({seen[s.index].folder} and {s.folder}); "
                               "merge one report per shard")
        seen[s.index] = s
        for what, value in _identity(s).items():
            if value != _identity(first)[what]:
                raise MergeRefused(f"{s.name} ({s.folder}) is not of the same run as {first.name} "
                                   f"({first.folder}): not the same {what}; shards of one run share the rig, "
                                   "the selection, the number of shards and the posrig version")


# -- moving the evidence -----------------------------------------------------------------------------------------
def _origin(doc: dict[str, Any]) -> Path | None:
    """Where the shard's report folder was when it was written (rows name their evidence by absolute path)."""
    keys = {k for k in (doc.get("digest") or {}).get("evidence", {}) if not Path(k).is_absolute()}
    for row in doc.get("scenarios") or []:
        for path in [e.get("path", "") for e in row.get("evidence", [])] + [r.get("png") or ""
                                                                          for r in row.get("receipts", [])]:
            parts = Path(path).parts
            if not Path(path).is_absolute():
                continue
            for i in range(1, len(parts)):
                if Path(*parts[i:]).as_posix() in keys:
                    return Path(*parts[:i])
    return None


def _moved(value: Any, old: str, new: str) -> Any:
    """`value` with every string under the folder `old` pointed under `new` instead."""
    if isinstance(value, str):
        return new + value[len(old):] if value == old or value.startswith(old + "/") else value
    if isinstance(value, list):
        return [_moved(v, old, new) for v in value]
    if isinstance(value, dict):
        return {k: _moved(v, old, new) for k, v in value.items()}
    return value


def _copy_shard(shard: Shard, out: Path) -> tuple[Path, list[dict[str, Any]]]:
    """Copy the shard's folder under OUT/shards/ and return the copy and its rows pointing into it."""
    dest = out / SHARDS_DIR / shard.copy_name
    shutil.copytree(shard.folder, dest)
    rows = shard.doc.get("scenarios") or []
    origin = _origin(shard.doc)
    if origin is not None:
        rows = _moved(rows, str(origin), str(dest))
    return dest, rows


# -- rows -------------------------------------------------------------------------------------------------------
def _untrusted(row: dict[str, Any], shard: Shard) -> dict[str, Any]:
    why = (f"{shard.name} ({shard.folder}) does not verify against its digest ({shard.problems[0]}"
           + (f"; {len(shard.problems) - 1} more" if len(shard.problems) > 1 else "")
           + f"): its verdict {row.get('verdict')} cannot be trusted")
    return {**row, "verdict": str(Verdict.ERROR), "reason": why,
            "observed": why + (f" | {row['observed']}" if row.get("observed") else "")}


def _missing_row(key: str, nodeid: str, why: str, scale: float) -> dict[str, Any]:
    from harness.acceptance.matrix import scenarios

    s = next((s for s in scenarios(scale) if s.id == key), None)
    record = ScenarioRecord(id=nodeid or key, nodeid=nodeid) if s is None else ScenarioRecord(
        id=s.id, link=s.link, stage=s.stage, fault=s.fault, outcome=s.outcome, expected=s.expected, nodeid=nodeid)
    record.status, record.reason = "not started", why
    record.observed = f"did not run (not started): {why}"
    return json.loads(record.to_json())


# -- the merge ----------------------------------------------------------------------------------------------------
def merge(folders: list[Path], out: Path, command: str | None = None) -> dict[str, Any]:
    """Merge the shard reports in `folders` into `out` (acceptance.json, report.html, junit.xml, shards/);
    returns the merged acceptance document. Raises MergeRefused (nothing written) when they are not one run."""
    out = Path(out).resolve()
    shards, left_out = load_shards(folders)
    check_one_run(shards)
    for s in shards:
        if out == s.folder or out.is_relative_to(s.folder) or s.folder.is_relative_to(out / SHARDS_DIR):
            raise MergeRefused(f"--output {out} overlaps the report of {s.name} ({s.folder}); "
                               "write the merged report to a folder of its own")
    block = shards[0].block
    total, selection = int(block["total"]), block["selection"]
    nodeids: dict[str, str] = selection.get("nodeids") or {}
    key_by_nodeid = {nodeid: key for key, nodeid in nodeids.items()}
    scale = float((shards[0].doc.get("rig") or {}).get("timing_scale") or 0.05)
    present = {s.index: s for s in shards}
    problems = list(left_out)

    if (out / SHARDS_DIR).exists():
        shutil.rmtree(out / SHARDS_DIR)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    where: dict[str, list[str]] = {}
    shard_rows: list[dict[str, Any]] = []
    for s in shards:
        dest, moved = _copy_shard(s, out)
        mine = set(block["shards"][s.index - 1])
        if s.problems:
            problems.append(f"{s.name} ({s.folder}) does not verify against its digest: "
                            + "; ".join(s.problems[:3]) + (" ..." if len(s.problems) > 3 else ""))
            moved = [_untrusted(r, s) for r in moved]
        for r in moved:
            key = key_by_nodeid.get(r.get("nodeid", "")) or key_of_row(r)
            where.setdefault(key, []).append(s.name)
            if key not in mine:
                problems.append(f"{s.name} ({s.folder}) ran {key}, which is not in its part of the selection")
        rows += moved
        shard_rows.append({"index": s.index, "folder": str(s.folder), "copy": f"{SHARDS_DIR}/{s.copy_name}",
                           "generated": s.doc.get("generated"), "elapsed": s.doc.get("elapsed"),
                           "command": s.doc.get("command"), "versions": s.doc.get("versions"),
                           "scenarios": len(moved), "passed": (s.doc.get("summary") or {}).get("passed"),
                           "verified": not s.problems})
    for key, names in sorted(where.items()):
        if len(names) > 1:
            problems.append(f"{key} is in the rows of {' and '.join(names)}: it must be in exactly one shard")
    for i in range(1, total + 1):
        if i not in present:
            part = block["shards"][i - 1]
            problems.append(f"shard {i}/{total} missing: no report of it among the merged folders"
                            + (f" ({len(part)} scenario(s) not run)" if part else
                               " (it had no scenario of the selection: nothing lost)"))
    missing: list[dict[str, Any]] = []
    for i, part in enumerate(block["shards"], start=1):
        for key in part:
            if key not in where:
                why = (f"shard {i}/{total} missing: no report of it among the merged folders" if i not in present
                       else f"shard {i}/{total} ({present[i].folder}) has no row for it")
                missing.append(_missing_row(key, nodeids.get(key, ""), why, scale))
    rows += missing
    rows.sort(key=lambda r: (r.get("id", ""), r.get("nodeid", "")))

    devices: dict[str, dict] = {}
    for s in shards:
        for d in s.doc.get("devices") or []:
            devices.setdefault(d.get("name", "?"), d)
    first = shards[0].doc
    doc = {
        "format": first.get("format", "posrig-acceptance/2"),
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "elapsed": max(float(s.doc.get("elapsed") or 0) for s in shards),
        "command": command or " ".join(sys.argv),
        "rig": first.get("rig"),
        "versions": first.get("versions"),
        "devices": list(devices.values()),
        "summary": summary(rows, selection["count"]),
        "scenarios": rows,
        "merge": {"total": total, "present": sorted(present),
                  "selection": {"count": selection["count"], "sha256": selection["sha256"],
                                "options": block.get("options")},
                  "shards": shard_rows, "problems": problems},
    }
    if problems and doc["summary"]["passed"]:
        doc["merge"]["note"] = "passed: every selected scenario has its row; the problems above lost none"
    rig_copy = out / SHARDS_DIR / shards[0].copy_name / "rig.yaml"
    outside = [p for s in shards for p in (s.doc.get("digest") or {}).get("evidence", {}) if Path(p).is_absolute()]
    seal(doc, out, [out / SHARDS_DIR], rig_copy if rig_copy.is_file() else None, outside)
    (out / "acceptance.json").write_text(json.dumps(doc, indent=2))
    (out / "report.html").write_text(merged_html(doc, out), encoding="utf-8")
    write_junit(shards, out, missing)
    return doc


# -- HTML and JUnit ---------------------------------------------------------------------------------------------
def merged_html(doc: dict[str, Any], out: Path) -> str:
    """One page: title, the shards, the sign-off line, the stage x fault grid, then every scenario's block."""
    records = [ScenarioRecord(**r) for r in doc["scenarios"]]
    selected = doc["summary"]["selected"]
    rig = (doc.get("rig") or {}).get("name")
    title = report_title(records, selected, rig)
    merge_info = doc["merge"]
    def own(s: dict[str, Any]) -> str:
        where = html.escape(s["copy"])
        return f"<a href='{where}/report.html'>{where}</a>" if (out / s["copy"] / "report.html").is_file() else where

    shard_lines = "".join(
        f"<tr><td>{s['index']}/{merge_info['total']}</td><td>{own(s)}</td><td>{s['scenarios']}</td>"
        f"<td>{s['elapsed']}</td>"
        f"<td>{'yes' if s['verified'] else '<b>NO</b>'}</td><td>{html.escape(str(s['folder']))}</td></tr>"
        for s in merge_info["shards"])
    problems = "".join(f"<li>{html.escape(p)}</li>" for p in merge_info["problems"])
    blocks = []
    for r in records:
        colour = "#1a7f37" if r.verdict is Verdict.OK and r.status == RAN else "#cf222e"
        blocks.append(f"<details class='posrig-row' id='{html.escape(r.id)}'><summary>"
                      f"<b style='color:{colour}'>{html.escape(str(r.verdict))}</b> {html.escape(r.id)}"
                      f"{'' if r.status == RAN else ' (' + html.escape(r.status) + ')'}</summary>"
                      f"{scenario_html(r, out)}</details>")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif}} table.posrig td,"
            "table.posrig th{border:1px solid #ccc;padding:2px 6px} details{margin:2px 0}</style></head><body>"
            f"<h1>{html.escape(title)}</h1>"
            f"<p>Merged from {len(merge_info['shards'])} of {merge_info['total']} shards "
            f"(posrig report merge), {doc['generated']}.</p>"
            "<table class='posrig'><tr><th>shard</th><th>its report</th><th>scenarios</th><th>elapsed s</th>"
            f"<th>digest verified</th><th>from</th></tr>{shard_lines}</table>"
            + (f"<h2>Merge problems</h2><ul class='posrig-merge-problems'>{problems}</ul>" if problems else "")
            + contract_html(records, selected) + (summary_grid(records) if records else "")
            + "<h2>Scenarios</h2>" + "".join(blocks) + "</body></html>")


def _testcase_for(row: dict[str, Any]) -> ET.Element:
    path, _, name = (row.get("nodeid") or row.get("id", "")).partition("::")
    classname = path.removesuffix(".py").replace("/", ".") if name else ""
    case = ET.Element("testcase", classname=classname, name=name or row.get("id", ""), time="0")
    ET.SubElement(case, "error", message=f"not run: {row.get('reason', '')}")
    return case


def write_junit(shards: list[Shard], out: Path, missing: list[dict[str, Any]]) -> Path:
    """One testsuite with every shard's test cases (cases of a shard that does not verify get an error) and an
    error case for each scenario no shard ran."""
    suite = ET.Element("testsuite", name="posrig merged")
    props = ET.SubElement(suite, "properties")
    cases: list[ET.Element] = []
    elapsed = 0.0
    for s in shards:
        try:
            tree = ET.parse(s.folder / "junit.xml")
        except (OSError, ET.ParseError):
            continue
        origin = _origin(s.doc)
        for i, ts in enumerate(tree.getroot().iter("testsuite")):
            elapsed += float(ts.get("time") or 0)
            if s is shards[0] and i == 0 and ts.find("properties") is not None:
                props.extend(p for p in ts.find("properties") if p.get("name", "").startswith("posrig_"))
            for case in ts.iter("testcase"):
                for prop in case.iter("property"):
                    if origin is not None:
                        prop.set("value", _moved(prop.get("value", ""), str(origin), str(out / SHARDS_DIR /
                                                                                          s.copy_name)))
                if s.problems and case.find("failure") is None and case.find("error") is None:
                    ET.SubElement(case, "error", message=f"{s.name} does not verify against its digest")
                cases.append(case)
    ET.SubElement(props, "property", name="posrig_shards", value=str(shards[0].block["total"]))
    cases += [_testcase_for(row) for row in missing]
    for case in cases:
        suite.append(case)
    suite.set("tests", str(len(cases)))
    for what, tag in (("failures", "failure"), ("errors", "error"), ("skipped", "skipped")):
        suite.set(what, str(sum(c.find(tag) is not None for c in cases)))
    suite.set("time", f"{elapsed:.3f}")
    root = ET.Element("testsuites", name="posrig")
    root.append(suite)
    path = out / "junit.xml"
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path

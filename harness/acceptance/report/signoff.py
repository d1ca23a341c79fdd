"""A report that cannot lie: the summary every sign-off reads, the digest that seals it, and its verification.

Every selected scenario is a row of acceptance.json, also those that were skipped, crashed or never started
(`status` other than "ran", verdict ERROR, with their `reason`). `passed` is true only when as many scenarios
ran as were selected and every one is OK, or NOT_APPLICABLE (the till lacks a capability the scenario needs,
named in `covers`: "164 of 168 scenarios; 4 not applicable (...)").

The digest holds the sha256 of every evidence file, of the rig and of the document itself; `verify()` re-checks
them and recounts the summary.

>>> summary([{"verdict": "OK", "status": "ran"}, {"verdict": "ERROR", "status": "skipped"}])["passed"]
False
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.acceptance.verdict import Verdict

RAN = "ran"
NOT_RUN = ("skipped", "setup error", "crashed", "not started")     # the other statuses a row can have
RIG_COPY = "rig.yaml"                   # the rig as it was, kept beside acceptance.json
ALGORITHM = "sha256"


def summary(rows: Iterable[dict[str, Any]], selected: int | None = None) -> dict[str, Any]:
    """Counts of one run: selected, ran, each verdict, each reason not to run, `passed` (selected == ran, at least
    one OK, every row OK or NOT_APPLICABLE) and `covers`: what the pass is worth, naming what did not apply.
    `selected` defaults to the number of rows.

    >>> summary([{"verdict": "OK"}, {"verdict": "NOT_APPLICABLE", "reason": "not applicable: the till cannot abort"}])
    ... # doctest: +ELLIPSIS
    {..., 'passed': True, 'covers': '1 of 2 scenarios; 1 not applicable (not applicable: the till cannot abort)'}
    """
    rows = list(rows)
    selected = len(rows) if selected is None else selected
    verdicts = Counter(str(r.get("verdict")) for r in rows)
    statuses = Counter(r.get("status", RAN) for r in rows)
    ran = statuses.get(RAN, 0)
    ok, na = verdicts.get(str(Verdict.OK), 0), verdicts.get(str(Verdict.NOT_APPLICABLE), 0)
    why_na = Counter(str(r.get("reason") or "the till lacks what it needs") for r in rows
                     if str(r.get("verdict")) == Verdict.NOT_APPLICABLE)
    covers = f"{ok} of {selected} scenarios" + (
        f"; {na} not applicable ({'; '.join(f'{n}x {w}' if n > 1 else w for w, n in why_na.most_common())})"
        if na else "")
    return {"selected": selected, "ran": ran, "scenarios": len(rows),
            **{str(v): verdicts.get(str(v), 0) for v in Verdict},
            "not_run": {s: n for s, n in sorted(statuses.items()) if s != RAN},
            "passed": bool(ok) and selected == ran == len(rows) and ok + na == len(rows),
            "covers": covers}


def why_not_passed(doc_summary: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """One line: why a run is not signed off ("" when it passed)."""
    if doc_summary.get("passed"):
        return ""
    selected, ran = doc_summary.get("selected", 0), doc_summary.get("ran", 0)
    if not selected:
        return "no scenario was selected; nothing was tested"
    if not ran:
        reasons = Counter(r.get("reason", "") for r in rows if r.get("status", RAN) != RAN)
        reason, n = reasons.most_common(1)[0] if reasons else ("", 0)
        statuses = ", ".join(f"{k} {v}" for k, v in doc_summary.get("not_run", {}).items())
        return f"nothing ran: {selected} scenario(s) selected, none ran ({statuses}); {reason}"
    bad = {k: v for k, v in doc_summary.items()
           if k in {str(v) for v in Verdict} and k not in (Verdict.OK, Verdict.NOT_APPLICABLE) and v}
    parts = [f"{selected - ran} of {selected} did not run"] if selected != ran else []
    parts += [f"{n} {v}" for v, n in bad.items()]
    return "not signed off: " + ", ".join(parts)


# -- the digest ----------------------------------------------------------------------------------------------
def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def document_sha256(doc: dict[str, Any]) -> str:
    """The hash of acceptance.json's content, its digest left out (key order and spacing do not matter)."""
    body = {k: v for k, v in doc.items() if k != "digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _where(path: Path, report_dir: Path) -> str:
    """`path` relative to the report folder when it lies inside it (the folder can then be moved)."""
    try:
        return Path(os.path.relpath(path, report_dir)).as_posix() if path.is_relative_to(report_dir) \
            else str(path)
    except ValueError:
        return str(path)


def evidence_files(folders: Iterable[Path], listed: Iterable[str | Path] = ()) -> list[Path]:
    """Every file under the scenarios' evidence folders, plus files the records name elsewhere."""
    found: set[Path] = set()
    for folder in folders:
        if Path(folder).is_dir():
            found.update(p.resolve() for p in Path(folder).rglob("*") if p.is_file())
    found.update(Path(p).resolve() for p in listed if Path(p).is_file())
    return sorted(found)


def seal(doc: dict[str, Any], report_dir: Path, evidence_dirs: Iterable[Path], rig_file: Path | None,
         listed: Iterable[str | Path] = ()) -> dict[str, Any]:
    """Add the digest to `doc` (in place): evidence hashes, the rig (a copy kept in the report), the document."""
    report_dir = report_dir.resolve()
    dirs = [Path(d).resolve() for d in evidence_dirs]
    digest: dict[str, Any] = {
        "algorithm": ALGORITHM,
        "evidence_dirs": [_where(d, report_dir) for d in dirs],
        "evidence": {_where(p, report_dir): file_sha256(p) for p in evidence_files(dirs, listed)},
        "rig": None,
    }
    if rig_file is not None and Path(rig_file).is_file():
        report_dir.mkdir(parents=True, exist_ok=True)
        copy = report_dir / RIG_COPY
        if Path(rig_file).resolve() != copy:
            shutil.copyfile(rig_file, copy)
        digest["rig"] = {"file": str(Path(rig_file).resolve()), "copy": RIG_COPY, "sha256": file_sha256(copy)}
    digest["document"] = document_sha256(doc)
    doc["digest"] = digest
    return doc


# -- verification --------------------------------------------------------------------------------------------
def _resolve(where: str, report_dir: Path) -> Path:
    p = Path(where)
    return p if p.is_absolute() else report_dir / p


def verify(report_dir: Path) -> tuple[list[str], dict[str, Any]]:
    """Re-check a report folder: (one line per discrepancy, what was checked). No lines: the report is intact."""
    report_dir = Path(report_dir)
    path = report_dir / "acceptance.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return [f"{path}: missing: no acceptance.json in {report_dir}"], {}
    except (ValueError, UnicodeDecodeError) as exc:
        return [f"{path}: not valid JSON ({exc}): the file was damaged or edited"], {}
    bad: list[str] = []
    digest = doc.get("digest")
    rows = doc.get("scenarios") or []
    if not isinstance(digest, dict):
        return [f"{path}: digest: missing: this report was not sealed (written by a posrig without "
                "`posrig verify`), or its digest was removed"], {"scenarios": len(rows)}
    if digest.get("document") != document_sha256(doc):
        bad.append(f"{path}: content changed after sign-off (sha256 no longer {digest.get('document', '?')[:12]}…)")
    stated = doc.get("summary") or {}
    recount = summary(rows, stated.get("selected"))
    for key in sorted(set(recount) | set(stated), key=lambda k: (k == "passed", k)):
        if key in ("selected",):
            continue
        if stated.get(key) != recount.get(key):
            bad.append(f"{path}: summary.{key}: says {stated.get(key)!r}, the scenarios give {recount.get(key)!r}")
    files = digest.get("evidence") or {}
    for where, sha in sorted(files.items()):
        p = _resolve(where, report_dir)
        if not p.is_file():
            bad.append(f"{p}: evidence missing (it was signed with sha256 {sha[:12]}…)")
        elif file_sha256(p) != sha:
            bad.append(f"{p}: evidence changed after sign-off (sha256 {file_sha256(p)[:12]}…, signed {sha[:12]}…)")
    known = {_resolve(w, report_dir).resolve() for w in files}
    for extra in evidence_files(_resolve(d, report_dir) for d in digest.get("evidence_dirs") or []):
        if extra not in known:
            bad.append(f"{extra}: evidence added after sign-off (not in the digest)")
    rig = digest.get("rig")
    if rig:
        copy = report_dir / rig.get("copy", RIG_COPY)
        if not copy.is_file():
            bad.append(f"{copy}: the rig's copy is missing (signed sha256 {rig['sha256'][:12]}…)")
        elif file_sha256(copy) != rig["sha256"]:
            bad.append(f"{copy}: rig changed after sign-off (sha256 {file_sha256(copy)[:12]}…, "
                       f"signed {rig['sha256'][:12]}…)")
        original = Path(rig.get("file", ""))
        if original.is_file() and file_sha256(original) != rig["sha256"]:
            bad.append(f"{original}: rig changed since the run (sha256 {file_sha256(original)[:12]}…, "
                       f"signed {rig['sha256'][:12]}…)")
    checked = {"scenarios": len(rows), "evidence": len(files), "rig": bool(rig), "passed": stated.get("passed")}
    return bad, checked

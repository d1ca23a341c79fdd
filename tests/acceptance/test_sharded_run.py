"""Sharded `posrig run`, end to end: three shards of a small selection (one of them on two xdist workers), merged
by `posrig report merge`, give the unsharded run's scenarios and verdicts in a report `posrig verify` accepts;
without one shard the merge is red and names it."""

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.support import ROOT

pytestmark = [pytest.mark.acceptance, pytest.mark.needs_netns]

SELECTION = "0210-lost or 0200-lost or printer"
SHARDS = 3


def posrig(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The selection run once whole and once as three shards: {"whole": dir, 1: dir, 2: dir, 3: dir}."""
    where = tmp_path_factory.mktemp("sharded")
    done = {}
    whole = posrig("run", "-k", SELECTION, "--report", "whole", cwd=where)
    assert whole.returncode == 0, whole.stdout[-2000:] + whole.stderr[-2000:]
    done["whole"] = where / "whole"
    for i in range(1, SHARDS + 1):
        workers = ["-n", "2"] if i == 2 else []              # the controller learns its shard from a worker
        shard = posrig("run", "-k", SELECTION, "--shard", f"{i}/{SHARDS}", "--report", f"shard-{i}", *workers,
                       cwd=where)
        assert shard.returncode == 0, shard.stdout[-2000:] + shard.stderr[-2000:]
        done[i] = where / f"shard-{i}"
    return where, done


def _verdicts(folder: Path) -> dict[str, str]:
    doc = json.loads((folder / "acceptance.json").read_text())
    return {r["id"]: r["verdict"] for r in doc["scenarios"]}


def test_three_shards_merge_into_the_unsharded_report(runs):
    where, done = runs
    parts = [set(_verdicts(done[i])) for i in range(1, SHARDS + 1)]
    assert all(parts) and sum(map(len, parts)) == len(set().union(*parts)), parts    # disjoint, none empty
    merged = posrig("report", "merge", *(f"shard-{i}" for i in range(1, SHARDS + 1)), "-o", "merged", cwd=where)
    assert merged.returncode == 0, merged.stdout + merged.stderr
    whole = _verdicts(done["whole"])
    assert len(whole) == 11                             # 4 link rows, 6 printer faults, the printer power cycle
    assert _verdicts(where / "merged") == whole

    doc = json.loads((where / "merged" / "acceptance.json").read_text())
    assert doc["summary"]["passed"] and doc["summary"]["selected"] == len(whole)
    assert [s["index"] for s in doc["merge"]["shards"]] == [1, 2, 3] and doc["merge"]["problems"] == []
    check = posrig("verify", "merged", cwd=where)
    assert check.returncode == 0 and "intact: 11 scenarios (passed)" in check.stdout, check.stdout + check.stderr

    page = (where / "merged" / "report.html").read_text()
    links = [a.split("'")[0] for a in page.split("href='")[1:]]
    assert len(links) > len(whole) and "PASSED 11/11" in page
    assert [link for link in links if not (where / "merged" / link).is_file()] == []
    # every receipt of the shards shown (not compared with the unsharded run: how many receipts a torn-and-reprinted
    # row prints may differ from run to run)
    images = sum(whole_receipt_images(done[i]) for i in range(1, SHARDS + 1))
    assert images and page.count("data:image/png;base64,") == images
    suite = ET.parse(where / "merged" / "junit.xml").getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("11", "0", "0")


def whole_receipt_images(folder: Path) -> int:
    doc = json.loads((folder / "acceptance.json").read_text())
    return sum(1 for r in doc["scenarios"] for rc in r["receipts"] if rc.get("png"))


def test_without_one_shard_the_merge_fails_naming_it(runs):
    where, done = runs
    merged = posrig("report", "merge", "shard-1", "shard-3", "-o", "incomplete", cwd=where)
    assert merged.returncode == 1, merged.stdout + merged.stderr
    assert "shard 2/3 missing: no report of it among the merged folders" in merged.stderr
    doc = json.loads((where / "incomplete" / "acceptance.json").read_text())
    assert doc["summary"]["passed"] is False
    not_run = {r["id"] for r in doc["scenarios"] if r["status"] == "not started"}
    assert not_run == set(_verdicts(done[2])) and set(_verdicts(where / "incomplete")) == set(_verdicts(done["whole"]))
    assert posrig("verify", "incomplete", cwd=where).returncode == 0

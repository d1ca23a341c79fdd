"""`posrig report merge` on small hand-made shard reports (written and sealed as `posrig run --shard` writes
them): a complete set passes and verifies; a missing shard, a shard that does not verify or a scenario in no
shard is a red report naming the shard; shards that are not of one run are refused."""

import json
import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.acceptance.report.merge import MergeRefused, merge
from harness.acceptance.report.record import ScenarioRecord, write_acceptance_json
from harness.acceptance.report.signoff import verify
from harness.acceptance.shard import shard_block
from harness.cli import main
from harness.core.rig import load_rig
from tests.support import RIGS

IDS = ["terminal-host/0200-lost/approve", "terminal-host/0210-lost/approve", "terminal-host/0210-lost/decline",
       "printer/paper-out-before/approve", "printer/offline-before/decline"]
DURATIONS = {IDS[0]: 3.0, IDS[1]: 2.0, IDS[2]: 2.0, IDS[3]: 1.0, IDS[4]: 1.0}
TOTAL = 3


def _nodeid(key: str) -> str:
    return f"harness/acceptance/suite/test_matrix.py::test_scenario[{key}]"


def write_shard(root: Path, index: int, *, total: int = TOTAL, ids=IDS, verdicts=None, rig: str = "emulated.yaml",
                version: str | None = None, options=None) -> Path:
    """A shard's report folder as `posrig run --shard index/total` leaves it: rows with evidence, junit.xml."""
    out = root / f"shard-{index}"
    root.mkdir(parents=True, exist_ok=True)
    rig_file = root / f"{rig}.src"
    if not rig_file.exists():
        rig_file.write_text((RIGS / rig).read_text())
    block = shard_block(index, total, {k: _nodeid(k) for k in ids}, options or {"keyword": "lost or printer"},
                        DURATIONS, "d" * 64)
    rows, dirs, cases = [], [], []
    for key in block["shards"][index - 1]:
        folder = out / "evidence" / key.replace("/", "_")
        folder.mkdir(parents=True)
        (folder / "host.jsonl").write_text(json.dumps({"scenario": key}) + "\n")
        (folder / "receipt-0001.txt").write_text("SALE 1.19\n")
        verdict = (verdicts or {}).get(key, "OK")
        rows.append(ScenarioRecord(id=key, verdict=verdict, nodeid=_nodeid(key), elapsed=DURATIONS[key],
                                   evidence=[{"name": "host", "path": str(folder / "host.jsonl"), "mime": ""}],
                                   receipts=[{"index": 1, "kind": "sale", "text": "SALE 1.19", "png": None}],
                                   reason="" if verdict == "OK" else "I1 broken"))
        dirs.append(folder)
        failure = "" if verdict == "OK" else "<failure message='I1'/>"
        cases.append(f"<testcase classname='harness.acceptance.suite.test_matrix' name='test_scenario[{key}]' "
                     f"time='1.0'>{failure}</testcase>")
    write_acceptance_json(out / "acceptance.json", rows, load_rig(rig_file), time.time(), {"shard": block},
                          evidence_dirs=dirs)
    (out / "junit.xml").write_text(f"<testsuites><testsuite name='pytest' tests='{len(cases)}' time='2.5'>"
                                   "<properties><property name='posrig_rig' value='emulated'/></properties>"
                                   f"{''.join(cases)}</testsuite></testsuites>")
    if version is not None:
        doc = json.loads((out / "acceptance.json").read_text())
        doc["versions"]["posrig"] = version
        (out / "acceptance.json").write_text(json.dumps(doc))
    return out


@pytest.fixture
def shards(tmp_path):
    return [write_shard(tmp_path / "ci", i) for i in range(1, TOTAL + 1)]


def test_complete_shards_merge_into_one_report_that_verifies(shards, tmp_path):
    out = tmp_path / "merged"
    doc = merge(shards, out)
    assert sorted(r["id"] for r in doc["scenarios"]) == sorted(IDS)
    assert {r["verdict"] for r in doc["scenarios"]} == {"OK"}
    assert doc["summary"]["passed"] is True and doc["summary"]["selected"] == len(IDS)
    assert doc["merge"]["problems"] == [] and doc["merge"]["present"] == [1, 2, 3]
    problems, checked = verify(out)
    assert problems == [] and checked["scenarios"] == len(IDS) and checked["rig"]
    for i in range(1, TOTAL + 1):                         # each shard stays verifiable inside the merged report
        assert verify(out / "shards" / f"{i}-of-{TOTAL}")[0] == []


def test_every_evidence_link_of_the_merged_page_works_after_the_shards_are_gone(shards, tmp_path):
    import shutil

    out = tmp_path / "merged"
    doc = merge(shards, out)
    shutil.rmtree(tmp_path / "ci")
    for row in doc["scenarios"]:
        for e in row["evidence"]:
            assert Path(e["path"]).is_file() and Path(e["path"]).is_relative_to(out / "shards"), e
    page = (out / "report.html").read_text()
    links = [a.split("'")[0] for a in page.split("href='")[1:]]
    assert len(links) == len(IDS)                          # one evidence file each (no shard's own report.html here)
    assert all((out / link).is_file() for link in links), [link for link in links if not (out / link).is_file()]
    assert "PASSED 5/5" in page


def test_a_missing_shard_is_named_and_the_merge_does_not_pass(shards, tmp_path):
    out = tmp_path / "merged"
    doc = merge([shards[0], shards[2]], out)
    assert doc["summary"]["passed"] is False
    missing = [r for r in doc["scenarios"] if r["status"] == "not started"]
    assert missing and all(r["reason"].startswith("shard 2/3 missing") for r in missing)
    assert sorted(r["id"] for r in doc["scenarios"]) == sorted(IDS)    # still a row for every selected one
    assert any(p.startswith("shard 2/3 missing") for p in doc["merge"]["problems"])
    assert verify(out)[0] == []
    junit = ET.parse(out / "junit.xml").getroot().find("testsuite")
    assert int(junit.get("errors")) == len(missing) and int(junit.get("tests")) == len(IDS)


def test_a_folder_without_a_report_counts_as_its_shard_missing(shards, tmp_path, capsys):
    (shards[1] / "acceptance.json").unlink()
    assert main(["report", "merge", *map(str, shards), "-o", str(tmp_path / "m")]) == 1
    err = capsys.readouterr().err
    assert "no acceptance.json" in err and "shard 2/3 missing" in err


def test_a_shard_that_does_not_verify_makes_its_rows_errors(shards, tmp_path):
    tampered = next((shards[0] / "evidence").iterdir()) / "host.jsonl"
    tampered.write_text('{"scenario": "edited"}\n')
    doc = merge(shards, tmp_path / "merged")
    assert doc["summary"]["passed"] is False
    mine = json.loads((shards[0] / "acceptance.json").read_text())["shard"]["shards"][0]
    bad = {r["id"]: r for r in doc["scenarios"] if r["verdict"] == "ERROR"}
    assert set(bad) == set(mine)
    assert all("shard 1/3" in r["reason"] and "does not verify" in r["reason"] for r in bad.values())
    assert any("shard 1/3" in p and "evidence changed" in p for p in doc["merge"]["problems"])
    assert verify(tmp_path / "merged")[0] == []


def test_a_failing_scenario_stays_failing(tmp_path):
    shards = [write_shard(tmp_path, i, verdicts={IDS[1]: "FAIL"}) for i in range(1, TOTAL + 1)]
    doc = merge(shards, tmp_path / "merged")
    assert [r["id"] for r in doc["scenarios"] if r["verdict"] == "FAIL"] == [IDS[1]]
    assert doc["summary"]["passed"] is False and doc["merge"]["problems"] == []
    junit = ET.parse(tmp_path / "merged" / "junit.xml").getroot().find("testsuite")
    assert (junit.get("tests"), junit.get("failures"), junit.get("errors")) == ("5", "1", "0")


def test_a_missing_shard_that_had_nothing_loses_nothing(tmp_path):
    shards = [write_shard(tmp_path, i, total=7) for i in range(1, 6)]     # 5 scenarios: shards 6 and 7 empty
    doc = merge(shards, tmp_path / "merged")
    assert doc["summary"]["passed"] is True
    assert [p for p in doc["merge"]["problems"] if "nothing lost" in p] == [
        "shard 6/7 missing: no report of it among the merged folders (it had no scenario of the selection: "
        "nothing lost)", "shard 7/7 missing: no report of it among the merged folders (it had no scenario of the "
        "selection: nothing lost)"]


@pytest.mark.parametrize("odd, says", [
    (dict(rig="bench-example.yaml"), "not the same rig;"),
    (dict(version="9.9.9"), "not the same posrig version;"),
    (dict(ids=IDS[:4]), "not the same selection;"),
    (dict(options={"keyword": "0210"}), "not the same options (-k, -m, till profile);"),
    (dict(total=4), "not the same number of shards;"),
])
def test_shards_of_different_runs_are_refused(shards, tmp_path, odd, says):
    other = write_shard(tmp_path / "other", 2, **odd)
    with pytest.raises(MergeRefused, match=re.escape(says)) as refused:
        merge([shards[0], other, shards[2]], tmp_path / "merged")
    assert str(other) in str(refused.value) and "shard 2/" in str(refused.value)
    assert not (tmp_path / "merged").exists()


def test_the_same_shard_twice_is_refused(shards, tmp_path, capsys):
    copy = tmp_path / "again"
    import shutil

    shutil.copytree(shards[1], copy)
    assert main(["report", "merge", *map(str, shards), str(copy), "-o", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "shard 2/3 given twice" in err[0]


def test_a_report_that_is_not_a_shard_is_refused(shards, tmp_path, capsys):
    merge(shards, tmp_path / "merged")
    assert main(["report", "merge", str(tmp_path / "merged"), "-o", str(tmp_path / "m2")]) == 2
    assert "not a shard's report" in capsys.readouterr().err


def test_merging_into_a_shard_folder_is_refused(shards):
    with pytest.raises(MergeRefused, match="overlaps the report of shard 1/3"):
        merge(shards, shards[0] / "merged")


def test_a_shard_that_could_not_collect_the_suite_is_refused(shards, tmp_path):
    doc = json.loads((shards[1] / "acceptance.json").read_text())
    doc["collection_errors"] = ["harness/acceptance/suite/test_matrix.py"]
    (shards[1] / "acceptance.json").write_text(json.dumps(doc))
    with pytest.raises(MergeRefused, match="shard 2/3 could not collect the suite"):
        merge(shards, tmp_path / "merged")


def test_a_scenario_in_two_shards_is_named_and_not_passed(shards, tmp_path):
    """A shard that (by some bug) also ran another shard's scenario: both rows stay, the merge is red."""
    from harness.acceptance.report.signoff import seal, summary

    other = json.loads((shards[0] / "acceptance.json").read_text())["scenarios"][0]
    doc = json.loads((shards[1] / "acceptance.json").read_text())
    doc["scenarios"].append(other)
    doc["summary"] = summary(doc["scenarios"])
    dirs = [shards[1] / d for d in doc.pop("digest")["evidence_dirs"]]
    seal(doc, shards[1], dirs, shards[1] / "rig.yaml")
    (shards[1] / "acceptance.json").write_text(json.dumps(doc))
    assert verify(shards[1])[0] == []                       # a sealed report, only not of its own part
    merged = merge(shards, tmp_path / "merged")
    assert merged["summary"]["passed"] is False
    assert f"{other['id']} is in the rows of shard 1/3 and shard 2/3: it must be in exactly one shard" in \
        merged["merge"]["problems"]
    assert any("shard 2/3" in p and "not in its part of the selection" in p for p in merged["merge"]["problems"])


def test_posrig_report_durations_times_the_scenarios_of_reports(shards, tmp_path):
    from harness.acceptance.shard import load_durations

    target = tmp_path / "durations.json"
    assert main(["report", "durations", *map(str, shards), "-o", str(target)]) == 0
    assert load_durations(target) == DURATIONS
    assert json.loads(target.read_text())["format"] == "posrig-durations/1"
    assert main(["report", "durations", str(tmp_path / "nowhere")]) == 2

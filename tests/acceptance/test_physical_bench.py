"""The matrix on a physical bench, simulated (tests/support/sim_bench.py): namespaces as the boxes, veths as the
bench PC's NICs, posrig's emulators as separate processes standing in for the real till, terminal and printer,
a scripted person on the operator FIFOs. `posrig run --rig <bench rig>` runs inside the bench PC's namespace."""

from __future__ import annotations

import json

import pytest

from tests.support.sim_bench import ScriptedPerson, SimBench

pytestmark = pytest.mark.needs_netns

SLICE = " or ".join(["till-terminal/04-0F-lost/approve", "till-terminal/04-0F-lost/decline",
                     "terminal-host/0210-late/approve", "terminal-host/0210-lost/decline",
                     "till-terminal/06-B0-delivered/approve", "printer/paper-out-during/approve"])


@pytest.fixture
def sim(tmp_path, request):
    """The simulated bench with the till profile the test names (request.param), devices running."""
    bench = SimBench(tmp_path, profile=getattr(request, "param", "correct"))
    person = ScriptedPerson(bench)
    try:
        bench.build()
        bench.write_rig()
        up = bench.posrig("link", "up", "--rig", str(bench.rig_path))
        assert up.returncode == 0, up.stderr
        bench.start_devices()
        person.start()
        yield bench, person
    finally:
        person.stopping.set()
        person.join(5)
        bench.close()


def run_slice(bench: SimBench, keyword: str) -> tuple[object, dict]:
    done = bench.posrig("run", "--rig", str(bench.rig_path), "--report", str(bench.folder / "report"), "-k", keyword)
    report = bench.folder / "report" / "acceptance.json"
    assert report.exists(), f"no acceptance.json; posrig run said:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    doc = json.loads(report.read_text())
    return done, doc


def verdicts(doc: dict) -> dict[str, str]:
    return {s["id"]: s["verdict"] for s in doc["scenarios"]}


def test_correct_till_passes_the_slice_on_the_bench(sim):
    bench, person = sim
    done, doc = run_slice(bench, SLICE)
    got = verdicts(doc)
    assert got["till-terminal/04-0F-lost/approve"] == "OK", (got, done.stdout[-3000:], done.stderr[-3000:])
    assert got["till-terminal/04-0F-lost/decline"] == "OK", got
    assert got["terminal-host/0210-late/approve"] == "OK", got
    assert got["terminal-host/0210-lost/decline"] == "OK", got
    # nothing skipped silently: what a bench cannot do is a NOT_APPLICABLE row with its reason
    rows = {s["id"]: s for s in doc["scenarios"]}
    abort = rows["till-terminal/06-B0-delivered/approve"]          # the person was told to press abort
    assert abort["verdict"] == "OK", abort
    assert any("press ABORT on the till now" in line for line in person.seen)
    paper = rows["printer/paper-out-during/approve"]
    assert paper["verdict"] == "NOT_APPLICABLE" and "physical printer" in paper["observed"]
    assert len(got) == 6 and not person.errors
    assert any("present the DECLINE test card" in line for line in person.seen)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
    evidence = bench.folder / "report" / "evidence"
    assert list(evidence.rglob("link-till-terminal.pcapng")) and list(evidence.rglob("link-terminal-host.pcapng"))
    # posrig held no ECR session: the terminal's record came from the till-terminal capture
    [journal] = evidence.glob("*04-0F-lost_approve/terminal-journal.json")
    record = json.loads(journal.read_text())
    assert record["source"] == "capture of link till-terminal"
    assert [(t["amount"], t["state"]) for t in record["transactions"]] == [(478, "approved"), (488, "approved"),
                                                                           (669, "approved")]
    decoded = record["transactions"][1]                                  # the faulted sale
    # ... and agrees with the terminal's own journal (the emulator's SQLite, read as a journal export)
    from harness.terminal.capture_journal import ExportJournal

    own = {t["trace"].zfill(6): t for t in ExportJournal(bench.folder / "terminal-journal.sqlite").transactions("sale")}
    assert decoded["trace"] in own, (decoded, own)
    assert (own[decoded["trace"]]["amount"], own[decoded["trace"]]["receipt_no"]) == (488, decoded["receipt_no"])
    assert own[decoded["trace"]]["state"] == "approved"


SEEDED = {"print-on-timeout": "terminal-host/0210-late/approve"}     # the incident: a receipt for a reversed payment


@pytest.mark.parametrize("sim", list(SEEDED), indirect=True)
def test_seeded_bug_fails_on_the_bench(sim):
    bench, person = sim
    scenario = SEEDED[bench.profile]
    done, doc = run_slice(bench, scenario)
    got = verdicts(doc)
    assert got == {scenario: "FAIL"}, (got, done.stderr[-3000:])
    assert done.returncode == 1

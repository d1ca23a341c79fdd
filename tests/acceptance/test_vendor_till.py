"""The example vendor till (examples/vendor_till) on the emulated bench, the way a vendor plugs one in: a slice
of the fault matrix through `http` and through `command`, its cashier-abort scenarios raced for real, a power cut
in the middle of a payment, and the same till declaring no abort getting "not applicable" rows."""

from __future__ import annotations

import dataclasses
import json

import pytest

from harness.acceptance.matrix import power_cut_scenarios, scenarios
from harness.acceptance.scenario import FAULTED, run_scenario
from harness.acceptance.verdict import Verdict
from harness.core.bench import Bench
from harness.core.rig import load_rig
from tests.support import ROOT

pytestmark = [pytest.mark.acceptance, pytest.mark.needs_netns]

RIGS = {name: ROOT / "examples" / "vendor_till" / f"rig-{name}.yaml" for name in ("http", "command")}
SLICE = ("terminal-host/0210-lost/approve", "till-terminal/04-0F-lost/approve", "till-terminal/06-B0-delivered/approve",
         "till-terminal/06-B0-lost/approve", "printer/paper-out-during/approve")


def _run(rig, evidence, topology, scenario):
    bench = Bench(rig, evidence, topology)
    try:
        return run_scenario(bench, scenario), bench.identities()
    finally:
        errors = bench.close()
        topology.drop_connections()
        assert not errors, errors


@pytest.fixture
def vendor_bench(evidence, topology):
    if topology is None:
        pytest.skip("needs the emulated topology")
    return lambda rig, scenario: _run(rig, evidence, topology, scenario)


@pytest.mark.parametrize("driver", RIGS)
@pytest.mark.parametrize("scenario_id", SLICE)
def test_vendor_till_passes_a_slice_of_the_matrix(vendor_bench, driver, scenario_id):
    rig = load_rig(RIGS[driver])
    assert not any(d.address for d in rig.devices.values() if d.kind == "till")    # no address in its rig
    scenario = next(s for s in scenarios(rig.timing.scale) if s.id == scenario_id)
    record, devices = vendor_bench(rig, scenario)
    assert record.verdict is Verdict.OK, f"{record.verdict}: {record.violations or record.observed}"
    till = next(d for d in devices if d["kind"] == "till")
    assert till["capabilities"] == ["abort", "journal", "lifecycle", "recover"]


@pytest.mark.parametrize("driver", RIGS)
@pytest.mark.parametrize("scenario", power_cut_scenarios(), ids=lambda s: s.id)
def test_vendor_till_recovers_from_a_power_cut_mid_payment(vendor_bench, evidence, driver, scenario):
    record, _ = vendor_bench(load_rig(RIGS[driver]), scenario)
    assert record.verdict is Verdict.OK, f"{record.verdict}: {record.violations or record.observed}"
    assert "not quiet" not in record.observed, record.observed
    if driver == "http":
        events = [e["event"] for e in json.loads((evidence.path / "till-lifecycle.json").read_text())]
        assert events == ["launch", "killed", "launch", "stopped"]
    journal = json.loads((evidence.path / "till-state" / "acme-journal.json").read_text())
    # The terminal finishes alone: it may book the payment, or reverse it when it cannot hand the result to a
    # till that is off. Either way the rebooted till must say what the acquirer holds.
    held = [row for row in record.ledger if row["state"] in ("approved", "settled") and row["amount"] == FAULTED]
    assert not held or scenario.outcome == "approve", record.ledger
    faulted = [s["status"] for s in journal if s["amount_cents"] == FAULTED]     # the clean sales around it are paid
    assert faulted == (["paid"] if held else ["failed"]), (journal, record.ledger)


def test_a_till_without_abort_gets_not_applicable_rows(vendor_bench):
    rig = load_rig(RIGS["http"])
    till = rig.devices["till"]
    rig = dataclasses.replace(rig, devices={**rig.devices, "till": dataclasses.replace(
        till, options={**till.options, "capabilities": ["journal", "recover"]})})
    abort = next(s for s in scenarios(rig.timing.scale) if s.cashier_abort)
    record, _ = vendor_bench(rig, abort)
    assert record.verdict is Verdict.NOT_APPLICABLE and not record.verdict.passed
    assert record.observed.startswith("not applicable: the till cannot abort")


def test_posrig_run_on_a_till_without_abort_passes_and_says_what_it_covers(tmp_path):
    """The sign-off a vendor reads: the abort races are rows saying "not applicable", the run passes, and the
    summary names what the pass does not cover."""
    import shutil
    import subprocess
    import sys

    src = RIGS["http"]
    shutil.copy(src.parent / "till.py", tmp_path / "till.py")
    (tmp_path / "rig.yaml").write_text(src.read_text().replace(
        "    options:\n      sale_timeout: 60\n",
        "    options:\n      sale_timeout: 60\n      capabilities: [journal, recover]\n", 1))
    report = tmp_path / "report"
    run = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--rig", str(tmp_path / "rig.yaml"),
                          "--report", str(report), "-k", "06-B0-lost or 0210-lost/approve"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    doc = json.loads((report / "acceptance.json").read_text())
    rows = {r["id"]: r for r in doc["scenarios"]}
    assert {rows[i]["verdict"] for i in rows if "06-B0" in i} == {"NOT_APPLICABLE"}
    assert rows["terminal-host/0210-lost/approve"]["verdict"] == "OK"
    summary = doc["summary"]
    assert summary["passed"] and summary["NOT_APPLICABLE"] == 2 and summary["OK"] == 1
    assert summary["covers"].startswith("1 of 3 scenarios; 2 not applicable") and "cannot abort" in summary["covers"]
    assert "passed, covering 1 of 3 scenarios" in run.stderr
    assert "not applicable" in (report / "report.html").read_text()

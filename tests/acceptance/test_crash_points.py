"""The crash rows cut the power exactly at their point, on the emulated bench with the reference till: the evidence
shows where the device stopped and how it came back."""

from __future__ import annotations

import pytest

from harness.acceptance.matrix import crash_scenarios
from harness.acceptance.scenario import FAULTED, run_scenario
from harness.acceptance.verdict import Verdict

pytestmark = [pytest.mark.acceptance, pytest.mark.needs_netns,
              pytest.mark.no_oracle("run_scenario reconciles the scenario itself")]


def _row(rig, scenario_id):
    return next(s for s in crash_scenarios(rig.timing.scale) if s.id == scenario_id)


def test_a_till_cut_mid_receipt_prints_it_again_as_a_copy_once(bench, rig):
    if bench.topology is None:
        pytest.skip("needs the emulated topology")
    record = run_scenario(bench, _row(rig, "till/power-cut-mid-receipt/approve"))
    assert record.verdict is Verdict.OK, record.violations or record.observed
    [crash] = bench.printer.core.crashes
    assert crash["at"] == "bytes"
    sale = _faulted_sale_now(bench)
    states = [e["state"] for e in sale["events"]]
    assert states[-2:] == ["printing", "printed"] and sale["receipt"] == "printed"   # owed, then the copy
    assert [(p["kind"], p["ok"]) for p in sale["prints"]] == [("reprint", True)]   # the original never finished
    slips = [r for r in record.receipts if "4.88" in r["text"]]
    [slip] = slips                                      # the torn start and the copy, on one slip of paper
    assert slip["kind"] == "copy" and slip["text"].count("POSRIG MARKET") == 2


def _faulted_sale_now(bench):
    return next(s for s in bench.till.journal() if s["amount_cents"] == FAULTED)


def test_a_terminal_rebooted_while_the_host_held_the_approval_reverses_it(bench, rig):
    if bench.topology is None:
        pytest.skip("needs the emulated topology")
    record = run_scenario(bench, _row(rig, "terminal/restart-online/approve"))
    assert record.verdict is Verdict.OK, record.violations or record.observed
    faulted = next(t for t in bench.terminal.journal.transactions("sale") if t["amount"] == FAULTED)
    assert faulted["state"] == "reversed" and faulted["reversal_reason"] == "68"
    assert [p["state"] for p in record.ledger if p["amount"] == FAULTED] == ["reversed"]
    sale = _faulted_sale_now(bench)
    assert sale["status"] == "failed" and sale["receipt"] == "none"

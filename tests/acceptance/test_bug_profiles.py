"""The matrix catches every seeded bug of the reference till, each at the stage where that mistake bites.

The same scenario passes with the `correct` profile (the matrix itself proves that); here each bug profile must
make the oracle fail it on the named invariant. `posrig run --till-profile NAME` shows every stage that catches it.
"""

import pytest

from harness.acceptance.matrix import scenarios
from harness.acceptance.scenario import run_scenario
from harness.acceptance.verdict import Verdict

pytestmark = [pytest.mark.acceptance, pytest.mark.needs_netns,
              pytest.mark.no_oracle("run_scenario reconciles the scenario itself; the test asserts its FAIL")]

CAUGHT = [
    # profile, scenario, invariant broken
    ("print-on-timeout", "terminal-host/0210-lost/approve", "I1"),          # the incident: host approved, 0210 lost
    ("print-before-completion", "till-terminal/06-B0-late/approve", "I1"),   # printed, then the payment was reversed
    ("retry-without-query", "till-terminal/06-0F-lost/approve", "I2"),       # paid again instead of asking
    ("trust-abort", "till-terminal/06-B0-lost/approve", "I2"),               # "cancelled", yet charged
    ("offline-as-approved", "terminal-host/connect-lost/approve", "I1"),     # host unreachable taken as approved
    ("ignore-print-failure", "printer/offline-before/approve", "I2"),        # charged, customer gets nothing
    ("drawer-on-decline", "terminal-host/0200-dup/decline", "I5"),          # drawer open on a declined card
    ("drawer-at-tender", "terminal-host/0200-dup/approve", "I5"),           # open before the approval (it settled)
    # behaviour rows (matrix.behaviour_scenarios)
    ("offline-as-approved", "terminal-host/offline-above-floor/approve", "I1"),  # above the floor limit: no money
    ("print-before-completion", "card/offline-only/approve", "I6"),   # its early receipt drops the offline mark
    ("drawer-on-decline", "card/insufficient-funds/decline", "I5"),
    # crash rows (matrix.crash_scenarios)
    ("forget-on-crash", "till/power-cut-result/approve", "I2"),            # booked, cut, then written off unasked
    ("receipt-not-owed", "till/power-cut-mid-receipt/approve", "I2"),      # cut mid-receipt, never printed whole
    ("reprint-original", "till/power-cut-after-receipt/approve", "I1"),    # a second original after the cut
]


def _id(case: tuple[str, str, str]) -> str:
    """The profile; with the row's name when the profile is shown at more than one row."""
    profile, scenario_id, _ = case
    first = next(c for c in CAUGHT if c[0] == profile)
    return profile if case is first else f"{profile}-at-{scenario_id.split('/')[1]}"


@pytest.mark.parametrize("profile,scenario_id,invariant", CAUGHT, ids=[_id(c) for c in CAUGHT])
def test_bug_profile_is_caught(bench, rig, monkeypatch, profile, scenario_id, invariant):
    if bench.topology is None:
        pytest.skip("needs the emulated topology")
    monkeypatch.setenv("POSRIG_TILL_PROFILE", profile)
    scenario = next(s for s in scenarios(rig.timing.scale) if s.id == scenario_id)
    record = run_scenario(bench, scenario)
    assert bench.till.identity()["profile"] == profile
    assert record.verdict is Verdict.FAIL, f"{profile} was not caught at {scenario_id}: {record.observed}"
    assert any(v.startswith(invariant) for v in record.violations), record.violations

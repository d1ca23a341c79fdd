"""The fault matrix: every payment stage x fault kind x host outcome, plus printer faults (harness/matrix.py).

Each scenario sells one basket on a fresh bench while its faults hit their stage, proves the faults fired, waits
for the bench to be quiet, and lets the oracle reconcile the ledger, the terminal journal and the receipts.
"""

import zlib

import pytest

from fixtures.report import SCENARIO_KEY
from harness.acceptance.matrix import scenarios
from harness.acceptance.report.record import ScenarioRecord
from harness.acceptance.scenario import attach_evidence, run_scenario
from harness.acceptance.verdict import Verdict

pytestmark = [pytest.mark.acceptance, pytest.mark.needs_netns]


def pytest_generate_tests(metafunc):
    if "scenario" in metafunc.fixturenames:
        from fixtures.plugin import configured_rig

        rig = configured_rig(metafunc.config)
        scale = rig.timing.scale if rig is not None else 0.05
        found = scenarios(scale)
        metafunc.parametrize("scenario", found, ids=[s.id for s in found])


def test_scenario(request, bench, scenario):
    on_bench = bench.rig.network_mode == "bench" and any(s.driver == "bench" for s in bench.rig.links.values())
    if bench.topology is None and not on_bench:
        pytest.skip("the fault matrix needs the emulated topology (network namespaces) or a bench link")
    seed = zlib.crc32(scenario.id.encode())
    try:
        record = run_scenario(bench, scenario, seed=seed)
    except Exception as exc:
        record = ScenarioRecord(id=scenario.id, link=scenario.link, stage=scenario.stage, fault=scenario.fault,
                                outcome=scenario.outcome, expected=scenario.expected, seed=seed, verdict=Verdict.ERROR,
                                observed=f"the scenario could not run: {exc!r}")
    request.node.stash[SCENARIO_KEY] = record
    devices = bench.identities()
    errors = bench.close()
    attach_evidence(record, bench)
    record.devices = devices
    if errors:
        record.verdict = Verdict.ERROR
        record.observed += "; teardown: " + "; ".join(errors)
    if record.verdict is Verdict.NOT_APPLICABLE:
        pytest.skip(record.observed)                # listed as skipped, and NOT_APPLICABLE in acceptance.json
    assert record.verdict is Verdict.OK, f"{record.verdict}: " + "\n".join(record.violations or [record.observed])

"""The fault matrix: every payment stage x fault kind x host outcome, plus printer faults (harness/matrix.py).

Each scenario sells one basket while its faults hit their stage, proves the faults fired, waits for the bench to
be quiet, and lets the oracle reconcile the ledger, the terminal journal and the receipts. Scenarios run on this
worker's bench pool (`--benches`): the next ones of the worker's queue start while the current one waits on its
timers; each test collects its own scenario's record.
"""

import dataclasses

import pytest

from fixtures.concurrency import upcoming
from fixtures.plugin import EVIDENCE_PATH_KEY, evidence_root
from fixtures.report import SCENARIO_KEY
from harness.acceptance.matrix import scenarios
from harness.acceptance.verdict import Verdict
from harness.core.evidence import safe_name
from harness.explore.schedule import regression_scenarios, replay_scenarios

pytestmark = [pytest.mark.acceptance, pytest.mark.needs_netns]


def pytest_generate_tests(metafunc):
    if "scenario" in metafunc.fixturenames:
        from fixtures.plugin import configured_rig

        rig = configured_rig(metafunc.config)
        scale = rig.timing.scale if rig is not None else 0.05
        files = metafunc.config.getoption("--scenario-file", None)      # replay explored schedules instead
        found = replay_scenarios(files) if files else scenarios(scale) + regression_scenarios()
        metafunc.parametrize("scenario", found, ids=[s.id for s in found])


def _submit(pool, item):
    return pool.submit(item.callspec.params["scenario"], evidence_root(item.config) / safe_name(item.nodeid))


def test_scenario(request, rig, scenario_pool, scenario):
    if rig.network_mode == "bench" and not any(s.driver == "bench" for s in rig.links.values()):
        pytest.skip("the fault matrix needs the emulated topology (network namespaces) or a bench link")
    job = _submit(scenario_pool, request.node)
    ahead = [it for it in upcoming(request.node) if getattr(it, "function", None) is test_scenario]
    for item in ahead[:scenario_pool.size]:
        _submit(scenario_pool, item)
    request.node.stash[EVIDENCE_PATH_KEY] = job.evidence_path
    record = job.future.result()
    if record.verdict is Verdict.INCONCLUSIVE:
        # Nothing was proved (a fault or a crash point missed its moment, e.g. the sale ended before it): the
        # scenario runs once more on a fresh bench and that run is the row's, the first one named in it. A FAIL is
        # never run again.
        first = record
        again = scenario_pool.submit(dataclasses.replace(scenario, id=f"{scenario.id}#again"),
                                     evidence_root(request.config) / safe_name(request.node.nodeid + "-again"))
        request.node.stash[EVIDENCE_PATH_KEY] = again.evidence_path
        record = dataclasses.replace(again.future.result(), id=scenario.id)
        record.observed = (f"{record.observed} (second run: the first was INCONCLUSIVE: "
                           f"{'; '.join(first.violations or [first.observed])[:300]})")
    request.node.stash[SCENARIO_KEY] = record
    if record.verdict is Verdict.NOT_APPLICABLE:
        pytest.skip(record.observed)                # listed as skipped, and NOT_APPLICABLE in acceptance.json
    assert record.verdict is Verdict.OK, f"{record.verdict}: " + "\n".join(record.violations or [record.observed])

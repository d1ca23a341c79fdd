"""`posrig explore`'s shrink and replay on real benches, on a tiny example: the planted compound-fault bug
(reference till `reset-voids-sale`) behind a schedule with one fault too many. The shrinker, running every
candidate on the bench pool, must keep exactly the two faults that matter; the scenario file written for it must
read back and fail again the same way. (The full search is in tests/benchmarks/bench_explore.py.)"""

import pytest

from harness.acceptance.pool import ScenarioPool
from harness.acceptance.verdict import Verdict
from harness.explore.explorer import result_of
from harness.explore.schedule import Fault, Schedule, dump, invariants_of, replay_scenario
from harness.explore.shrink import shrink
from harness.link.faults import FaultSpec

pytestmark = [pytest.mark.acceptance, pytest.mark.needs_netns,
              pytest.mark.no_oracle("the pool's scenarios are reconciled by run_scenario; the test asserts them")]

LOST = "drop zvt:06 0F terminal->till first"          # the result is lost after the terminal booked
RESET = "rst zvt:05 01 till->terminal first"          # the till's status query is reset
EXTRA = "duplicate 0200 terminal->host first"         # harmless: TCP delivers the request once


def test_shrink_keeps_the_two_faults_and_the_file_replays(rig, tmp_path, monkeypatch):
    monkeypatch.setenv("POSRIG_TILL_PROFILE", "reset-voids-sale")
    scale = rig.timing.scale
    schedule = Schedule((Fault("till-terminal", FaultSpec.parse(LOST), round(40 * scale * 1.5, 3)),
                         Fault("terminal-host", FaultSpec.parse(EXTRA), round(10 * scale * 1.5, 3)),
                         Fault("till-terminal", FaultSpec.parse(RESET), round(5 * scale * 1.5, 3))), "approve")
    pool = ScenarioPool(rig, size=3)
    runs = iter(range(1, 1000))

    def run_batch(batch):
        jobs = [pool.submit(s.scenario(f"t{next(runs)}"), tmp_path / "ev" / str(i)) for i, s in enumerate(batch)]
        return [result_of(j.future.result(180)) for j in jobs]

    try:
        first = run_batch([schedule])[0]
        if first.verdict == "INCONCLUSIVE":
            pytest.skip(f"a fault could not be proven on this machine: {first}")
        assert first.verdict == "FAIL" and "I2" in first.invariants, first
        done = shrink(schedule, {"I2"}, run_batch, max_runs=12)
        assert [f.spec.describe() for f in done.schedule.faults] == [LOST, RESET], done.history
        assert done.history[0] == f"remove {EXTRA}"

        path = tmp_path / "finding.yaml"
        path.write_text(dump(done.schedule, {"till_profile": "reset-voids-sale", "invariants": ["I2"]}))
        replayed = replay_scenario(path)
        assert replayed.faults == done.schedule.scenario().faults and replayed.id == "replay/finding/approve"
        record = pool.submit(replayed, tmp_path / "replay").future.result(180)
        assert record.verdict is Verdict.FAIL and "I2" in invariants_of(record.violations), record.observed
    finally:
        assert not pool.close()

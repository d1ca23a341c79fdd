"""The exploration's parts without a bench: scenario files round-trip and refuse what is wrong, the shrinker
reduces a schedule to the faults that matter, and the explorer turns a failing run into a confirmed finding
(a deterministic fake stands in for the pool: it fails a schedule exactly when a rule says so)."""

from concurrent.futures import Future

import pytest

from harness.acceptance.report.record import ScenarioRecord
from harness.acceptance.verdict import Verdict
from harness.cli import main
from harness.explore.explorer import Explorer, Options
from harness.explore.schedule import Fault, ScenarioFileError, Schedule, dump, load, load_text
from harness.explore.shrink import Result, shrink
from harness.explore.strategies import draw
from harness.link.faults import FaultSpec

I2 = "I2 (no settled payment without its sale receipt unless reversed): payment 000001 holds 4.88"


def fault(text, link="till-terminal", linger=1.0):
    return Fault(link, FaultSpec.parse(text), linger)


def bug(schedule):
    """The planted bug's shape: an approval whose result is lost (a fault on 06 0F) and a reset on the query."""
    lost = any(f.spec.stage == "zvt:06 0F" for f in schedule.faults)
    reset = any(f.spec.action == "rst" and f.spec.stage in ("zvt:05 01", "zvt:06 20") for f in schedule.faults)
    return schedule.outcome == "approve" and lost and reset


def test_drawn_schedules_survive_their_scenario_file():
    for s in draw(seed=3, count=60):
        again, meta = load_text(dump(s, {"till_profile": "correct", "seed": 3}))
        assert again == s and meta["till_profile"] == "correct"
        assert again.scenario().faults == s.scenario().faults


def test_some_drawn_schedules_cut_the_power_at_a_crash_point_with_its_link_fault_first():
    from harness.acceptance.crash import crash_faults
    from harness.acceptance.matrix import CRASH_POINTS

    crashed = [s for s in draw(seed=3, count=60) if s.crash]
    assert 3 <= len(crashed) <= 25 and len({s.crash for s in crashed}) >= 3
    for s in crashed:
        assert s.outcome in CRASH_POINTS[s.crash] and not s.cashier_abort and not s.printer_fault
        needed = [p.spec for p in crash_faults(s.crash, s.outcome, 0.05)]
        assert [f.spec for f in s.faults[:len(needed)]] == needed
        assert s.scenario().crash == s.crash and "power cut " + s.crash in s.describe()


@pytest.mark.parametrize("text, word", [
    ("outcome: approve\n", "posrig_scenario"),
    ("posrig_scenario: 1\noutcome: maybe\n", "outcome"),
    ("posrig_scenario: 1\nfaults: [{link: till-terminal, fault: 'explode 0210'}]\n", "faults[1].fault"),
    ("posrig_scenario: 1\nfaults: [{link: moon, fault: 'drop 0210'}]\n", "faults[1].link"),
    ("posrig_scenario: 1\nfaults: [{link: till-terminal, fault: 'drop 0210', linger: -1}]\n", "linger"),
    ("posrig_scenario: 1\nprinter_fault: {fault: fire, at: before}\n", "printer_fault"),
    ("posrig_scenario: [\n", "not YAML"),
    ("posrig_scenario: 1\ncrash: 'till:lunch'\n", "crash"),
    ("posrig_scenario: 1\noutcome: decline\ncrash: 'till:mid-receipt'\n", "only with outcome approve"),
])
def test_a_wrong_scenario_file_is_one_line_naming_the_field(tmp_path, text, word):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioFileError, match=r"scenario file .*s\.yaml") as err:
        load(path)
    assert word in str(err.value) and "\n" not in str(err.value)


def test_shrink_keeps_the_two_faults_and_simplifies_them():
    big = Schedule((fault("hold zvt:04 FF terminal->till ms=300"), fault("drop zvt:06 0F terminal->till nth=2"),
                    fault("duplicate 0200 terminal->host first copies=2", "terminal-host"),
                    fault("rst zvt:05 01 till->terminal every to=sender")), "approve", "paper_out", "during")
    runs = []

    def fake(batch):
        runs.extend(batch)
        return [Result("FAIL" if bug(s) else "OK", ["I2"]) for s in batch]

    done = shrink(big, {"I2"}, fake)
    assert [f.spec.describe() for f in done.schedule.faults] == [
        "drop zvt:06 0F terminal->till first", "rst zvt:05 01 till->terminal first"]
    assert not done.schedule.printer_fault
    assert done.runs == len(runs) and done.steps == len(done.history) >= 5


def test_shrink_takes_only_candidates_that_break_the_same_invariant():
    two = Schedule((fault("drop zvt:06 0F terminal->till"), fault("rst zvt:05 01 till->terminal")), "approve")

    def other_invariant(batch):       # without both faults something else breaks: not the same finding
        return [Result("FAIL", ["I2"] if bug(s) else ["I5"]) for s in batch]

    assert shrink(two, {"I2"}, other_invariant).schedule == two


def test_shrink_stops_at_its_run_limit():
    big = Schedule(tuple(fault(f"drop zvt:06 0F terminal->till nth={n}") for n in range(1, 5)), "approve")
    done = shrink(big, {"I2"}, lambda batch: [Result("FAIL", ["I2"]) for _ in batch], max_runs=3)
    assert done.runs == 3


def _fake_pool(flaky_after=None):
    calls = []

    def submit(schedule, tag):
        calls.append(tag)
        failing = bug(schedule) and (flaky_after is None or len(calls) <= flaky_after)
        record = ScenarioRecord(id=schedule.scenario(tag).id, verdict=Verdict.FAIL if failing else Verdict.OK,
                                violations=[I2] if failing else [], observed="fake")
        future = Future()
        future.set_result(record)
        return future

    return submit, calls


def test_the_explorer_finds_shrinks_confirms_and_writes_a_replayable_file(tmp_path):
    submit, _ = _fake_pool()
    book = Explorer(submit, Options(budget=6.0, seed=1, meta={"till_profile": "reset-voids-sale"}), tmp_path,
                    width=4).run()
    assert book.findings, f"no finding in {book.explored} schedules"
    found = book.findings[0]
    schedule, meta = load(found.file)
    assert schedule == found.schedule and bug(schedule) and len(schedule.faults) == 2
    assert meta["invariants"] == ["I2"] and meta["till_profile"] == "reset-voids-sale" and meta["seed"] == 1
    assert found.reproduced == "2/2" and book.verdicts["FAIL"] >= 1
    # later failing runs of the same invariant are counted as similar, not shrunk again (one finding per bug)
    assert len(book.findings) == 1 and book.verdicts["FAIL"] == 1 + book.similar


def test_a_finding_that_does_not_reproduce_is_not_kept(tmp_path):
    submit, calls = _fake_pool(flaky_after=0)
    book = Explorer(submit, Options(budget=3.0, seed=1), tmp_path, width=4).run()
    assert not book.findings and not list(tmp_path.glob("*.yaml"))


@pytest.mark.parametrize("argv", [["explore", "--budget", "soon"], ["explore", "--budget", "0m"],
                                  ["explore", "--benches", "many"], ["explore", "--confirm", "0"]])
def test_explore_refuses_bad_input_with_exit_2(argv, capsys):
    assert main(argv) == 2
    assert "posrig explore:" in capsys.readouterr().err


def test_run_passes_scenario_files_and_takes_their_till_profile(tmp_path):
    from argparse import Namespace

    from harness.cli.run import pytest_args, scenario_files

    path = tmp_path / "finding.yaml"
    path.write_text(dump(Schedule((fault("drop zvt:06 0F terminal->till"),)), {"till_profile": "trust-abort"}))
    args = Namespace(rig=None, report=str(tmp_path / "r"), till_profile=None, keyword=None, workers=None,
                     benches="1", shard=None, scenario=[str(path)])
    scenario_files(args)
    assert args.till_profile == "trust-abort"
    argv = pytest_args(args)
    assert f"--scenario-file={path.resolve()}" in argv and "--till-profile=trust-abort" in argv
    path.write_text("posrig_scenario: 1\noutcome: perhaps\n")
    with pytest.raises(ValueError, match="outcome"):
        scenario_files(Namespace(till_profile=None, scenario=[str(path)]))


def test_files_in_the_regressions_folder_become_matrix_rows(tmp_path):
    from harness.explore.schedule import regression_scenarios

    two = Schedule((fault("drop zvt:06 0F terminal->till"), fault("rst zvt:05 01 till->terminal")), "approve")
    (tmp_path / "query-reset-after-lost-completion.yaml").write_text(dump(two, {"invariants": ["I2"]}))
    (tmp_path / "notes.txt").write_text("not a scenario")
    rows = regression_scenarios(tmp_path)
    assert [r.id for r in rows] == ["regression/query-reset-after-lost-completion/approve"]
    assert rows[0].faults == two.scenario().faults and "I2" in rows[0].meaning
    assert regression_scenarios(tmp_path / "missing") == []


def test_shrink_leaves_a_local_minimum_by_removing_and_simplifying_at_once():
    # The reset on the 2nd 06 20 only comes with both drops (two query attempts); the 1st 06 20 needs only one.
    three = Schedule((fault("drop zvt:04 FF terminal->till"), fault("drop zvt:04 0F terminal->till"),
                      fault("rst zvt:06 20 till->terminal nth=2")), "approve")

    def fake(batch):
        def fails(s):
            drops = sum(f.spec.action == "drop" for f in s.faults)
            resets = [f.spec.occurrence for f in s.faults if f.spec.action == "rst"]
            return (resets == [2] and drops == 2) or (resets == [1] and drops == 1)
        return [Result("FAIL" if fails(s) else "OK", ["I2"]) for s in batch]

    done = shrink(three, {"I2"}, fake)
    assert [f.spec.describe() for f in done.schedule.faults] == [
        "drop zvt:04 0F terminal->till first", "rst zvt:06 20 till->terminal first"], done.history
    assert ";" in done.history[0]

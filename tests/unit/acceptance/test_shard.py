"""`--shard I/N`: every machine computes the same partition, every scenario lands in exactly one shard, the shards
are balanced by the measured durations, and a bad value is one line naming what is expected."""

import random

import pytest

from harness.acceptance import shard
from harness.acceptance.matrix import scenarios
from harness.cli import main


@pytest.fixture(scope="module")
def shipped():
    """The durations shipped in the package, and the matrix they time."""
    durations = shard.load_durations()
    return durations, [s.id for s in scenarios(0.05)]


def test_the_shipped_durations_cover_the_matrix(shipped):
    """New scenarios count as the median until timed; most of the matrix must be timed for the balance to hold."""
    durations, ids = shipped
    untimed = sorted(set(ids) - set(durations))
    refresh = "posrig report durations REPORT -o harness/acceptance/suite/durations.json"
    assert len(untimed) <= len(ids) // 4, f"{len(untimed)} not timed (e.g. {untimed[:3]}): refresh: {refresh}"
    assert durations and all(v >= 0 for v in durations.values())


@pytest.mark.parametrize("total", [1, 2, 3, 5, 8])
def test_every_scenario_is_in_exactly_one_shard(shipped, total):
    _, ids = shipped
    parts = shard.partition(ids, total, shard.load_durations())
    assert len(parts) == total
    flat = [k for p in parts for k in p]
    assert sorted(flat) == sorted(ids) and len(flat) == len(set(flat))


def test_the_partition_does_not_depend_on_the_order_of_collection(shipped):
    durations, ids = shipped
    shuffled = ids[:]
    random.Random(7).shuffle(shuffled)
    assert shard.partition(shuffled, 4, durations) == shard.partition(ids, 4, durations)
    assert shard.partition(ids, 4, dict(reversed(list(durations.items())))) == shard.partition(ids, 4, durations)


@pytest.mark.parametrize("total", [2, 3, 4, 6])
def test_shards_are_balanced_within_one_scenario(shipped, total):
    """Greedy longest-first: the heaviest shard exceeds the lightest by at most the longest scenario."""
    durations, ids = shipped
    parts = shard.partition(ids, total, durations)
    weight = shard.weights(ids, durations)
    loads = [sum(weight[k] for k in p) for p in parts]
    assert max(loads) - min(loads) <= max(weight.values()) + 1e-9, loads
    assert max(loads) <= sum(loads) / total * 1.2, loads          # on the real matrix: within 20% of the ideal


def test_balance_is_by_time_not_by_count():
    durations = {"long": 10.0, "a": 1.0, "b": 1.0, "c": 1.0, "d": 1.0}
    assert shard.partition(durations, 2, durations) == [["long"], ["a", "b", "c", "d"]]


def test_an_unknown_scenario_counts_as_the_median():
    durations = {"a": 1.0, "b": 5.0, "c": 9.0}
    assert shard.weights(["new", "a"], durations) == {"new": 5.0, "a": 1.0}
    assert shard.weights(["x"], {}) == {"x": shard.DEFAULT_SECONDS}
    parts = shard.partition(["a", "b", "c", "new"], 2, durations)
    assert parts == [["a", "c"], ["b", "new"]]          # as 1 s (say) "new" would have joined "a" and "b"


def test_more_shards_than_scenarios_leaves_some_empty():
    assert shard.partition(["a", "b"], 4, {}) == [["a"], ["b"], [], []]


def test_keys_ignore_where_the_suite_is_installed():
    a = shard.key_for("harness/acceptance/suite/test_bench_network.py::test_link[till-terminal]")
    b = shard.key_for("../venv/lib/python3.11/site-packages/harness/acceptance/suite/test_bench_network.py"
                      "::test_link[till-terminal]")
    assert a == b == "test_bench_network.py::test_link[till-terminal]"
    assert shard.key_of_row({"id": "terminal-host/0210-lost/approve", "nodeid": "x.py::test_scenario[...]"}) == \
        "terminal-host/0210-lost/approve"


def test_durations_come_from_the_rows_that_ran():
    docs = [{"scenarios": [{"id": "a", "elapsed": 2.0}, {"id": "b", "elapsed": 0.0, "status": "skipped"}]},
            {"scenarios": [{"id": "a", "elapsed": 4.0}]}]
    assert shard.durations_from_reports(docs) == {"a": 3.0}


@pytest.mark.parametrize("value, says", [
    ("0/3", "shard 0 of 3 does not exist"), ("4/3", "shard 4 of 3 does not exist"), ("x", "not I/N"),
    ("3", "not I/N"), ("1/0", "0 shards"), ("a/b", "not I/N")])
def test_a_bad_shard_is_one_line_and_exit_2(capsys, value, says, tmp_path):
    with pytest.raises(shard.ShardError, match=says):
        shard.parse_shard(value)
    assert main(["run", "--shard", value, "--report", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0] and err[0].startswith(f"posrig run: --shard {value}:"), err
    assert not (tmp_path / "r").exists()


def test_good_shards_parse():
    assert [shard.parse_shard(v) for v in ("1/1", "3/3", " 2/5 ")] == [(1, 1), (3, 3), (2, 5)]

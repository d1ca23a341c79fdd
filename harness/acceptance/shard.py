"""Sharded runs: which 1/N of the selected scenarios shard I runs (`posrig run --shard I/N`).

Every machine computes the same partition from the same inputs: the selection (after `-k`), and the measured
durations shipped in the package (`suite/durations.json`; a scenario it does not know counts as the median).
The assignment is greedy longest-first: scenarios from the longest down (ties by key) each go to the shard with
the least time so far (ties to the lowest index), so no shard runs longer than the lightest one by more than one
scenario's duration.

>>> partition(["a", "b", "c", "d"], 2, {"a": 4.0, "b": 3.0, "c": 2.0, "d": 1.0})
[['a', 'd'], ['b', 'c']]
>>> parse_shard("2/3")
(2, 3)
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

DURATIONS_FORMAT = "posrig-durations/1"
DEFAULT_SECONDS = 1.0                 # the weight of every scenario when no duration is known at all


class ShardError(ValueError):
    """A --shard value that names no shard."""


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' -> (I, N), 1 <= I <= N; anything else raises ShardError with one line saying what is expected.

    >>> parse_shard("4/3")
    Traceback (most recent call last):
    ...
    harness.acceptance.shard.ShardError: --shard 4/3: shard 4 of 3 does not exist; give I/N with 1 <= I <= N, e.g. 1/3
    """
    i, sep, n = str(text).strip().partition("/")
    try:
        index, total = int(i), int(n)
    except ValueError:
        index = total = None
    if not sep or index is None:
        raise ShardError(f"--shard {text}: not I/N; give the shard's number and the number of shards, e.g. 2/3")
    if total < 1:
        raise ShardError(f"--shard {text}: {total} shards; give at least 1, e.g. 1/1")
    if not 1 <= index <= total:
        raise ShardError(f"--shard {text}: shard {index} of {total} does not exist; "
                         f"give I/N with 1 <= I <= N, e.g. 1/{total}")
    return index, total


# -- what a scenario is called across machines -----------------------------------------------------------------
def key_for(nodeid: str, scenario_id: str | None = None) -> str:
    """The name a test is partitioned and timed by: a matrix scenario's id, else 'file.py::test[param]'
    (no folders: the suite's place differs between machines and installations).

    >>> key_for("../venv/lib/harness/acceptance/suite/test_bench_network.py::test_link[till-terminal]")
    'test_bench_network.py::test_link[till-terminal]'
    >>> key_for("harness/acceptance/suite/test_matrix.py::test_scenario[a/b/c]", "a/b/c")
    'a/b/c'
    """
    if scenario_id:
        return scenario_id
    path, sep, name = nodeid.partition("::")
    return f"{Path(path).name}{sep}{name}" if sep else nodeid


def key_of_row(row: dict[str, Any]) -> str:
    """The key of an acceptance.json row: matrix rows are named by their scenario id, other rows by node id."""
    rid = str(row.get("id", ""))
    return key_for(rid) if "::" in rid else rid


# -- durations ---------------------------------------------------------------------------------------------------
def durations_file() -> Path:
    return Path(str(resources.files("harness.acceptance.suite") / "durations.json"))


def load_durations(path: Path | None = None) -> dict[str, float]:
    """Seconds by key from a durations file (the shipped one by default); {} when there is none."""
    path = durations_file() if path is None else Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return {str(k): float(v) for k, v in (doc.get("durations") or {}).items()}


def durations_from_reports(docs: Iterable[dict[str, Any]]) -> dict[str, float]:
    """Mean measured seconds per key over acceptance.json documents; rows that did not run are left out."""
    seen: dict[str, list[float]] = {}
    for doc in docs:
        for row in doc.get("scenarios") or []:
            if row.get("status", "ran") == "ran":
                seen.setdefault(key_of_row(row), []).append(float(row.get("elapsed") or 0.0))
    return {k: round(sum(v) / len(v), 3) for k, v in sorted(seen.items())}


def durations_doc(durations: dict[str, float], sources: list[str]) -> dict[str, Any]:
    return {"format": DURATIONS_FORMAT, "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "sources": sources, "unit": "seconds", "durations": dict(sorted(durations.items()))}


def weights(keys: Iterable[str], durations: dict[str, float]) -> dict[str, float]:
    """Each key's expected seconds; unknown keys get the median of the known ones.

    >>> weights(["a", "new"], {"a": 1.0, "b": 3.0, "c": 2.0})
    {'a': 1.0, 'new': 2.0}
    """
    median = statistics.median(durations.values()) if durations else DEFAULT_SECONDS
    return {k: float(durations.get(k, median)) for k in keys}


def partition(keys: Iterable[str], total: int, durations: dict[str, float]) -> list[list[str]]:
    """Split the keys into `total` shards, greedy longest-first; each shard's keys sorted."""
    weight = weights(sorted(set(keys)), durations)
    loads = [0.0] * total
    shards: list[list[str]] = [[] for _ in range(total)]
    for key in sorted(weight, key=lambda k: (-weight[k], k)):
        lightest = min(range(total), key=lambda i: (loads[i], i))
        shards[lightest].append(key)
        loads[lightest] += weight[key]
    return [sorted(s) for s in shards]


def selection_sha256(keys: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()


def shard_block(index: int, total: int, nodeids: dict[str, str], options: dict[str, Any],
                durations: dict[str, float], durations_sha256: str | None) -> dict[str, Any]:
    """What acceptance.json records of a shard: which one, the whole selection and every shard's part of it,
    so that `posrig report merge` can tell what is missing."""
    keys = sorted(nodeids)
    shards = partition(keys, total, durations)
    weight = weights(keys, durations)
    return {"index": index, "total": total,
            "selection": {"count": len(keys), "sha256": selection_sha256(keys),
                          "nodeids": dict(sorted(nodeids.items()))},
            "options": options,
            "durations_sha256": durations_sha256,
            "shards": shards,
            "expected_seconds": [round(sum(weight[k] for k in s), 3) for s in shards]}

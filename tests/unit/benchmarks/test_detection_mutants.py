"""The mutator behind tests/benchmarks/bench_detection.py: valid, different code at decision points only, stable ids,
a deterministic sample, and the run classification. No processes: the mutated modules are executed in memory."""

from __future__ import annotations

import ast
import re
import sys
import types

import pytest

from tests.benchmarks import bench_detection as bench
from tests.benchmarks import detection_mutants as dm


@pytest.fixture(scope="module")
def everything() -> list[dm.Mutant]:
    return dm.mutants()


def line_of(file: str, text: str, after: str = "") -> int:
    """The number of the first line of `file` containing `text` (after the first line containing `after`)."""
    lines = (dm.TILL / file).read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if after in line) if after else 0
    return next(i for i, line in enumerate(lines[start:], start + 1) if text in line)


def load(mutant: dm.Mutant) -> types.ModuleType:
    """The mutated module, executed in memory under its real name's package."""
    module = types.ModuleType(f"harness.reference_till._mutant_{mutant.file[:-3]}")
    module.__file__ = str(dm.TILL / mutant.file)
    sys.modules[module.__name__] = module                   # dataclasses look their module up
    try:
        exec(compile(dm.mutated_source(mutant), mutant.file, "exec"), module.__dict__)
    finally:
        del sys.modules[module.__name__]
    return module


def find(everything, file: str, line: int, operator: str) -> dm.Mutant:
    return next(m for m in everything if m.id == f"{file}:{line} {operator}")


def test_every_mutant_compiles_and_changes_the_code(everything):
    assert len(everything) >= 40
    originals = {f: ast.unparse(ast.parse((dm.TILL / f).read_text())) for f in dm.SCOPES}
    for m in everything:
        source = dm.mutated_source(m)
        compile(source, m.file, "exec")
        assert source.strip() != originals[m.file].strip(), m.id


def test_ids_are_unique_stable_and_name_file_line_and_operator(everything):
    ids = [m.id for m in everything]
    assert len(set(ids)) == len(ids)
    assert ids == [m.id for m in dm.mutants()]
    for m in everything:
        assert re.fullmatch(r"[a-z_]+\.py:\d+ [a-z-]+(@\d)?(#\d+)?", m.id), m.id
        assert m.original == (dm.TILL / m.file).read_text().splitlines()[m.line - 1].strip()


def test_every_operator_family_has_points(everything):
    families = {m.operator.split("@")[0] for m in everything}
    assert {"flip-if", "drop-not", "flip-compare", "and-or", "drop-call", "swap-status", "flip-return",
            "print-early", "print-late", "drop-except", "flip-ifexp"} <= families


def test_only_decision_code_is_mutated(everything):
    for m in everything:
        if m.file == "profiles.py":
            assert m.function.startswith("Correct."), m.id          # not the seeded bugs' own code
        assert not m.original.startswith(("log.", '"""')), m.id        # logging, docstrings
        assert "message=" not in m.mutated, m.id                      # what the till says is not mutated
    functions = {m.function for m in everything}
    assert "Register.identity" not in functions and "Register.outcome" not in functions
    assert not any(m.function.startswith(("TrustAbort", "ResetVoidsSale", "PrintOnTimeout")) for m in everything)
    debug = line_of("register.py", 'log.info("owed receipt')
    assert not any(m.file == "register.py" and m.line == debug for m in everything)


def test_flip_return_makes_a_failed_query_decide_the_sale(everything):
    m = find(everything, "profiles.py", line_of("profiles.py", "return False", after="def on_query_failed"),
             "flip-return")
    assert load(m).Correct.on_query_failed(None, None, None, "") is True


def test_flip_compare_changes_what_counts_as_approved(everything):
    m = find(everything, "ecr_client.py", line_of("ecr_client.py", 'and self.answered == "book"'), "flip-compare")
    mutated, original = load(m).PaymentResult, __import__("harness.reference_till.ecr_client",
                                                          fromlist=["x"]).PaymentResult
    booked = dict(completed=True, status_info={"result_code": 0}, answered="book")
    assert original(**booked).approved and not mutated(**booked).approved


def test_swap_status_records_a_cancelled_sale_as_failed(everything):
    line = line_of("profiles.py", 'self.till.finish(run, "cancelled", info')
    m = find(everything, "profiles.py", line, "swap-status")
    assert m.mutated == "'failed'"
    assert "self.till.finish(run, 'failed', info, terminal_result=result.abort_code" in dm.mutated_source(m)


def test_print_late_pulses_the_drawer_after_the_cut(everything):
    m = find(everything, "receipt.py", line_of("receipt.py", "if kick_drawer:"), "print-late")
    fn = next(n for n in ast.walk(ast.parse(dm.mutated_source(m)))
              if isinstance(n, ast.FunctionDef) and n.name == "print" and "kick_drawer" in ast.unparse(n.args))
    body = ast.unparse(fn)
    assert body.index("p.cut()") < body.index("p.cashdraw(2)")


def test_drop_call_and_drop_except(everything):
    m = find(everything, "profiles.py", line_of("profiles.py", "self.till.ecr.abort()"), "drop-call")
    source = dm.mutated_source(m)
    lost = source[source.index("def on_result_lost"):source.index("def resolve_by_query")]
    assert "ecr.abort()" not in lost and "pass" in lost
    m = find(everything, "profiles.py", line_of("profiles.py", "try:", after="def print_sale_receipt"),
             "drop-except")
    source = dm.mutated_source(m)
    receipt = source[source.index("def print_sale_receipt"):]
    assert "except PrintError" not in receipt.split("class PrintOnTimeout")[0]


def test_sample_is_seeded_and_keeps_the_stable_order(everything):
    a, b = dm.select(everything, 40, 1), dm.select(everything, 40, 1)
    assert [m.id for m in a] == [m.id for m in b] and len(a) == 40
    assert [m.id for m in a] != [m.id for m in dm.select(everything, 40, 2)]
    order = [m.id for m in everything]
    assert [order.index(m.id) for m in a] == sorted(order.index(m.id) for m in a)
    assert dm.select(everything, None, 1) == everything


def test_a_changed_file_is_refused(tmp_path, everything):
    m = next(x for x in everything if x.file == "journal.py")
    (tmp_path / "journal.py").write_text("\n\n" + (dm.TILL / "journal.py").read_text())
    with pytest.raises(dm.MutantError, match="changed since"):
        dm.mutated_source(m, root=tmp_path)


def test_sanity_mutant_records_every_settled_payment_as_failed():
    source = dm.sanity_source()
    compile(source, "register.py", "exec")
    settle = source[source.index("def settle_paid"):source.index("def print_receipt")]
    assert "'failed'" in settle and "print_sale_receipt" not in settle


def test_classify_a_run():
    row = {"id": "terminal-host/0210-lost/approve", "verdict": "FAIL",
           "violations": ["I2 (a payment taken without a receipt)", "I7 (...)"]}
    unstarted = {"id": "w", "verdict": "ERROR", "status": "not started"}      # left by --maxfail, not a crash
    got = bench.classify({"summary": {"FAIL": 1}, "scenarios": [unstarted, {"id": "x", "verdict": "OK"}, row]}, 1)
    assert got["result"] == "killed-matrix" and got["scenario"] == row["id"] and got["invariants"] == ["I2", "I7"]
    got = bench.classify({"summary": {}, "scenarios": [{"id": "y", "verdict": "ERROR", "observed": "till died"}]}, 1)
    assert got["result"] == "killed-crash" and "till died" in got["why"]
    assert bench.classify(None, 2, "preflight: bad profile")["result"] == "killed-crash"
    assert bench.classify({"summary": {}, "scenarios": [unstarted, {"id": "z", "verdict": "INCONCLUSIVE"}]},
                          1)["result"] \
        == "inconclusive"
    assert bench.classify({"summary": {"passed": True}, "scenarios": [{"id": "a", "verdict": "OK"}]}, 0)["result"] \
        == "survived"


def test_score_counts_equivalents_out():
    rows = [{"result": "killed-matrix"}, {"result": "killed-explore"}, {"result": "equivalent"},
            {"result": "unexplained"}, {"result": "killed-crash"}]
    s = bench.score(rows)
    assert (s["killed"], s["equivalent"], s["score"]) == (3, 1, 0.75)


def test_survivors_are_explained_by_the_equivalents_file():
    rows = [{"id": "a", "result": "survived"}, {"id": "b", "result": "survived"}, {"id": "c", "result": "survived"},
            {"id": "d", "result": "killed-matrix"}]
    bench.explain(rows, {"a": "only a log line changes", "b": "gap: the reprinter is never needed", "d": "x"})
    assert [r["result"] for r in rows] == ["equivalent", "gap", "unexplained", "killed-matrix"]
    assert "remove it" in rows[3]["note"]
    s = bench.score(rows)
    assert (s["killed"], s["equivalent"], s["score"]) == (1, 1, round(1 / 3, 3))


def _scripted(monkeypatch, runs, alone):
    """judge() with matrix runs and alone-verdicts played from lists instead of posrig runs."""
    runs, calls = list(runs), []
    monkeypatch.setattr(bench, "matrix", lambda *a, **k: dict(runs.pop(0)))
    monkeypatch.setattr(bench, "confirm", lambda tree, scratch, row, args: calls.append(row) or alone[row])
    return calls


def _fail(row):
    return {"result": "killed-matrix", "scenario": row, "invariants": ["I7"]}


def test_judge_kills_on_a_row_that_fails_again_alone(monkeypatch):
    calls = _scripted(monkeypatch, [_fail("a"), _fail("b")], {"a": "OK", "b": "FAIL"})
    got = bench.judge(None, None, None, None)
    assert (got["result"], got["scenario"], got["runs"], calls) == ("killed-matrix", "b", 2, ["a", "b"])


def test_judge_kills_a_mutant_failing_every_run_but_never_alone(monkeypatch):
    _scripted(monkeypatch, [_fail("a"), _fail("b"), _fail("c")], {"a": "OK", "b": "OK", "c": "OK"})
    got = bench.judge(None, None, None, None)
    assert got["result"] == "killed-matrix" and got["intermittent"] and got["unconfirmed"] == ["a", "b", "c"]
    assert "FAIL in all 3 runs" in bench.outcome_text(got)


def test_judge_lets_a_mutant_survive_when_a_run_is_clean_or_only_load(monkeypatch):
    _scripted(monkeypatch, [_fail("a"), _fail("b"), {"result": "survived"}], {"a": "OK", "b": "OK"})
    assert bench.judge(None, None, None, None)["result"] == "survived"
    doubt = {"result": "inconclusive", "scenario": "x", "inconclusive": ["x"]}
    _scripted(monkeypatch, [_fail("a"), doubt, _fail("b")], {"a": "OK", "x": "OK", "b": "OK"})
    got = bench.judge(None, None, None, None)
    assert got["result"] == "survived" and got["unconfirmed"] == ["a", "b", "x"]


def test_judge_an_inconclusive_row_again_alone_is_not_signed_off(monkeypatch):
    doubt = {"result": "inconclusive", "scenario": "x", "inconclusive": ["x"]}
    _scripted(monkeypatch, [doubt], {"x": "INCONCLUSIVE"})
    got = bench.judge(None, None, None, None)
    assert (got["result"], got["scenario"]) == ("killed-signoff", "x")

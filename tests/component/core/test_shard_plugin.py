"""`--shard I/N` in a pytest run of its own (pytester; the posrig plugin's session start may run `ip`): the
shards of a test repository run every test exactly once, report the others as deselected, and record the
whole selection in acceptance.json, also when two files share a name."""

import json

TESTS = """
import pytest

@pytest.mark.parametrize("n", range(4))
def test_sale(n):
    pass

def test_void():
    pass
"""


def _run(pytester, shard: str):
    out = pytester.path / f"acceptance-{shard.replace('/', '-')}.json"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", "-rA", f"--shard={shard}",
                                           f"--acceptance-json={out}", "-k", "not test_void or a")
    return result, json.loads(out.read_text())


def test_the_shards_run_every_test_once_and_deselect_the_rest(pytester):
    for folder in ("a", "b"):                     # tests/a/test_till.py and tests/b/test_till.py: same short key
        (pytester.path / "tests" / folder).mkdir(parents=True)
        (pytester.path / "tests" / folder / "__init__.py").write_text("")
        (pytester.path / "tests" / folder / "test_till.py").write_text(TESTS)
    ran, blocks = [], []
    for shard in ("1/3", "2/3", "3/3"):
        result, doc = _run(pytester, shard)
        out = result.stdout.str()
        passed = [line.split()[1] for line in out.splitlines() if line.startswith("PASSED ")]
        assert result.ret == 0, out
        assert f"{len(passed)} passed, {10 - len(passed)} deselected" in out, out     # 1 by -k
        ran.append(set(passed))
        blocks.append(doc["shard"])
    every = {f"tests/{f}/test_till.py::test_sale[{n}]" for f in "ab" for n in range(4)} | \
        {"tests/a/test_till.py::test_void"}                          # -k kept a's void only
    assert set().union(*ran) == every and sum(map(len, ran)) == len(every) and all(ran)
    assert {b["selection"]["sha256"] for b in blocks} == {blocks[0]["selection"]["sha256"]}
    assert [b["index"] for b in blocks] == [1, 2, 3] and blocks[0]["shards"] == blocks[2]["shards"]
    keys = set(blocks[0]["selection"]["nodeids"])
    assert "tests/a/test_till.py::test_sale[0]" in keys and "test_till.py::test_void" in keys    # full id if shared
    assert blocks[0]["options"]["keyword"] == "not test_void or a"


def test_a_bad_shard_is_a_usage_error(pytester):
    pytester.makepyfile(TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--shard=4/3")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*--shard 4/3: shard 4 of 3 does not exist; give I/N with 1 <= I <= N*"])

"""The progress plugin in a pytest run of its own (pytester, in this process; the posrig plugin's session start may
run `ip`): plain pytest keeps its dots, `--posrig-progress` gives one log line per test when the output is not a
terminal."""

import re

from tests.support import IN_PROCESS

USER_TESTS = """
import pytest

def test_one():
    pass

def test_two():
    assert 1 == 2, "two is not one"

@pytest.mark.skip(reason="not today")
def test_three():
    pass
"""


def test_plain_pytest_keeps_its_dots(pytester):
    pytester.makepyfile(USER_TESTS)
    result = pytester.runpytest_inprocess(*IN_PROCESS, "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*test_plain_pytest_keeps_its_dots.py .Fs*"])
    assert "fail 1" not in result.stdout.str() and not re.search(r"^\[\d/3\]", result.stdout.str(), re.M)


def test_with_posrig_progress_each_test_is_one_log_line_and_no_dots(pytester):
    pytester.makepyfile(USER_TESTS)
    result = pytester.runpytest_inprocess(*IN_PROCESS, "-p", "no:cacheprovider", "--posrig-progress", "-q", "-rA",
                                          "-o", "console_output_style=classic")      # as `posrig run` passes it
    out = result.stdout.str()
    lines = [line for line in out.splitlines() if line.startswith("[")]
    assert len(lines) == 3, out
    assert re.fullmatch(r"\[1/3\] OK    test_one  \d+\.\d s  \(fail 0, [\d.]+/min, ETA \d+:\d\d\)", lines[0]), lines
    assert re.fullmatch(r"\[2/3\] FAIL  test_two  .*\(fail 1, .*", lines[1]), lines
    assert re.fullmatch(r"\[3/3\] SKIP  test_three  .*\(fail 1, skipped 1, .*ETA 0:00\)", lines[2]), lines
    assert ".F" not in out and "Fs" not in out and "%]" not in out          # pytest's letters are gone
    result.stdout.fnmatch_lines(["*AssertionError: two is not one",           # its failures and summary stay
                                 "FAILED *test_two*",
                                 "*1 failed, 1 passed, 1 skipped*"])

"""The fixture example in README.md, taken from the README itself and run as a test repository of its own (pytester,
in a subprocess, with the installed plugin): it asserts nothing by hand and passes against the correct till."""

import re

import pytest

from tests.support import ROOT

pytestmark = [pytest.mark.acceptance, pytest.mark.needs_netns]


def readme_example() -> str:
    """The README's python block that holds the fixture example."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    [example] = [b for b in blocks if "def test_no_receipt_when_the_approval_is_lost" in b]
    return example


def test_readme_example_leaves_the_asserting_to_the_oracle():
    example = readme_example()
    assert "assert" not in example
    assert "@pytest.mark.expect(" in example and example.count("till.sell(") == 3


def test_readme_example_passes_in_a_test_repository_of_its_own(pytester):
    pytester.makepyfile(test_readme=readme_example())
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--till-profile", "correct", "-rA",
                                           timeout=300)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*posrig acceptance: OK 2*"])           # both reconciled at their end

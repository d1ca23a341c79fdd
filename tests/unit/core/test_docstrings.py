"""Every example in posrig's docstrings runs (or says why not, with +SKIP): a runnable example beats a paragraph."""

import doctest
import importlib
import pkgutil

import pytest

import harness

MODULES = sorted(m.name for m in pkgutil.walk_packages(harness.__path__, "harness.")
                 if ".suite" not in m.name and not m.name.endswith("__main__"))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                      # an example that writes a file writes it here
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} docstring examples failed"

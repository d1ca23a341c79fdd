"""The unit tier: no child processes, no network namespaces, no root. Enforced, not hoped for.

Every test here runs with process creation refused (`subprocess`, `os.fork`, `os.posix_spawn`): a test that
needs a child process or a namespace (whose holder is a process) belongs in tests/component or tests/netns.
Threads, real sockets on loopback, ptys and SQLite files are fine.
"""

from __future__ import annotations

import os
import subprocess

import pytest


class ProcessInUnitTier(RuntimeError):
    """A unit test tried to start a process: move it to tests/component (processes) or tests/netns."""


def _refuse(*args, **kwargs):
    raise ProcessInUnitTier("the unit tier starts no processes (tests/unit/conftest.py); move this test to "
                            "tests/component or tests/netns")


@pytest.fixture(autouse=True)
def no_child_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subprocess.Popen, "_execute_child", _refuse)
    monkeypatch.setattr(os, "fork", _refuse)
    monkeypatch.setattr(os, "posix_spawn", _refuse)
    monkeypatch.setattr(os, "posix_spawnp", _refuse)


@pytest.fixture(scope="session")
def topology():
    """The unit tier builds no namespaces (a session fixture would slip past the per-test guard above)."""
    raise ProcessInUnitTier("the unit tier builds no network namespaces: move this test to tests/netns")

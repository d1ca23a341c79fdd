"""Root conftest: thin on purpose. posrig's fixtures come from its pytest11 plugin (fixtures/plugin.py)."""

import os

pytest_plugins = ("pytester",)

WORKERS_PER_CORE = 2


def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto` (what `./bootstrap test` runs) for this suite: two workers per core, not one. Most of its tests
    wait, on scaled protocol timers, child processes and sockets, rather than compute (a serial run of the
    component till and unit terminal tests used 18 CPU-s in 78 s), so one worker per core leaves the cores idle
    more than half the time. $PYTEST_XDIST_AUTO_NUM_WORKERS still decides when set, and `-n N` as ever."""
    given = os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS")
    if given and given.isdigit() and int(given) > 0:
        return int(given)
    return WORKERS_PER_CORE * len(os.sched_getaffinity(0))

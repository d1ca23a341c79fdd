"""How many examples a fuzz test runs: its own count x POSRIG_FUZZ_SCALE (e.g. 20 for a longer local run)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

SCALE = float(os.environ.get("POSRIG_FUZZ_SCALE", "1"))


def fuzz(examples: int) -> settings:
    """Settings of one fuzz test: `examples` x POSRIG_FUZZ_SCALE, no per-example deadline (CI machines are
    shared), nothing written to the example database."""
    return settings(max_examples=max(1, int(examples * SCALE)), deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                           HealthCheck.filter_too_much, HealthCheck.data_too_large])

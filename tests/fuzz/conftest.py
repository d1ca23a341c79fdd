"""The fuzz tier: hypothesis-driven garbage into the ESC/POS decoder, the ISO 8583 host, the ZVT terminal's ECR side
and the link's framing, bounded to seconds (the whole tier well under 30 s). In-process cores first
(`tests/fuzz/targets.py`, shared with `tests/benchmarks/bench_fuzz.py` for long runs); one test per emulator
sends garbage over a real socket, then a valid request that must be answered.

POSRIG_FUZZ_SCALE multiplies every test's example count (e.g. 20 for a longer local run).
"""

from __future__ import annotations

import logging

import pytest

from tests.support.ecr_client import ecr, make_terminal, terminal  # noqa: F401
from tests.support.iso_client import make_host, srv  # noqa: F401
from tests.support.scripted_host import acquirer, dead_host  # noqa: F401


@pytest.fixture(autouse=True)
def quiet_devices():
    """The devices log every malformed input they survive: thousands of lines here, none of them news."""
    logging.disable(logging.WARNING)
    yield
    logging.disable(logging.NOTSET)

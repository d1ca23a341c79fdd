"""How many benches a worker runs at once: from the machine's cores and load, or the `--benches` option."""

import pytest

from harness.acceptance.pool import benches_per_worker, parse_benches


def test_six_benches_per_idle_core_shared_by_the_workers():
    assert benches_per_worker(2, cores=2, load=0.0) == 6
    assert benches_per_worker(3, cores=2, load=0.0) == 4           # rounded up: 12 benches in all
    assert benches_per_worker(1, cores=2, load=0.0) == 8           # capped: more only adds contention
    assert benches_per_worker(1, cores=64, load=0.0) == 8


def test_a_loaded_machine_gets_fewer_benches_never_none():
    assert benches_per_worker(2, cores=2, load=2.0) == 1
    assert benches_per_worker(2, cores=2, load=1.0) == 3
    assert benches_per_worker(8, cores=2, load=30.0) == 1


def test_the_option_is_auto_or_a_whole_number():
    assert parse_benches("3", 2) == 3
    assert 1 <= parse_benches("auto", 2) <= 8             # sized from this machine now
    with pytest.raises(ValueError, match="--benches 'many': expected 'auto' or a whole number"):
        parse_benches("many", 2)
    with pytest.raises(ValueError, match="at least one bench"):
        parse_benches("0", 2)

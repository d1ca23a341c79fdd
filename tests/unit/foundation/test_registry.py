"""The rig picks drivers by (kind, driver) from a registry; unknown ones fail saying what exists."""

import pytest

from harness import registry
from harness.core.bench import Bench, BenchError
from harness.core.device import Device
from harness.core.evidence import Evidence
from harness.core.rig import parse_rig

RIG = """
name: t
devices:
  a: {kind: host, mode: emulated, driver: probe-a, transport: tcp}
  b: {kind: terminal, mode: emulated, driver: probe-b, transport: tcp}
"""


class _Recorder(Device):
    log: list = []

    def start(self):
        self.log.append(("start", self.name))

    def close(self):
        self.log.append(("close", self.name))


@registry.register("host", "probe-a")
class _A(_Recorder):
    kind = "host"


@registry.register("terminal", "probe-b")
class _B(_Recorder):
    kind = "terminal"
    needs = ("host",)


def test_declared_drivers_cover_every_kind():
    kinds = {k for k, _ in registry.available()}
    assert {"printer", "terminal", "host", "link", "till"} <= kinds


def test_unknown_driver_lists_registered_ones():
    with pytest.raises(registry.DriverError, match=r"no printer driver named 'laser'; registered printer drivers: "):
        registry.lookup("printer", "laser")


def test_bench_starts_needs_first_and_closes_in_reverse(tmp_path):
    _Recorder.log.clear()
    bench = Bench(parse_rig(RIG), Evidence(tmp_path))
    term = bench.terminal
    assert isinstance(term, _B)
    assert _Recorder.log == [("start", "a"), ("start", "b")]
    assert bench.terminal is term                      # one instance per scenario
    assert bench.close() == []
    assert _Recorder.log[2:] == [("close", "b"), ("close", "a")]


def test_bench_unknown_device_names_what_exists(tmp_path):
    bench = Bench(parse_rig(RIG), Evidence(tmp_path))
    with pytest.raises(BenchError, match="has no device or link named 'zz'; it has: a, b"):
        bench.device("zz")
    with pytest.raises(BenchError, match="has no printer"):
        _ = bench.printer

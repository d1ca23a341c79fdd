"""The rig picks drivers by (kind, driver) from a registry; unknown ones fail saying what exists."""

import pytest

from harness.core import registry
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
    bindings = {"host": "host"}


def test_declared_drivers_cover_every_kind():
    kinds = {k for k, _ in registry.available()}
    assert {"printer", "terminal", "host", "link", "till"} <= kinds


def test_unknown_driver_lists_registered_ones():
    with pytest.raises(registry.DriverError, match=r"no printer driver named 'laser'; registered printer drivers: "):
        registry.lookup("printer", "laser")


def test_bench_starts_bindings_first_hands_them_over_and_closes_in_reverse(tmp_path):
    _Recorder.log.clear()
    bench = Bench(parse_rig(RIG), Evidence(tmp_path))
    term = bench.terminal
    assert isinstance(term, _B)
    assert _Recorder.log == [("start", "a"), ("start", "b")]
    assert term.host is bench.host                     # bound at construction, no look-up through the bench
    assert bench.terminal is term                      # one instance per scenario
    assert bench.close() == []
    assert _Recorder.log[2:] == [("close", "b"), ("close", "a")]


def test_bench_unknown_device_names_what_exists(tmp_path):
    bench = Bench(parse_rig(RIG), Evidence(tmp_path))
    with pytest.raises(BenchError, match="has no device or link named 'zz'; it has: a, b"):
        bench.device("zz")
    with pytest.raises(BenchError, match="has no printer"):
        _ = bench.printer


@registry.register("terminal", "probe-c")
class _C(_Recorder):
    kind = "terminal"
    bindings = {"host": "host?"}


def test_a_driver_is_built_with_its_bindings_or_told_what_is_missing(tmp_path):
    from harness.core.device import BindingError, DeviceContext
    from harness.core.rig import Timing

    spec = parse_rig(RIG).devices["b"]
    ctx = DeviceContext(rig=None, evidence=Evidence(tmp_path), timing=Timing(1.0))
    with pytest.raises(BindingError, match="needs its host"):
        _B(spec, ctx)
    with pytest.raises(BindingError, match="does not bind to"):
        _B(spec, ctx, host=object(), printer=object())
    assert _C(spec, ctx).host is None                  # optional: absent is fine


def test_bench_says_which_binding_the_rig_lacks(tmp_path):
    rig = parse_rig(RIG.replace("kind: host, mode: emulated, driver: probe-a", "kind: printer, mode: emulated, "
                                "driver: emulated, transport: tcp"))
    with pytest.raises(BenchError, match="binds to a host, but rig"):
        Bench(rig, Evidence(tmp_path)).device("b")

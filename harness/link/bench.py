"""The bench link: posrig bridges two NICs (one towards each end device) and faults the traffic on the bridge.

    [till] --eth1--[ pr<pid>-br0: eth1 + eth2; br_netfilter -> FORWARD -> NFQUEUE -> engine ]--eth2-- [term]

The bridge is created for the run and named with the per-run prefix (`pr<pid>-...`) that
`harness.topology.reaper` removes after a killed run; the iptables rules carry `posrig-<pid>` comments
for the same reason. br_netfilter's `bridge-nf-call-iptables` is switched on for the run and restored
afterwards. The bridge has no IP: forged packets go out as Ethernet frames on the port where their destination
was last seen.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
from typing import Any

from harness.link.driver import EngineLink, LinkError
from harness.link.netfilter import QueueRules, local_run, queue_range

_bridges = itertools.count()
IP_PORT = re.compile(r"^(\d{1,3}(?:\.\d{1,3}){3}):\d+$")
SYSCTL = "net.bridge.bridge-nf-call-iptables"


class BenchLink(EngineLink):
    """A faultable link on a physical bench: the rig's `interfaces: [NIC_A, NIC_B]` are bridged for the run.

    Runs in the machine's own network namespace, or in `ctx.namespace` when one is given (how it is tested
    here: namespaces stand in for the NICs).
    """

    def __init__(self, spec: Any, ctx: Any, **bound: Any):
        super().__init__(spec, ctx, **bound)
        if len(spec.interfaces) != 2:
            raise LinkError(f"link {spec.name}: a bench link bridges exactly two interfaces; the rig says "
                            f"{list(spec.interfaces)!r} (set links.{spec.name}.interfaces: [eth1, eth2])")
        self.bridge = f"pr{os.getpid()}-br{next(_bridges)}"
        self.rules: QueueRules | None = None
        self._made: list[str] = []
        self._sysctl_before: str | None = None
        self._was_up: dict[str, bool] = {}

    def _run(self, cmd: list[str]) -> str:
        ns = self.ctx.namespace
        return ns.run(cmd) if ns is not None else local_run(cmd)

    def end_ips(self) -> dict[str, str]:
        """ip -> end, for the ends whose rig address is an IPv4 address (names directions of all traffic)."""
        out = {}
        for end in self.spec.ends:
            dev = self.ctx.rig.devices.get(end)
            m = IP_PORT.match(getattr(dev, "address", None) or "")
            if m:
                out[m.group(1)] = end
        return out

    def engine_config(self) -> dict[str, Any]:
        return {**super().engine_config(), "addresses": self.end_ips(), "bridged": True,
                "queue": list(queue_range(in_root_namespace=self.ctx.namespace is None))}

    def start(self) -> None:
        self._make_bridge()
        try:
            super().start()
        except BaseException:
            self._remove_bridge()
            raise

    def _make_bridge(self) -> None:
        a, b = self.spec.interfaces
        for nic in (a, b):
            try:
                state = self._run(["ip", "-o", "link", "show", "dev", nic])
            except (RuntimeError, subprocess.SubprocessError) as exc:
                raise LinkError(f"link {self.name}: interface {nic!r} not found ({exc}); check "
                                f"links.{self.name}.interfaces in the rig and `ip link`") from None
            if " master " in state:
                raise LinkError(f"link {self.name}: interface {nic} already belongs to a bridge or bond: "
                                f"{state.strip()}; free it first")
            self._was_up[nic] = "state UP" in state or ",UP" in state.split(">")[0]
        self._sysctl_before = self._run(["sysctl", "-n", SYSCTL]).strip()
        self._run(["ip", "link", "add", "name", self.bridge, "type", "bridge"])
        self._made.append(self.bridge)
        for nic in (a, b):
            self._run(["ip", "link", "set", nic, "master", self.bridge])
            self._run(["ip", "link", "set", nic, "up"])
        self._run(["ip", "link", "set", self.bridge, "up"])
        self._run(["sysctl", "-qw", f"{SYSCTL}=1"])

    def install_rules(self, queue: int) -> None:
        a, b = self.spec.interfaces
        self.rules = QueueRules(self._run, self.name, queue, [
            ["-m", "physdev", "--physdev-in", a, "--physdev-out", b],
            ["-m", "physdev", "--physdev-in", b, "--physdev-out", a]])
        self.rules.install()

    def remove_rules(self) -> None:
        if self.rules is not None:
            self.rules.remove()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._remove_bridge()

    def _remove_bridge(self) -> None:
        errors = []
        for br in self._made[::-1]:
            try:
                self._run(["ip", "link", "del", br])
            except Exception as exc:  # noqa: BLE001 - collected and raised after the rest is restored
                errors.append(str(exc))
        self._made.clear()
        for nic, was_up in self._was_up.items():
            if not was_up:
                try:
                    self._run(["ip", "link", "set", nic, "down"])
                except Exception as exc:  # noqa: BLE001
                    errors.append(str(exc))
        self._was_up.clear()
        if self._sysctl_before is not None:
            try:
                self._run(["sysctl", "-qw", f"{SYSCTL}={self._sysctl_before}"])
            except Exception as exc:  # noqa: BLE001
                errors.append(str(exc))
            self._sysctl_before = None
        if errors:
            raise LinkError(f"link {self.name}: bench teardown: {'; '.join(errors)}")

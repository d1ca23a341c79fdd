"""The bench link: posrig bridges two NICs (one towards each end device) and faults the traffic on the bridge.

    [till] --eth1--[ pr<pid>-br0: eth1 + eth2; br_netfilter -> FORWARD -> NFQUEUE -> engine ]--eth2-- [term]

Two ways to have the bridge:

- session-long (the rig says `bridge: br-tt`): made once by `posrig link up` (or by the bench's own network
  configuration), it carries traffic between runs, so the till stays registered with its terminal. A run adopts
  it and only adds its NFQUEUE rules (traffic passes unfaulted when no engine listens: `--queue-bypass`); closing
  removes the rules and leaves the bridge. `posrig link down` removes a bridge `link up` made.
- per run (no `bridge`): created for the run and named with the per-run prefix (`pr<pid>-...`) that
  `harness.topology.reaper` removes after a killed run; removed at close.

The iptables rules carry `posrig-<pid>` comments for the reaper. br_netfilter's `bridge-nf-call-iptables` is
switched on (for a per-run bridge restored afterwards). The bridge has no IP: forged packets go out as Ethernet
frames on the port where their destination was last seen.
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
FLUSH_S = 0.2                 # the capture is flushed this often: a real terminal's record is read from it
SESSION_ALIAS = "posrig session bridge"     # `ip link` alias of a bridge `posrig link up` made


def master_of(state: str) -> str | None:
    """The bridge (or bond) an interface is enslaved to, from its `ip -o link show` line."""
    m = re.search(r" master (\S+)", state)
    return m.group(1) if m else None


def up_bridge(run: Any, name: str, nics: tuple[str, ...], link: str = "") -> list[str]:
    """Make (or complete) the session bridge `name` over `nics`, up, br_netfilter on; returns what it did.
    Raises LinkError for a NIC missing or enslaved elsewhere."""
    did = []
    try:
        run(["ip", "-o", "link", "show", "dev", name])
    except (RuntimeError, subprocess.SubprocessError):
        run(["ip", "link", "add", "name", name, "type", "bridge"])
        run(["ip", "link", "set", "dev", name, "alias", SESSION_ALIAS])
        did.append(f"bridge {name} made")
    for nic in nics:
        state = _link_state(run, nic, link)
        master = master_of(state)
        if master not in (None, name):
            raise LinkError(f"link {link}: interface {nic} already belongs to {master}: name that bridge in the rig "
                            f"(links.{link}.bridge: {master}) or free it (`ip link set {nic} nomaster`)")
        if master is None:
            run(["ip", "link", "set", nic, "master", name])
            did.append(f"{nic} joined {name}")
        run(["ip", "link", "set", nic, "up"])
    run(["ip", "link", "set", name, "up"])
    run(["sysctl", "-qw", f"{SYSCTL}=1"])
    return did


def _link_state(run: Any, nic: str, link: str) -> str:
    try:
        return run(["ip", "-o", "link", "show", "dev", nic])
    except (RuntimeError, subprocess.SubprocessError) as exc:
        raise LinkError(f"link {link}: interface {nic!r} not found ({exc}); check links.{link}.interfaces in the "
                        f"rig and `ip link`") from None


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
        self.bridge = spec.bridge or f"pr{os.getpid()}-br{next(_bridges)}"
        self.adopted = False
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
        return {**super().engine_config(), "addresses": self.end_ips(), "bridged": True, "flush_s": FLUSH_S,
                "queue": list(queue_range(in_root_namespace=self.ctx.namespace is None))}

    def start(self) -> None:
        self._make_bridge()
        try:
            super().start()
        except BaseException:
            self._remove_bridge()
            raise

    def _make_bridge(self) -> None:
        if self.spec.bridge:
            self._adopt_bridge()
            return
        a, b = self.spec.interfaces
        for nic in (a, b):
            try:
                state = self._run(["ip", "-o", "link", "show", "dev", nic])
            except (RuntimeError, subprocess.SubprocessError) as exc:
                raise LinkError(f"link {self.name}: interface {nic!r} not found ({exc}); check "
                                f"links.{self.name}.interfaces in the rig and `ip link`") from None
            if " master " in state:
                raise LinkError(f"link {self.name}: interface {nic} already belongs to {master_of(state)}: name "
                                f"that bridge in the rig (links.{self.name}.bridge: {master_of(state)}) to adopt "
                                f"it, or free it (`ip link set {nic} nomaster`)")
            self._was_up[nic] = "state UP" in state or ",UP" in state.split(">")[0]
        self._sysctl_before = self._run(["sysctl", "-n", SYSCTL]).strip()
        self._run(["ip", "link", "add", "name", self.bridge, "type", "bridge"])
        self._made.append(self.bridge)
        for nic in (a, b):
            self._run(["ip", "link", "set", nic, "master", self.bridge])
            self._run(["ip", "link", "set", nic, "up"])
        self._run(["ip", "link", "set", self.bridge, "up"])
        self._run(["sysctl", "-qw", f"{SYSCTL}=1"])

    def _adopt_bridge(self) -> None:
        """Take the rig's session bridge as it is: it must exist; free NICs join it; br_netfilter goes on."""
        try:
            self._run(["ip", "-o", "link", "show", "dev", self.bridge])
        except (RuntimeError, subprocess.SubprocessError):
            raise LinkError(f"link {self.name}: bridge {self.bridge} (links.{self.name}.bridge) does not exist: "
                            f"`posrig link up --rig RIG {self.name}` makes it") from None
        before = self._run(["sysctl", "-n", SYSCTL]).strip()
        up_bridge(self._run, self.bridge, tuple(self.spec.interfaces), self.name)
        if before != "1":
            self._sysctl_before = before
        self.adopted = True

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

"""The emulated link: the engine runs in the topology's middle "link" namespace, where the kernel routes
between the segments, and FORWARD rules queue the packets travelling between the link's two end nodes.
"""

from __future__ import annotations

from typing import Any

from harness.link.driver import EngineLink
from harness.link.netfilter import QueueRules, queue_range
from harness.topology import NetnsUnavailable


class EmulatedLink(EngineLink):
    """A faultable link between two emulated nodes, e.g. terminal-host (see `EngineLink.inject`)."""

    warm_capable = True           # its engine is kept across benches on the same topology (harness.link.warm)

    def __init__(self, spec: Any, ctx: Any, **bound: Any):
        if ctx.namespace is None:
            raise NetnsUnavailable(f"link {spec.name} needs the emulated topology's link namespace; "
                                   "run as root or inside `unshare -Urn`")
        super().__init__(spec, ctx, **bound)
        self.rules: QueueRules | None = None

    def end_ips(self) -> dict[str, str]:
        """ip -> end name, from the nodes the two end devices run on."""
        out = {}
        for end in self.spec.ends:
            dev = self.ctx.rig.devices.get(end)
            node = dev.node if dev is not None else end
            out[self.ctx.address_of(node)] = end
        return out

    def engine_config(self) -> dict[str, Any]:
        return {**super().engine_config(), "addresses": self.end_ips(), "bridged": False,
                "queue": list(queue_range(in_root_namespace=False))}

    def install_rules(self, queue: int) -> None:
        a, b = self.end_ips()
        ns = self.ctx.namespace
        self.rules = QueueRules(lambda cmd: ns.run(cmd), self.name, queue,
                                [["-s", a, "-d", b], ["-s", b, "-d", a]])
        self.rules.install()

    def warm_rules(self) -> QueueRules | None:
        return self.rules

    def adopt_rules(self, rules: QueueRules | None) -> None:
        self.rules = rules

    def remove_rules(self) -> None:
        if self.rules is not None:
            self.rules.remove()

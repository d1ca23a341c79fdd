"""The emulated link: the engine runs in the topology's middle "link" namespace, where the kernel routes
between the segments, and FORWARD rules queue the packets travelling between the link's two end nodes.

With `tls: {mode: terminate}` the terminal's connections are redirected to `harness.link.terminate`'s proxies
in the link namespace and the engine queues their plaintext hop instead (OUTPUT rules on the loopback).
"""

from __future__ import annotations

import contextlib
from typing import Any

from harness.core.address import port_of
from harness.link.driver import EngineLink
from harness.link.netfilter import INJECTED_MARK, QueueRules, RedirectRule, queue_range
from harness.link.terminate import FRONT_PORT, HOP_CLIENT, HOP_SERVER, TlsTerminator
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
        tls = getattr(spec, "tls", None)
        self.terminating = tls is not None and tls.mode == "terminate"
        self.terminator: TlsTerminator | None = None
        self.redirect: RedirectRule | None = None
        if self.terminating:
            self.warm_capable = False         # its proxies and redirect belong to this bench
    def end_ips(self) -> dict[str, str]:
        """ip -> end name, from the nodes the two end devices run on."""
        out = {}
        for end in self.spec.ends:
            dev = self.ctx.rig.devices.get(end)
            node = dev.node if dev is not None else end
            out[self.ctx.address_of(node)] = end
        return out

    def engine_config(self) -> dict[str, Any]:
        addresses = self.end_ips()
        if self.terminating:                  # the engine watches the plaintext hop between the proxies
            server = self.server_end()
            client = next(e for e in self.spec.ends if e != server)
            addresses = {HOP_CLIENT: client, HOP_SERVER: server}
        return {**super().engine_config(), "addresses": addresses, "bridged": False,
                "queue": list(queue_range(in_root_namespace=False))}

    def install_rules(self, queue: int) -> None:
        if self.terminating:
            self._terminate(queue)
            return
        a, b = self.end_ips()
        ns = self.ctx.namespace
        self.rules = QueueRules(lambda cmd: ns.run(cmd), self.name, queue,
                                [["-s", a, "-d", b], ["-s", b, "-d", a]])
        self.rules.install()

    def warm_rules(self) -> QueueRules | None:
        return self.rules

    def adopt_rules(self, rules: QueueRules | None) -> None:
        self.rules = rules

    def _terminate(self, queue: int) -> None:
        """Queue the hop, start the proxies, then redirect the terminal's connections to the front proxy."""
        from harness.host.tls import server_offer

        ns = self.ctx.namespace
        server = self.server_end()
        client = next(e for e in self.spec.ends if e != server)
        ips = {end: ip for ip, end in self.end_ips().items()}
        dev = self.ctx.rig.devices.get(server)
        host = (ips[server], port_of(getattr(dev, "address", None), next(iter(self.spec.ports.values()))))
        own = ["-m", "mark", "!", "--mark", hex(INJECTED_MARK)]     # not the engine's own forged packets
        self.rules = QueueRules(lambda cmd: ns.run(cmd), self.name, queue,
                                [["-s", HOP_CLIENT, "-d", HOP_SERVER, "-p", "tcp", *own],
                                 ["-s", HOP_SERVER, "-d", HOP_CLIENT, "-p", "tcp", *own]], chain="OUTPUT")
        self.rules.install()
        self.terminator = TlsTerminator(ns, host, lambda: server_offer(host))
        self.terminator.start()
        self.redirect = RedirectRule(lambda cmd: ns.run(cmd), self.name,
                                     ["-p", "tcp", "-s", ips[client], "-d", host[0], "--dport", str(host[1])],
                                     FRONT_PORT)
        self.redirect.install()

    def remove_rules(self) -> None:
        if self.redirect is not None:
            with contextlib.suppress(Exception):
                self.redirect.remove()
        if self.terminator is not None:
            self.terminator.close()
        if self.rules is not None:
            self.rules.remove()

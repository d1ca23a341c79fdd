"""The emulated bench topology: one network namespace per node, joined by veth pairs through a middle "link" node.

    till ──veth── ┐
    terminal ─────┤ link (routes between segments; the faulted links live here)
    host ──veth── ┘

>>> topo = build_topology(["till", "terminal", "host"])      # doctest: +SKIP
>>> topo.ip("host")                                          # doctest: +SKIP
'198.18.3.2'
>>> topo.close()                                             # doctest: +SKIP

Namespaces are isolated, so every topology reuses the same subnets without colliding, also under pytest-xdist.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import itertools
import os
import subprocess
import threading
from dataclasses import dataclass, field

from harness.topology.namespace import (
    Namespace,
    NetnsUnavailable,
    TopologyError,
    in_initial_user_ns,
    new_namespace,
    probe,
    run,
)
from harness.topology.reaper import kill_namespace_processes, reap_leftovers

DEFAULT_SUBNET = "198.18.0.0/16"               # RFC 2544 benchmarking range: never routed outside the bench

_seq = itertools.count()
_live: set[Topology] = set()
_live_lock = threading.Lock()


@dataclass(frozen=True)
class Segment:
    """The veth pair joining one node to the link node."""

    node: str
    node_if: str             # inside the node
    link_if: str             # inside the link node
    node_ip: str
    link_ip: str
    prefix: int


@dataclass(frozen=True)
class Network:
    """Where a bench's nodes are: an emulated topology, or this machine's own network (`topology` None).

    >>> Network(None).address_of("host"), Network(None).namespace("host")
    ('127.0.0.1', None)
    """

    topology: Topology | None = None

    def namespace(self, node: str) -> Namespace | None:
        """The namespace a device on `node` runs in (the middle node is "link"); None on this machine's network."""
        if self.topology is None:
            return None
        if node == "link":
            return self.topology.link
        return self.topology.nodes.get(node)

    def address_of(self, node: str) -> str:
        """The IP other nodes use to reach `node` (loopback without a topology)."""
        return "127.0.0.1" if self.topology is None else self.topology.ip(node)


@dataclass(eq=False)
class Topology:
    """A built topology. `close()` removes every namespace, veth and rule it made; it is idempotent."""

    run_label: str
    nodes: dict[str, Namespace]
    link: Namespace
    segments: dict[str, Segment]
    closers: list = field(default_factory=list, repr=False)    # run first on close (the warm link engine pool)
    link_pool: object = field(default=None, repr=False)        # harness.link.warm.WarmPool, made on first use
    _closed: bool = field(default=False, repr=False)

    def ip(self, node: str) -> str:
        """The address of `node` as seen from every other node."""
        try:
            return self.segments[node].node_ip
        except KeyError:
            raise KeyError(f"no node {node!r} in this topology; nodes: {', '.join(self.nodes)}") from None

    def namespaces(self) -> list[Namespace]:
        return [*self.nodes.values(), self.link]

    def drop_connections(self) -> None:
        """Destroy every TCP socket left in the device nodes. A closed device's socket can outlive it (orphaned,
        still retransmitting an unacknowledged segment); on a topology that serves the next bench, that old
        segment would reach the next bench's link engine and be taken for a message of the new scenario.
        Listening sockets stay: a till kept warm for the next bench still serves its control API."""
        for ns in self.nodes.values():
            if _live_connections(ns):
                ns.run(["ss", "-K", "-t", "state", "all", "exclude", "listening"], check=False)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with _live_lock:
            _live.discard(self)
        errors = []
        for closer in self.closers:
            try:
                closer()
            except Exception as exc:  # noqa: BLE001 - reported below; the namespaces must still go
                errors.append(str(exc))
        for ns in self.namespaces():
            kill_namespace_processes(ns)
            if ns.named:
                try:
                    run(["ip", "netns", "del", ns.label])
                except (TopologyError, subprocess.TimeoutExpired) as exc:
                    errors.append(str(exc))
            with contextlib.suppress(ProcessLookupError):
                ns.holder.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                ns.holder.wait(timeout=5)
        if errors:
            raise TopologyError("teardown left objects behind: " + "; ".join(errors))

    def __enter__(self) -> Topology:
        return self

    def __exit__(self, *exc) -> None:
        self.close()



_QUIET_STATES = {"0A", "06", "07"}      # /proc/net/tcp: LISTEN, TIME_WAIT, CLOSE: none of them sends anything


def _live_connections(ns: Namespace) -> bool:
    """Does `ns` hold a TCP socket that may still send (read in-process: cheaper than running `ss` each time)?"""
    try:
        rows = []
        with ns.entered():
            for table in ("tcp", "tcp6"):
                with open(f"/proc/thread-self/net/{table}") as f:
                    rows += f.read().splitlines()[1:]
    except OSError:
        return True                      # cannot tell: let `ss` decide
    return any(len(cols := row.split()) > 3 and cols[3] not in _QUIET_STATES for row in rows)


def build_topology(nodes: list[str], subnet: str = DEFAULT_SUBNET) -> Topology:
    """Build one namespace per node plus a routing "link" namespace. Raises NetnsUnavailable if impossible."""
    ok, why = probe()
    if not ok:
        raise NetnsUnavailable(why)
    if "link" in nodes:
        raise ValueError("'link' is the middle node's name; rename that device node")
    net = ipaddress.ip_network(subnet)
    if net.prefixlen > 16:
        raise ValueError(f"subnet {subnet} must be a /16 or larger: each node gets a /24 of it")
    seq = next(_seq)
    run_label = f"posrig-{os.getpid()}-{seq}"
    name_it = in_initial_user_ns() and os.geteuid() == 0
    reap_leftovers()
    link = new_namespace("link", f"{run_label}-link", name_it)
    topo = Topology(run_label=run_label, nodes={}, link=link, segments={})
    with _live_lock:
        _live.add(topo)
    try:
        subnets = list(net.subnets(new_prefix=24))
        veths = []
        for i, node in enumerate(nodes):
            ns = new_namespace(node, f"{run_label}-{node}", name_it)
            topo.nodes[node] = ns
            seg_net = subnets[i + 1]
            seg = Segment(node=node, node_if="eth0", link_if=f"to-{node}"[:15],
                          node_ip=str(seg_net[2]), link_ip=str(seg_net[1]), prefix=24)
            ns.ip = seg.node_ip
            topo.segments[node] = seg
            veths.append(f"link add {seg.link_if} netns {link.holder.pid} type veth "
                         f"peer name {seg.node_if} netns {ns.holder.pid}")
        run(["ip", "-batch", "-"], input="\n".join(veths) + "\n")
        for node, ns in topo.nodes.items():
            seg = topo.segments[node]
            ns.run(["ip", "-batch", "-"], input=(
                "link set lo up\n"
                f"addr add {seg.node_ip}/{seg.prefix} dev {seg.node_if}\n"
                f"link set {seg.node_if} up\n"
                f"route add default via {seg.link_ip}\n"))
        link_cmds = ["link set lo up"]
        for seg in topo.segments.values():
            link_cmds += [f"addr add {seg.link_ip}/{seg.prefix} dev {seg.link_if}", f"link set {seg.link_if} up"]
        link.run(["ip", "-batch", "-"], input="\n".join(link_cmds) + "\n")
        link.run(["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        return topo
    except BaseException:
        topo.close()
        raise



@atexit.register
def _close_all() -> None:
    with _live_lock:
        live = list(_live)
    for topo in live:
        with contextlib.suppress(Exception):
            topo.close()

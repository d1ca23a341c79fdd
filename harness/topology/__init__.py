"""Network topology of an emulated bench: namespaces (one per device node), the routing link node, the reaper.

    harness.topology.namespace   one namespace: holder process, enter, run, popen, sockets inside it
    harness.topology.topology    build_topology(): the nodes, veth segments and the middle link node
    harness.topology.reaper      reap_leftovers(): what a killed run left behind
"""

from harness.topology.namespace import (
    ENABLE_HINT,
    Namespace,
    NetnsUnavailable,
    TopologyError,
    capabilities,
    in_initial_user_ns,
    probe,
)
from harness.topology.reaper import reap_leftovers
from harness.topology.topology import DEFAULT_SUBNET, Network, Segment, Topology, build_topology

__all__ = ["DEFAULT_SUBNET", "ENABLE_HINT", "Namespace", "NetnsUnavailable", "Network", "Segment", "Topology",
           "TopologyError", "build_topology", "capabilities", "in_initial_user_ns", "probe", "reap_leftovers"]

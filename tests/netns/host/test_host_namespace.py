"""The emulated host inside the rig's host namespace, reached from the terminal's namespace.

It builds namespaces: it belongs in tests/netns (outside this area for now; see the host branch's report)."""

from __future__ import annotations

import pytest

from tests.support.iso_client import Client, sale


@pytest.mark.needs_netns
def test_in_the_host_namespace(host, topology, bench):
    if topology is None:
        pytest.skip("the rig in force builds no namespaces")
    assert host.address == (topology.ip("host"), 5000)
    client = Client(topology.nodes["terminal"].connect(host.address))
    try:
        assert client.exchange(sale(1))["39"] == "00"
    finally:
        client.close()
    assert host.ledger.payment(stan="000001").state == "approved"

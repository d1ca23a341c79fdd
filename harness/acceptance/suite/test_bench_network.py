"""Bench sanity: every faultable link of the rig carries real TCP between its two ends.

Runs before the fault matrix: if the bench network does not carry traffic, no scenario can be trusted.
"""

import threading

import pytest

pytestmark = [pytest.mark.acceptance, pytest.mark.needs_netns]

def pytest_generate_tests(metafunc):
    if "link_name" in metafunc.fixturenames:
        from fixtures.plugin import rig_path
        from harness.core.rig import load_rig

        metafunc.parametrize("link_name", list(load_rig(rig_path(metafunc.config)).links))

def test_link_carries_tcp_between_its_ends(rig, topology, link_name):
    if topology is None:
        pytest.skip("no emulated topology on this rig (physical bench): run `posrig doctor` instead")
    a, b = (rig.devices[end].node for end in rig.links[link_name].ends)
    server_ns, client_ns = topology.nodes[b], topology.nodes[a]
    with server_ns.listening(("0.0.0.0", 45000)) as srv:
        def echo():
            conn, _ = srv.accept()
            with conn:
                conn.sendall(conn.recv(64)[::-1])

        t = threading.Thread(target=echo, daemon=True)
        t.start()
        with client_ns.connect((topology.ip(b), 45000), timeout=3) as c:
            c.sendall(b"posrig")
            assert c.recv(64) == b"girsop"
            assert c.getpeername()[0] == topology.ip(b)
        t.join(3)

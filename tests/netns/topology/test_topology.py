"""The emulated topology uses real kernel objects, crosses real TCP through the link node, and leaves nothing."""

import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

from harness import topology as netns

pytestmark = pytest.mark.needs_netns


def _netns_names(owner: int | None = None) -> set[str]:
    """Named namespaces of `owner` (default this process; other xdist workers build and remove their own
    meanwhile)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {name for line in out.splitlines() if line.strip()
            if (name := line.split()[0]).startswith(f"posrig-{owner or os.getpid()}-")}


def _echo_once(server):
    conn, _ = server.accept()
    with conn:
        conn.sendall(conn.recv(1024).upper())


def test_tcp_crosses_the_link_node_between_two_namespaces():
    with netns.build_topology(["till", "terminal", "host"]) as topo:
        host = topo.nodes["host"]
        with host.listening(("0.0.0.0", 5000)) as srv:
            t = threading.Thread(target=_echo_once, args=(srv,))
            t.start()
            with topo.nodes["terminal"].connect((topo.ip("host"), 5000)) as c:
                c.sendall(b"0200 across the link")
                assert c.recv(1024) == b"0200 ACROSS THE LINK"
                # the peer sees the terminal's own segment address: the link routed, it did not proxy
                assert c.getsockname()[0] == topo.ip("terminal")
            t.join(5)
        # the route really goes through the link node: its forwarding counters moved
        stats = topo.link.run(["ip", "-s", "-o", "link", "show", "to-host"])
        assert "to-host" in stats
        # and a node cannot reach another node when the link node stops forwarding
        topo.link.run(["sysctl", "-qw", "net.ipv4.ip_forward=0"])
        with pytest.raises(OSError):
            topo.nodes["till"].connect((topo.ip("host"), 5000), timeout=0.5)


def test_namespaces_are_isolated_from_this_machine():
    with netns.build_topology(["a", "b"]) as topo:
        inside = topo.nodes["a"].run(["ip", "-o", "-4", "addr", "show"])
        assert topo.ip("a") in inside
        mine = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True).stdout
        assert topo.ip("a") not in mine


def test_close_removes_everything_even_after_a_failure():
    before = _netns_names()
    topo = netns.build_topology(["till", "host"])
    labels = {ns.label for ns in topo.namespaces()}
    holders = [ns.holder for ns in topo.namespaces()]
    if os.geteuid() == 0 and netns.in_initial_user_ns():
        assert labels <= _netns_names()
    child = topo.nodes["host"].popen(["sleep", "60"])
    try:
        raise RuntimeError("a test failed here")
    except RuntimeError:
        topo.close()
    assert _netns_names() == before
    assert all(h.poll() is not None for h in holders)
    assert child.wait(5) is not None                     # processes inside were killed too
    topo.close()                                         # idempotent


def test_two_topologies_coexist_with_the_same_subnets():
    with netns.build_topology(["till", "host"]) as one, netns.build_topology(["till", "host"]) as two:
        assert one.ip("host") == two.ip("host")
        assert one.run_label != two.run_label
        with one.nodes["host"].listening(("0.0.0.0", 7000)), two.nodes["host"].listening(("0.0.0.0", 7000)):
            pass                                         # same port, same address, no clash


CHILD = textwrap.dedent("""
    import sys, time
    from harness import topology as netns
    topo = netns.build_topology(["till", "host"])
    topo.nodes["host"].popen(["sleep", "300"])
    print(topo.run_label, flush=True)
    time.sleep(300)
""")


@pytest.mark.skipif(os.geteuid() != 0 or not netns.in_initial_user_ns(),
                    reason="named namespaces (the ones a SIGKILL leaves behind) exist only as root")
def test_reaper_removes_leftovers_of_a_sigkilled_run():
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    try:
        label = child.stdout.readline().strip()
        assert label.startswith(f"posrig-{child.pid}-")
        os.kill(child.pid, signal.SIGKILL)
        child.wait(5)
        left = {n for n in _netns_names(child.pid) if n.startswith(label)}
        assert len(left) == 3                             # till, host, link: SIGKILL ran no teardown
        removed = netns.reap_leftovers()
        assert {f"netns {n}" for n in left} <= set(removed)
        assert not {n for n in _netns_names(child.pid) if n.startswith(label)}
    finally:
        if child.poll() is None:
            child.kill()


def test_reaper_leaves_live_runs_alone():
    with netns.build_topology(["till"]) as topo:
        netns.reap_leftovers()
        # still usable: our own process is alive, so nothing of ours was touched
        assert topo.ip("till") in topo.nodes["till"].run(["ip", "-o", "-4", "addr", "show"])


INSIDE_USERNS = textwrap.dedent("""
    import threading
    from harness import topology as netns
    assert not netns.in_initial_user_ns()
    with netns.build_topology(["till", "host"]) as topo:
        assert not any(ns.named for ns in topo.namespaces())      # no /run/netns names inside a user namespace
        with topo.nodes["host"].listening(("0.0.0.0", 5000)) as srv:
            t = threading.Thread(target=lambda: srv.accept()[0].sendall(b"ok"))
            t.start()
            with topo.nodes["till"].connect((topo.ip("host"), 5000)) as c:
                assert c.recv(2) == b"ok"
            t.join(5)
    print("crossed")
""")


def test_topology_works_inside_a_user_namespace():
    """The unprivileged path: `unshare -Urn` gives a user namespace in which the topology is built unnamed."""
    p = subprocess.run(["unshare", "-Urn", sys.executable, "-c", INSIDE_USERNS], capture_output=True, text=True,
                       timeout=60)
    if p.returncode != 0 and "Operation not permitted" in p.stderr and "unshare" in p.stderr.split(":")[0]:
        pytest.skip(f"user namespaces are disabled here: {p.stderr.strip()}")
    assert p.returncode == 0 and "crossed" in p.stdout, p.stderr


def test_drop_connections_leaves_no_socket_of_the_last_bench_behind():
    """A device that closed with data unacknowledged leaves an orphan socket that keeps retransmitting; the
    next bench on the same topology must not see it. drop_connections() destroys what is left in the nodes."""
    with netns.build_topology(["till", "terminal"]) as topo:
        terminal = topo.nodes["terminal"]
        with terminal.listening(("0.0.0.0", 20007)) as srv:
            client = topo.nodes["till"].connect((topo.ip("terminal"), 20007))
            server_side, _ = srv.accept()
            assert "ESTAB" in topo.nodes["till"].run(["ss", "-tnH"])
            topo.drop_connections()
            assert topo.nodes["till"].run(["ss", "-tnH"]).strip() == ""
            assert terminal.run(["ss", "-tnH", "state", "established"]).strip() == ""
            with pytest.raises(OSError):
                client.sendall(b"\x06\xb0\x00")
                client.recv(8)
            client.close()
            server_side.close()


def test_a_listener_waits_briefly_for_its_port_and_then_names_it(monkeypatch):
    """The device replacing another on a bench slot binds the same port: it waits while the old listener is let
    go, and an address really taken is an error naming the address and the namespace."""
    from harness.topology import namespace

    monkeypatch.setattr(namespace, "BIND_PATIENCE", 0.5)
    with netns.build_topology(["host"]) as topo:
        host = topo.nodes["host"]
        old = host.listen(("0.0.0.0", 5000))
        threading.Timer(0.2, old.close).start()              # the previous scenario's host lets go a moment later
        new = host.listen(("0.0.0.0", 5000))
        try:
            with pytest.raises(OSError, match=r"0\.0\.0\.0:5000 in namespace posrig-") as err:
                host.listen(("0.0.0.0", 5000))
            assert err.value.errno == 98
        finally:
            new.close()

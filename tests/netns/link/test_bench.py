"""The bench link (two NICs bridged, faults on the bridge), tested with namespaces standing in for the NICs:
a private topology whose link node bridges its two segment interfaces instead of routing between them."""

from __future__ import annotations

import pytest

from harness.core.device import DeviceContext
from harness.core.rig import LinkSpec
from harness.link.bench import SYSCTL, BenchLink
from harness.link.driver import LinkError
from harness.topology import build_topology
from tests.support.link_peers import ACK, AUTHORIZE, BENCH_RIG, STATUS_INFO, Client, Server, ZvtTerminal, tcp_state

pytestmark = pytest.mark.needs_netns
TILL_IP, TERMINAL_IP = "198.19.100.2", "198.19.100.3"


@pytest.fixture
def bridged():
    """till and terminal on one L2 segment, joined through the link node's two interfaces (no routing)."""
    topo = build_topology(["till", "terminal"], subnet="198.19.0.0/16")
    try:
        topo.link.run(["ip", "-batch", "-"], input="addr flush dev to-till\naddr flush dev to-terminal\n")
        for node, ip in (("till", TILL_IP), ("terminal", TERMINAL_IP)):
            topo.nodes[node].run(["ip", "-batch", "-"],
                                 input=f"addr flush dev eth0\naddr add {ip}/24 dev eth0\n")
        yield topo
    finally:
        topo.close()


@pytest.fixture
def bench_link(rig, bridged, evidence):
    spec = LinkSpec(name="till-terminal", ends=("till", "terminal"), faultable=True, driver="bench",
                    interfaces=("to-till", "to-terminal"), ports={"zvt": 20007})
    ctx = DeviceContext(rig=rig, evidence=evidence, timing=rig.timing, namespace=bridged.link)
    link = BenchLink(spec, ctx)
    link.start()
    yield link
    link.close()


@pytest.fixture
def zvt(bridged):
    srv = Server(bridged.nodes["terminal"], TERMINAL_IP, 20007, "zvt", ZvtTerminal())
    clients = []

    def connect() -> Client:
        c = Client(bridged.nodes["till"], (TERMINAL_IP, 20007), "zvt")
        clients.append(c)
        return c

    yield srv, connect
    for c in clients:
        c.close()
    srv.close()


def test_bridge_passes_and_sees_stages(bench_link, zvt):
    srv, connect = zvt
    c = connect()
    c.send(AUTHORIZE)
    assert c.recv(2.0) == ACK and c.recv(2.0) == STATUS_INFO
    seen = bench_link.seen()
    assert seen["till->terminal"]["zvt:06 01"] == 1 and seen["terminal->till"]["zvt:04 0F"] == 1
    assert bench_link.status()["stats"]["packets"] >= 6


def test_bridge_drop_and_rst(bench_link, zvt):
    srv, connect = zvt
    c = connect()
    with bench_link.inject("drop", stage="zvt:06 01", direction="till->terminal"):
        c.send(AUTHORIZE)
        assert c.recv(0.6) is None
        assert srv.received == []                   # while armed: once cleared, a retransmission may get through
    c2 = connect()
    with bench_link.inject("rst", stage="zvt:04 0F", direction="terminal->till", to="both") as fault:
        c2.send(AUTHORIZE)
        assert c2.recv(2.0) == ACK
        with pytest.raises(ConnectionResetError):
            c2.recv(2.0)
    assert len(fault.verified) == 2 and all(v.taken for v in fault.verified)
    assert tcp_state(srv.conns[-1]) == "CLOSE"                   # forged frame reached the terminal side too


def test_bridge_fail_open_and_cleanup(rig, bridged, evidence, zvt):
    srv, connect = zvt
    spec = LinkSpec(name="till-terminal", ends=("till", "terminal"), faultable=True, driver="bench",
                    interfaces=("to-till", "to-terminal"), ports={"zvt": 20007})
    ctx = DeviceContext(rig=rig, evidence=evidence, timing=rig.timing, namespace=bridged.link)
    link = BenchLink(spec, ctx)
    before = bridged.link.run(["sysctl", "-n", SYSCTL]).strip()
    link.start()
    try:
        assert bridged.link.run(["sysctl", "-n", SYSCTL]).strip() == "1"
        link.kill_engine()
        c = connect()                                                # no engine: the bypass lets it through
        c.send(AUTHORIZE)
        assert c.recv(2.0) == ACK
    finally:
        link.close()
    links = bridged.link.run(["ip", "-o", "link", "show"])
    assert link.bridge not in links and "master" not in links
    assert "posrig" not in bridged.link.run(["iptables-save"])
    assert bridged.link.run(["sysctl", "-n", SYSCTL]).strip() == before


def test_posrig_link_command_reports_what_fired(bridged, zvt, tmp_path):
    import json
    import subprocess
    import sys

    srv, connect = zvt
    rig = tmp_path / "bench.yaml"
    rig.write_text(BENCH_RIG)
    cmd = [sys.executable, "-c", "import sys; from harness.cli import main; sys.exit(main())",
           "link", "--rig", str(rig), "--netns", bridged.link.label,
           "--evidence", str(tmp_path / "ev"), "--timeout", "20", "--linger", "1", "--json",
           "till-terminal", "hold zvt:06 01 till->terminal ms=200", "drop zvt:06 0F terminal->till"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        events = []
        for line in proc.stdout:
            events.append(json.loads(line))
            if events[-1]["kind"] == "waiting":
                break
        assert events and events[-1]["kind"] == "waiting", proc.stderr.read()
        c = connect()
        c.send(AUTHORIZE)
        assert c.recv(2.0) == ACK and c.recv(2.0) == STATUS_INFO
        c.send(ACK)
        got = c.recv(0.5)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    events += [json.loads(line) for line in out.splitlines()]
    assert got is None, events                                      # the completion was dropped
    assert proc.returncode == 0, (err, events)
    fired = [e for e in events if e["kind"] == "fired"]
    assert [(e["stage"], e["direction"]) for e in fired] == [("zvt:06 01", "till->terminal"),
                                                             ("zvt:06 0F", "terminal->till")]
    assert (tmp_path / "ev" / "link-till-terminal.pcapng").stat().st_size > 0
    assert "posrig" not in bridged.link.run(["iptables-save"])



SESSION_RIG = BENCH_RIG.replace("ports: {zvt: 20007}}", "ports: {zvt: 20007}, bridge: BRIDGE}")


def posrig_cli(*args: str):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", "import sys; from harness.cli import main; sys.exit(main())", *args],
                          capture_output=True, text=True, timeout=60)


def session_link(rig_file, bridged, evidence, bridge: str) -> BenchLink:
    from harness.core.rig import load_rig

    rig = load_rig(rig_file)
    spec = rig.links["till-terminal"]
    assert spec.bridge == bridge
    return BenchLink(spec, DeviceContext(rig=rig, evidence=evidence, timing=rig.timing, namespace=bridged.link))


def passes(connect) -> bool:
    c = connect()
    c.send(AUTHORIZE)
    return c.recv(2.0) == ACK


def test_session_bridge_outlives_runs_faults_armed_and_cleared_down_removes_it(bridged, zvt, evidence, tmp_path):
    srv, connect = zvt
    rig_file = tmp_path / "bench.yaml"
    rig_file.write_text(SESSION_RIG.replace("BRIDGE", "br-tt"))
    up = posrig_cli("link", "up", "--rig", str(rig_file), "--netns", bridged.link.label)
    assert up.returncode == 0 and "bridge br-tt up over to-till, to-terminal" in up.stdout, up.stderr
    assert passes(connect)                                  # no posrig running: the till reaches its terminal
    link = session_link(rig_file, bridged, evidence, "br-tt")
    link.start()
    try:
        with link.inject("drop", stage="zvt:06 01", direction="till->terminal"):
            c = connect()
            c.send(AUTHORIZE)
            assert c.recv(0.6) is None                      # faulted while armed ...
        assert passes(connect)                              # ... carrying traffic again once cleared, same bridge
    finally:
        link.close()
    shown = bridged.link.run(["ip", "-o", "link", "show"])
    assert "br-tt" in shown and shown.count("master br-tt") == 2    # the run left the bridge as it found it
    assert "posrig" not in bridged.link.run(["iptables-save"])
    assert passes(connect)                                  # between runs the till still reaches the terminal
    down = posrig_cli("link", "down", "--rig", str(rig_file), "--netns", bridged.link.label)
    assert down.returncode == 0 and "br-tt removed" in down.stdout, down.stderr
    assert "br-tt" not in bridged.link.run(["ip", "-o", "link", "show"])


def test_pre_existing_bridge_is_adopted_and_left_alone(bridged, zvt, evidence, tmp_path):
    srv, connect = zvt
    ns = bridged.link
    ns.run(["ip", "-batch", "-"], input="link add mybr type bridge\nlink set to-till master mybr\n"
                                        "link set to-terminal master mybr\nlink set mybr up\n")
    plain = tmp_path / "plain.yaml"
    plain.write_text(BENCH_RIG)
    refused = BenchLink(load_spec(plain), DeviceContext(rig=load_rig_file(plain), evidence=evidence,
                                                        timing=load_rig_file(plain).timing, namespace=ns))
    with pytest.raises(LinkError, match=r"already belongs to mybr: name that bridge in the rig "
                                        r"\(links.till-terminal.bridge: mybr\)"):
        refused.start()
    rig_file = tmp_path / "bench.yaml"
    rig_file.write_text(SESSION_RIG.replace("BRIDGE", "mybr"))
    link = session_link(rig_file, bridged, evidence, "mybr")
    link.start()
    try:
        with link.inject("drop", stage="zvt:06 01", direction="till->terminal") as fault:
            c = connect()
            c.send(AUTHORIZE)
            assert c.recv(0.6) is None
        assert fault.fired
    finally:
        link.close()
    down = posrig_cli("link", "down", "--rig", str(rig_file), "--netns", ns.label)
    assert down.returncode == 0 and "not made by `posrig link up`: left alone" in down.stdout
    assert "mybr" in ns.run(["ip", "-o", "link", "show"]) and passes(connect)


def load_rig_file(path):
    from harness.core.rig import load_rig

    return load_rig(path)


def load_spec(path):
    return load_rig_file(path).links["till-terminal"]


def test_bridge_capture_keeps_ethernet_headers(bench_link, zvt, bridged):
    """A capture on a bridge is Ethernet: Wireshark shows the MAC addresses of the till and the terminal."""
    from scapy.layers.inet import IP
    from scapy.layers.l2 import Ether
    from scapy.utils import rdpcap

    srv, connect = zvt
    c = connect()
    c.send(AUTHORIZE)
    assert c.recv(2.0) == ACK
    macs = {node: bridged.nodes[node].run(["ip", "-o", "link", "show", "dev", "eth0"]).split("link/ether ")[1][:17]
            for node in ("till", "terminal")}
    pkts = rdpcap(str(bench_link.capture()))
    assert pkts and all(p.haslayer(Ether) and p.haslayer(IP) for p in pkts)
    from_till = [p for p in pkts if p[IP].src == TILL_IP]
    assert {p[Ether].src for p in from_till} == {macs["till"]}
    assert macs["terminal"] in {p[Ether].dst for p in from_till[1:]}     # learned once the terminal answered

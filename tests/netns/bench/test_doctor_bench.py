"""`posrig doctor` on a physical bench (simulated: tests/support/sim_bench.py), run on the bench PC: every
misconfiguration of issue 18 is one line, and nothing is sent to a device whose route is wrong."""

from __future__ import annotations

import json
import sys

import pytest

from harness.core import doctor
from harness.core.rig import parse_rig
from tests.support.sim_bench import SimBench

pytestmark = pytest.mark.needs_netns

BAD_RIG = """
name: bad-bench
network: {{mode: bench}}
devices:
  printer: {{kind: printer, mode: real, transport: tcp, address: "10.99.0.5:9100"}}
  terminal: {{kind: terminal, mode: real, transport: tcp, address: "10.18.3.2:20007", nic: nic-till}}
  host: {{kind: host, mode: emulated, transport: tcp, address: "10.18.9.9:5000"}}
  host2: {{kind: host, mode: emulated, transport: tcp, address: "10.18.7.1:5001"}}
  usbprinter: {{kind: printer, mode: real, transport: usb, address: "04b8:0202", options: {{tap: "10.18.4.1:9100"}}}}
  lanprinter: {{kind: printer, mode: real, transport: tcp, address: "10.18.3.2:9100", nic: nic-prn,
               options: {{tap: "10.18.9.9:9100"}}}}
  till: {{kind: till, mode: real, driver: operator, transport: operator,
         options: {{input: "{regular}", output: "/nonexistent-posrig-dir/prompts"}}}}
links:
  till-terminal: {{ends: [till, terminal], faultable: true, driver: bench, interfaces: [nic-till, nic-term]}}
  terminal-host: {{ends: [terminal, host], faultable: true, driver: bench, interfaces: [nic-up, nic-acq],
                  bridge: br-missing}}
"""


@pytest.fixture
def boxes(tmp_path):
    bench = SimBench(tmp_path).build()
    pc = bench.boxes["pc"]
    pc.run(["ip", "-batch", "-"], input="link add brx type bridge\nlink set nic-till master brx\n"
                                        "link set nic-term master brx\nlink set brx up\n"
                                        "addr add 10.18.7.1/24 dev nic-term\n"
                                        "route add default via 10.18.3.2 dev nic-prn\n")
    # count what leaves the bench PC for the two devices whose route is wrong: it must stay nothing
    pc.run(["iptables", "-I", "OUTPUT", "-d", "10.99.0.5", "-j", "ACCEPT"])
    pc.run(["iptables", "-I", "OUTPUT", "-d", "10.18.3.2", "-p", "tcp", "--dport", "20007", "-j", "ACCEPT"])
    try:
        yield bench
    finally:
        bench.close()


def sent(pc, address: str) -> int:
    out = pc.run(["iptables", "-L", "OUTPUT", "-v", "-n", "-x"])
    return sum(int(line.split()[0]) for line in out.splitlines() if address in line)


def test_each_bench_misconfiguration_is_one_line_and_nothing_goes_the_wrong_way(boxes, tmp_path):
    regular = tmp_path / "answers.txt"
    regular.write_text("not a fifo")
    rig = tmp_path / "bad.yaml"
    rig.write_text(BAD_RIG.format(regular=regular))
    done = boxes.posrig("doctor", "--rig", str(rig), "--json")
    doc = json.loads(done.stdout)
    assert done.returncode == 1 and not doc["ready"]
    failed = {c["name"]: c["detail"] for c in doc["checks"] if not c["ok"]}
    expect = {
        "printer printer (10.99.0.5:9100)": "reached only through the default route (via 10.18.3.2 dev nic-prn)",
        "terminal terminal (10.18.3.2:20007)": "would leave through dev nic-prn, not nic-till",
        "port 10.18.9.9:5000 (host)": "cannot listen there (Cannot assign requested address): use an address of "
                                      "this machine",
        "host host2 (10.18.7.1:5001)": "enslaved to bridge brx",
        "NIC nic-till (link till-terminal)": "already enslaved to brx",
        "NIC nic-term (link till-terminal)": "already enslaved to brx",
        "bridge br-missing (link terminal-host)": "`posrig link up",
        "printer tap 10.18.4.1:9100": "a tap forwards to a TCP or serial printer",
        "printer tap 10.18.9.9:9100": "is not an address of this machine",
        f"operator input {regular}": "not a FIFO",
        "operator output /nonexistent-posrig-dir/prompts": "mkfifo",
    }
    for name, words in expect.items():
        assert name in failed and words in failed[name], (name, failed.get(name), failed)
        assert "\n" not in failed[name]
    assert "nothing sent" in failed["printer printer (10.99.0.5:9100)"]
    assert sent(boxes.boxes["pc"], "10.99.0.5") == 0 and sent(boxes.boxes["pc"], "10.18.3.2") == 0


def test_a_good_bench_is_ready_and_the_printer_answers_dle_eot(tmp_path):
    bench = SimBench(tmp_path).build()
    try:
        bench._start("printer", "prn", [*PRINTER_SERVE])
        bench.write_rig()
        assert bench.posrig("link", "up", "--rig", str(bench.rig_path)).returncode == 0
        done = bench.posrig("doctor", "--rig", str(bench.rig_path), "--json")
        doc = json.loads(done.stdout)
        checks = {c["name"]: c for c in doc["checks"]}
        printer = checks["printer printer (10.18.3.2:9100)"]
        assert printer["ok"] and "answers DLE EOT" in printer["detail"]
        terminal = checks["terminal terminal (10.18.1.3:20007)"]
        assert terminal["ok"] and "posrig does not connect" in terminal["detail"]
        assert checks["host host (10.18.2.1:5000)"]["ok"] and checks["br_netfilter"]["ok"]
        assert checks["bridge br-tt (link till-terminal)"]["ok"]
        assert doc["ready"], [c for c in doc["checks"] if not c["ok"]]
    finally:
        bench.close()


PRINTER_SERVE = [sys.executable, "-m", "harness.cli", "printer", "serve", "--tcp", "10.18.3.2:9100", "--control",
                 "127.0.0.1:0"]


def test_br_netfilter_missing_is_flagged(monkeypatch, tmp_path):
    rig = parse_rig(BAD_RIG.format(regular=tmp_path / "x"), tmp_path / "bad.yaml")
    monkeypatch.setattr(doctor, "BR_NETFILTER", tmp_path / "no-such-sysctl")
    [br] = [c for c in doctor._bench_netfilter(rig, doctor.Options()) if c.name == "br_netfilter"]
    assert not br.ok and "modprobe br_netfilter" in br.detail

"""posrig on a labgrid place, against a real labgrid coordinator and exporters on localhost (`tests/support/
labgrid_lab.py`): a slice of the matrix through the acquired place, a place someone else holds, power cuts
through labgrid's power driver (a launched till, and a till the relay really feeds), the place's NICs as a bench
link's bridged pair, and the place released after SIGTERM and (by `doctor --clean`) after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from harness.acceptance.matrix import power_cut_scenarios
from harness.acceptance.scenario import run_scenario
from harness.acceptance.verdict import Verdict
from harness.core.bench import Bench
from harness.core.rig import load_rig
from harness.labgrid.place import Place
from harness.labgrid.session import LabgridSession
from tests.support import ROOT
from tests.support.labgrid_lab import Lab, available

pytestmark = [pytest.mark.acceptance]

WHY = available()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if WHY:
        pytest.skip(WHY)
    root = tmp_path_factory.mktemp("lab")
    saved = os.environ.get("POSRIG_LABGRID_RECORDS")
    os.environ["POSRIG_LABGRID_RECORDS"] = str(root / "records")        # this lab's records only
    try:
        with Lab(root) as running:
            yield running
    finally:
        os.environ.pop("POSRIG_LABGRID_RECORDS") if saved is None else os.environ.update(
            POSRIG_LABGRID_RECORDS=saved)


def rig_text(lab: Lab, power: bool = True) -> str:
    """The emulated rig, with its printer the physical one on the place's serial port (tapped where the till
    prints) and the till's power on the place's relay."""
    emulated = (ROOT / "rigs" / "emulated.yaml").read_text()
    head, _, rest = emulated.partition("devices:\n")
    _, _, tail = rest.partition("  terminal:\n")
    return (head.replace("name: emulated", "name: labgrid-bench") + f"""labgrid:
  coordinator: "{lab.coordinator}"
  place: {lab.place}
  resources:
    printer: printer
    terminal-host: [nic-a, nic-b]
""" + ("  power:\n    till: till-power\n" if power else "") + """
devices:
  printer:
    kind: printer
    mode: real
    transport: serial           # the place's NetworkSerialPort, reached through a local pty
    profile: tm-t88
    options: {tap: "till:9100"} # the till prints here; posrig decodes and forwards to the physical printer
  terminal:
""" + tail)


@pytest.fixture
def lab_rig(lab, tmp_path):
    path = tmp_path / "labgrid-bench.yaml"
    path.write_text(rig_text(lab))
    yield path
    if Place(lab.coordinator, lab.place).show()["acquired"]:
        lab.client("-p", lab.place, "release", "--kick")


def posrig(*args: str, cwd, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env={**os.environ, **(env or {})})


@pytest.mark.needs_netns
def test_a_slice_of_the_matrix_runs_through_the_acquired_place(lab, lab_rig, tmp_path):
    report = tmp_path / "report"
    journal = lab.root / "printer-journal"
    printed = set(journal.glob("*.json"))
    run = posrig("run", "--rig", str(lab_rig), "--report", str(report), "-k", "0210-lost or 0210-slow/approve",
                 cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    doc = json.loads((report / "acceptance.json").read_text())
    assert {r["id"]: r["verdict"] for r in doc["scenarios"]} == {
        "terminal-host/0210-lost/approve": "OK", "terminal-host/0210-lost/decline": "OK",
        "terminal-host/0210-slow/approve": "OK"}
    # The receipts reached the printer behind the exporter's ser2net: the clean sales before and after each faulted
    # one (4.78, 6.69), and the one faulted sale that was paid (0210-slow/approve, 4.88).
    new = set(journal.glob("*.json")) - printed
    amounts = [json.loads(p.read_text())["amounts"] for p in new]
    assert len(new) == 7 and sum("4.88" in a for a in amounts) == 1, amounts
    block = doc["labgrid"]
    assert block["place"] == lab.place and block["coordinator"] == lab.coordinator
    assert block["exporters"] == [lab.exporter_name] and block["acquired_by"]
    res = {r["name"]: r for r in block["resources"]}
    assert res["printer"]["path"] == f"{lab.exporter_name}/bench/NetworkSerialPort/printer"
    assert res["printer"]["used_for"] == "serial port of printer"
    assert res["nic-a"]["params"]["ifname"] == lab.nics[0] and "link terminal-host" in res["nic-a"]["used_for"]
    assert res["till-power"]["cls"] == "NetworkPowerPort" and res["till-power"]["used_for"].startswith("power of till")
    # The receipt went through labgrid (and the printer's answers came back), and the till was powered on
    # through the place's relay before each launch.
    bridge = block["bridges"]["printer"]
    assert bridge["bytes_to_exporter"] > 0 and bridge["bytes_from_exporter"] > 0, bridge
    assert lab.relay.sets() and set(lab.relay.sets()) == {1}
    assert not Place(lab.coordinator, lab.place).show()["acquired"], "the run did not release the place"
    assert f'name="posrig_labgrid_place" value="{lab.place}"' in (report / "junit.xml").read_text()
    verify = posrig("verify", str(report), cwd=tmp_path, timeout=60)
    assert verify.returncode == 0, verify.stdout + verify.stderr           # the labgrid block is sealed too
    assert not lab.ser2net_pids(), "ser2net still running: the exporter did not see the release"


def test_a_place_someone_else_holds_is_refused_naming_the_holder(lab, lab_rig, tmp_path):
    alice = {"LG_USERNAME": "alice", "LG_HOSTNAME": "qa-bench-pc"}
    lab.client("-p", lab.place, "acquire", env=alice)
    try:
        run = posrig("run", "--rig", str(lab_rig), "--report", str(tmp_path / "report"), "-k", "0210-lost",
                     cwd=tmp_path, timeout=120)
        assert run.returncode == 2, run.stdout + run.stderr
        lines = [line for line in run.stderr.splitlines() if "labgrid" in line]
        assert len(lines) == 1 and f"labgrid place {lab.place}" in lines[0], run.stderr
        assert "is acquired by qa-bench-pc/alice" in lines[0] and "--kick" in lines[0], lines[0]
        assert not (tmp_path / "report" / "acceptance.json").exists()
        assert Place(lab.coordinator, lab.place).show()["acquired"] == "qa-bench-pc/alice"   # left to alice
    finally:
        lab.client("-p", lab.place, "release", env=alice)


@pytest.mark.needs_netns
def test_the_power_cut_goes_through_the_places_power_driver(lab, lab_rig, evidence, topology):
    """The power-cut scenario with the till's kill on labgrid: the relay goes off while the terminal has the
    payment and on again before the till boots; the oracle still holds."""
    scenario = next(s for s in power_cut_scenarios() if s.outcome == "approve")
    lab_session = LabgridSession(load_rig(lab_rig))
    rig = lab_session.open()
    try:
        before = len(lab.relay.log)
        bench = Bench(rig, evidence, topology)
        try:
            record = run_scenario(bench, scenario)
        finally:
            errors = bench.close()
            topology.drop_connections()
        assert not errors, errors
    finally:
        lab_session.close()
    assert record.verdict is Verdict.OK, f"{record.verdict}: {record.violations or record.observed}"
    assert [v for t, what, v in lab.relay.log[before:] if what == "set"] == [1, 0, 1]
    events = [e["event"] for e in json.loads((evidence.path / "till-lifecycle.json").read_text())]
    assert events == ["power on", "launch", "power off", "killed", "power on", "launch", "stopped"], events


def test_a_place_a_killed_run_left_acquired_is_released_by_doctor_clean(lab, lab_rig, tmp_path):
    """While a posrig of this machine holds the place a second run is refused; labgrid keeps the place acquired
    when that posrig is SIGKILLed, and posrig's record of it lets `posrig doctor --clean` release it."""
    env = {"POSRIG_LABGRID_RECORDS": str(tmp_path / "records")}       # a killed run's records, apart
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from harness.core.rig import load_rig; "
         "from harness.labgrid.session import LabgridSession; LabgridSession(load_rig(sys.argv[1])).open(); "
         "print('acquired', flush=True); time.sleep(600)", str(lab_rig)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, **env})
    try:
        assert holder.stdout.readline().strip() == "acquired"
        # labgrid sees one user; posrig still refuses a second run of this machine on the same place.
        second = posrig("run", "--rig", str(lab_rig), "--report", str(tmp_path / "report"), cwd=tmp_path,
                        timeout=120, env=env)
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"(posrig pid {holder.pid} on this machine)" in second.stderr, second.stderr
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    me = Place(lab.coordinator, lab.place).show()
    assert me["acquired"] == me["me"], "the place should still be acquired after the SIGKILL"
    doctor = posrig("doctor", "--clean", "--rig", str(lab_rig), cwd=tmp_path, timeout=120, env=env)
    assert f"released labgrid place {lab.place}" in doctor.stdout, doctor.stdout + doctor.stderr
    deadline = time.monotonic() + 5
    while Place(lab.coordinator, lab.place).show()["acquired"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not Place(lab.coordinator, lab.place).show()["acquired"]
    assert not list((tmp_path / "records").glob("*.json"))
    assert not list(Path(tempfile.gettempdir()).glob(f"posrig-labgrid-{holder.pid}-*")), "its state was left"


@pytest.mark.needs_netns
def test_a_run_stopped_by_sigterm_releases_the_place(lab, lab_rig, tmp_path):
    run = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", "--rig", str(lab_rig), "--report",
                            str(tmp_path / "report"), "-k", "0210-lost"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not Place(lab.coordinator, lab.place).show()["acquired"] and time.monotonic() < deadline:
            assert run.poll() is None, run.stderr.read()
            time.sleep(0.2)
        assert Place(lab.coordinator, lab.place).show()["acquired"], "the run never acquired the place"
        run.send_signal(signal.SIGTERM)
        run.wait(60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(10)
    assert not Place(lab.coordinator, lab.place).show()["acquired"], run.stderr.read()[-2000:]


class PhysicalTill:
    """The example vendor till as a till on a bench that posrig does not start: it runs in the till's node while
    the place's relay feeds it (relay off kills it at once, relay on boots it on the same journal)."""

    def __init__(self, topology, state_dir, port: int):
        self.ns, self.state_dir, self.port = topology.nodes["till"], state_dir, port
        self.env = {**os.environ, "POSRIG_TERMINAL": f"{topology.ip('terminal')}:20007",
                    "POSRIG_PRINTER": f"{topology.ip('till')}:9100", "POSRIG_TIMING_SCALE": "0.05",
                    "POSRIG_STATE_DIR": str(state_dir), "PYTHONUNBUFFERED": "1"}
        self.proc = None
        self.boots = 0

    def power(self, on: bool) -> None:
        if on and self.proc is None:
            self.boots += 1
            self.proc = self.ns.popen([sys.executable, str(ROOT / "examples" / "vendor_till" / "till.py"),
                                       "--http", f"127.0.0.1:{self.port}"], env=self.env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        elif not on and self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
            self.proc = None

    def wait_up(self, timeout: float = 20.0) -> None:
        from harness.till.http import TillClient

        deadline = time.monotonic() + timeout
        while True:
            try:
                TillClient.from_url(f"http://127.0.0.1:{self.port}", namespace=self.ns, timeout=1.0).health()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


@pytest.mark.needs_netns
def test_a_physical_tills_power_is_cut_and_restored_by_the_place(lab, evidence, topology, tmp_path):
    """A till posrig does not launch: its kill is the relay going off (the till dies with it), its restart the
    relay going on and posrig waiting until the booted till answers, in the middle of a payment."""
    scenario = next(s for s in power_cut_scenarios() if s.outcome == "approve")
    emulated = (ROOT / "rigs" / "emulated.yaml").read_text()
    port = 18080
    rig_file = tmp_path / "physical-till.yaml"
    rig_file.write_text(emulated.replace("name: emulated", "name: physical-till").replace(
        "devices:\n", f'labgrid:\n  coordinator: "{lab.coordinator}"\n  place: {lab.place}\n'
        "  power: {till: till-power}\ndevices:\n", 1).replace(
        "    mode: emulated\n    driver: reference             # the reference till shipped with posrig\n"
        "    transport: process\n    profile: correct\n",
        f"    mode: real\n    driver: http\n    transport: http\n    address: http://127.0.0.1:{port}\n"
        "    options:\n      receipt_words: {total: [SUMME], copy: [KOPIE], cash: [BAR], auth_code: [GENEHMIGUNG], "
        "not_a_sale: [ABGELEHNT, STORNO]}\n"))           # ACME prints German receipts
    rig = load_rig(rig_file)
    assert rig.devices["till"].driver == "http" and not rig.devices["till"].options.get("launch")
    till = PhysicalTill(topology, tmp_path, port)
    lab.relay.wired[0] = till.power
    lab_session = LabgridSession(rig)
    try:
        bound = lab_session.open()
        till.power(True)                                   # the bench was on when the run began
        till.wait_up()
        before = len(lab.relay.log)
        bench = Bench(bound, evidence, topology)
        try:
            record = run_scenario(bench, scenario)
        finally:
            errors = bench.close()
            topology.drop_connections()
        assert not errors, errors
    finally:
        lab.relay.wired.pop(0, None)
        till.power(False)
        lab_session.close()
    assert record.verdict is Verdict.OK, f"{record.verdict}: {record.violations or record.observed}"
    assert [v for _, what, v in lab.relay.log[before:] if what == "set"] == [0, 1] and till.boots == 2
    journal = json.loads((tmp_path / "acme-journal.json").read_text())
    faulted = [s["status"] for s in journal if s["amount_cents"] == 488]
    assert faulted in (["paid"], ["failed"]) and [s["status"] for s in journal if s["amount_cents"] != 488] == \
        ["paid", "paid"], journal                          # the sales around the power cut: served as usual


@pytest.mark.needs_netns
def test_the_places_nics_are_the_bench_links_interfaces(lab, evidence):
    """A bench-mode rig whose link names no NICs: the place's two NetworkInterfaces become the bridged pair, and
    ZVT passes through the bridge posrig builds on them (namespaces stand in for the posrig machine's NICs, as in
    tests/netns/link/test_bench.py)."""
    from harness.core.device import DeviceContext
    from harness.core.rig import parse_rig
    from harness.link.bench import BenchLink
    from harness.topology import build_topology
    from tests.support.link_peers import ACK, AUTHORIZE, BENCH_RIG, STATUS_INFO, Client, Server, ZvtTerminal

    place, exporter = f"{lab.place}-nics", f"{lab.exporter_name}-nics"
    lab.add_place(place, exporter, "link:\n  nic-till:\n    cls: NetworkInterface\n    ifname: to-till\n"
                                   "  nic-terminal:\n    cls: NetworkInterface\n    ifname: to-terminal\n")
    text = BENCH_RIG.replace(" interfaces: [to-till, to-terminal],", "").replace(
        "devices:\n", f'labgrid:\n  coordinator: "{lab.coordinator}"\n  place: {place}\n'
        "  resources: {till-terminal: [nic-till, nic-terminal]}\ndevices:\n")
    rig = parse_rig(text, "bench-on-a-place.yaml")
    assert rig.links["till-terminal"].interfaces == ()
    topo = build_topology(["till", "terminal"], subnet="198.19.0.0/16")
    lab_session = LabgridSession(rig)
    try:
        topo.link.run(["ip", "-batch", "-"], input="addr flush dev to-till\naddr flush dev to-terminal\n")
        for node, ip in (("till", "198.19.100.2"), ("terminal", "198.19.100.3")):
            topo.nodes[node].run(["ip", "-batch", "-"], input=f"addr flush dev eth0\naddr add {ip}/24 dev eth0\n")
        bound = lab_session.open()
        spec = bound.links["till-terminal"]
        assert spec.interfaces == ("to-till", "to-terminal")
        link = BenchLink(spec, DeviceContext(rig=bound, evidence=evidence, timing=bound.timing,
                                             namespace=topo.link))
        link.start()
        srv = Server(topo.nodes["terminal"], "198.19.100.3", 20007, "zvt", ZvtTerminal())
        client = Client(topo.nodes["till"], ("198.19.100.3", 20007), "zvt")
        try:
            client.send(AUTHORIZE)
            assert client.recv(2.0) == ACK and client.recv(2.0) == STATUS_INFO
            assert link.seen()["till->terminal"]["zvt:06 01"] == 1
        finally:
            client.close()
            srv.close()
            link.close()
        used = {r["name"]: r["used_for"] for r in lab_session.report()["resources"]}
        assert used == dict.fromkeys(("nic-till", "nic-terminal"), "bench NIC of link till-terminal")
    finally:
        lab_session.close()
        topo.close()

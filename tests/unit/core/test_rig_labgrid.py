"""A rig's `labgrid` block: validated with the file, key, found and expected; its resources mapped to devices,
links and power, refusing what the place lacks or posrig cannot use."""

from pathlib import Path

import pytest

from harness.core.rig import RigError, parse_rig
from harness.labgrid.place import PlaceError
from harness.labgrid.resources import apply, identities, plan
from tests.support import ROOT

GOOD = (ROOT / "rigs" / "emulated.yaml").read_text()
BENCH = (Path(__file__).with_name("labgrid-bench-rig.yaml")).read_text()   # a bench rig as a lab writes it
LAB = 'labgrid:\n  coordinator: "lab.example:20408"\n  place: pos-bench-3\n'


def lab_rig(block: str = LAB, text: str = GOOD, path: str = "rigs/lab.yaml"):
    return parse_rig(text.replace("devices:\n", block + "devices:\n", 1), path)


def test_the_labgrid_block_names_coordinator_and_place():
    rig = lab_rig(LAB + "  power: {till: till-power}\n")
    assert rig.labgrid.coordinator == "lab.example:20408" and rig.labgrid.place == "pos-bench-3"
    assert rig.labgrid.power == {"till": "till-power"}
    assert parse_rig(GOOD).labgrid is None


@pytest.mark.parametrize("block, key, expected", [
    ('labgrid:\n  coordinator: lab.example\n  place: b3\n', "labgrid.coordinator", "HOST:PORT"),
    ('labgrid:\n  coordinator: "h:70000"\n  place: b3\n', "labgrid.coordinator", "HOST:PORT"),
    ('labgrid:\n  coordinator: "h:20408"\n  place: "a/b"\n', "labgrid.place", "place to acquire"),
    ('labgrid:\n  coordinator: "h:20408"\n  palce: b3\n', "labgrid.palce", "did you mean 'place'"),
    (LAB + "  resources: {scanner: s1}\n", "labgrid.resources.scanner", "a device or link named in the rig"),
    (LAB + "  resources: {terminal-host: nic-a}\n", "labgrid.resources.terminal-host", "two NetworkInterface"),
    (LAB + "  power: {host: p1}\n", "labgrid.power.host", "the till or a printer"),
])
def test_a_wrong_labgrid_block_names_the_key(block, key, expected):
    with pytest.raises(RigError) as err:
        lab_rig(block)
    assert err.value.key == key and str(err.value).startswith("rigs/lab.yaml: " + key)
    assert expected in str(err.value)


def test_a_device_the_place_serves_needs_no_address_and_a_mapped_bench_link_no_nics():
    text = BENCH.replace("    transport: usb              # or: transport: tcp, address: 192.0.2.30:9100 (a LAN "
                         "printer)\n    address: \"04b8:0202\"", "    transport: serial")
    with pytest.raises(RigError, match="a real device needs an address"):
        parse_rig(text)
    block = LAB + "  resources: {printer: printer-serial, terminal-host: [nic-a, nic-b]}\n"
    text = text.replace("    interfaces: [eth1, eth2]    # bridged by posrig for the run; traffic is faulted on the "
                        "bridge\n", "")
    rig = lab_rig(block, text)
    assert rig.devices["printer"].address is None and rig.links["terminal-host"].interfaces == ()
    with pytest.raises(PlaceError, match="devices.printer: no address, and labgrid place pos-bench-3 has no "
                                         "resource named 'printer'"):
        plan(lab_rig(LAB + "  resources: {terminal-host: [nic-a, nic-b]}\n", text), PLACE)


PLACE = {"name": "pos-bench-3", "resources": [
    {"name": "printer-serial", "resource": "ttyUSB0", "cls": "NetworkSerialPort", "exporter": "bench3-pc",
     "group": "pos", "acquired": True,
     "params": {"host": "bench3-pc", "port": 4001, "speed": 9600, "extra": {"proxy_required": False}}},
    {"name": "nic-a", "resource": "nic-a", "cls": "RemoteNetworkInterface", "exporter": "bench3-pc",
     "group": "pos", "params": {"host": "bench3-pc", "ifname": "enp1s0"}},
    {"name": "nic-b", "resource": "nic-b", "cls": "RemoteNetworkInterface", "exporter": "bench3-pc",
     "group": "pos", "params": {"host": "bench3-pc", "ifname": "enp2s0"}},
    {"name": "till-power", "resource": "till-power", "cls": "NetworkPowerPort", "exporter": "bench3-pc",
     "group": "pos", "params": {"model": "shelly_gen2", "host": "http://plug-3", "index": 0}},
]}


def bench_lab_rig():
    text = BENCH.replace("    transport: usb              # or: transport: tcp, address: 192.0.2.30:9100 (a LAN "
                         "printer)\n    address: \"04b8:0202\"", "    transport: serial")
    block = LAB + "  resources: {printer: printer-serial, terminal-host: [nic-a, nic-b]}\n  power: {till: till-power}\n"
    return lab_rig(block, text)


def test_the_place_serves_the_serial_printer_the_bench_link_and_the_tills_power():
    rig = bench_lab_rig()
    p = plan(rig, PLACE)
    assert p.serial == {"printer": PLACE["resources"][0]["params"]}
    assert p.interfaces == {"terminal-host": ("enp1s0", "enp2s0")} and p.power == {"till": "till-power"}
    bound = apply(rig, {"printer": "/dev/pts/9"}, p.interfaces, p.power)
    assert bound.devices["printer"].address == "/dev/pts/9"
    assert bound.links["terminal-host"].interfaces == ("enp1s0", "enp2s0")
    assert bound.devices["till"].options["labgrid_power"] == {"coordinator": "lab.example:20408",
                                                              "place": "pos-bench-3", "resource": "till-power"}
    assert rig.devices["printer"].address is None                          # the loaded rig is left as it was
    ids = {i["name"]: i for i in identities(PLACE, p.used)}
    assert ids["printer-serial"]["path"] == "bench3-pc/pos/NetworkSerialPort/ttyUSB0"
    assert ids["printer-serial"]["used_for"] == "serial port of printer" and "extra" not in ids["printer-serial"]


@pytest.mark.parametrize("change, message", [
    (lambda r: r["resources"].pop(0), "no resource 'printer-serial' for device printer (the place has: nic-a"),
    (lambda r: r["resources"][3].update(cls="NetworkService"), "resource 'till-power' is a NetworkService; "
                                                               "power of till needs NetworkPowerPort"),
    (lambda r: r["resources"][0]["params"]["extra"].update(proxy_required=True), "needs an SSH proxy"),
])
def test_what_the_place_lacks_is_named(change, message):
    import copy

    place = copy.deepcopy(PLACE)
    change(place)
    with pytest.raises(PlaceError, match=message.replace("(", r"\(")):
        plan(bench_lab_rig(), place)


def test_a_usb_printer_through_labgrid_is_refused_with_why():
    text = BENCH
    rig = lab_rig(LAB + "  resources: {printer: printer-usb}\n", text)
    with pytest.raises(PlaceError, match="USB devices through labgrid .* not supported"):
        plan(rig, PLACE)

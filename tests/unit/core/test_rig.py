"""Rig files: the shipped rigs load; wrong rigs fail naming file, key, what was found and what was expected."""


import pytest

from harness.core.rig import RigError, load_rig, parse_rig
from harness.link.faults import FaultSpec
from tests.support import ROOT

GOOD = (ROOT / "rigs" / "emulated.yaml").read_text()


@pytest.mark.parametrize("name", ["emulated.yaml", "bench-example.yaml"])
def test_shipped_rigs_load(name):
    rig = load_rig(ROOT / "rigs" / name)
    assert set(rig.devices) == {"printer", "terminal", "host", "till"}
    assert all(link.ends[0] in rig.devices and link.ends[1] in rig.devices for link in rig.links.values())


def test_emulated_rig_shape():
    rig = load_rig(ROOT / "rigs" / "emulated.yaml")
    assert rig.network_mode == "namespaces"
    assert rig.devices["printer"].node == "till"            # printers sit beside the till
    assert rig.nodes == ["till", "terminal", "host"]
    assert rig.timing.seconds(5) == pytest.approx(5 * rig.timing.scale)
    assert rig.timing.scale < 1
    assert rig.links["terminal-host"].ports == {"iso8583": 5000}
    assert len(rig.sha256) == 64


def _broken(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new, 1)


@pytest.mark.parametrize("old,new,key,expected", [
    ("    transport: tcp       #", "    transprot: tcp       #", "devices.printer.transprot",
     "did you mean 'transport'"),
    ("kind: printer", "kind: printr", "devices.printer.kind", "one of: printer, terminal, host, till"),
    ("mode: emulated\n    transport: tcp       #", "mode: emulate\n    transport: tcp       #",
     "devices.printer.mode", "did you mean 'emulated'"),
    ("address: till:9100", "address: till-9100", "devices.printer.address", "HOST:PORT or NODE:PORT"),
    ("scale: 0.05", "scale: 5", "timing.scale", "a number > 0 and <= 1"),
    ("ends: [terminal, host]", "ends: [terminal, acquirer]", "links.terminal-host.ends[1]", "a device named"),
    ("faultable: true\n    ports: {zvt", "faultable: yes please\n    ports: {zvt", "links.till-terminal.faultable",
     "true or false"),
    ("timing:", "timming:", "timming", "did you mean 'timing'"),
])
def test_wrong_rig_names_file_key_found_expected(old, new, key, expected):
    with pytest.raises(RigError) as err:
        parse_rig(_broken(old, new), "rigs/broken.yaml")
    msg = str(err.value)
    assert msg.startswith(f"rigs/broken.yaml: {key}: found "), msg
    assert expected in msg
    assert err.value.key == key


def test_real_device_needs_address():
    text = _broken("    mode: emulated\n    transport: tcp\n    address: host:5000",
                   "    mode: real\n    transport: tcp")
    with pytest.raises(RigError, match=r"devices.host.address: found None; expected HOST:PORT"):
        parse_rig(text, "x.yaml")


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(RigError, match="nope.yaml: file: found"):
        load_rig(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndevices: [unclosed\n")
    with pytest.raises(RigError, match=r"bad.yaml: line \d+: .*expected valid YAML"):
        load_rig(bad)


def test_link_faults_from_the_rig_are_validated():
    text = GOOD.replace("    ports: {iso8583: 5000}",
                        "    ports: {iso8583: 5000}\n    faults: ['drop 0210 host->terminal']")
    [spec] = parse_rig(text, "r.yaml").links["terminal-host"].faults          # parsed once, at load
    assert spec == FaultSpec(action="drop", stage="0210", direction="host->terminal")
    bad = GOOD.replace("    ports: {iso8583: 5000}", "    ports: {iso8583: 5000}\n    faults: ['explode 0210']")
    with pytest.raises(RigError, match=r"r.yaml: links.terminal-host.faults\[0\]: found 'explode 0210'"):
        parse_rig(bad, "r.yaml")


TRAVERSAL = "../../../../../tmp/trav/P"


@pytest.mark.parametrize("old,new,key", [
    ("devices:\n  printer:", f"devices:\n  '{TRAVERSAL}':", "devices"),
    ("devices:\n  printer:", "devices:\n  receipt.printer:", "devices"),
    ("links:\n  till-terminal:", "links:\n  'till/terminal':", "links"),
    ("    address: terminal:20007", "    address: terminal:20007\n    node: ..", "devices.terminal.node"),
    ("    driver: reference", "    driver: ../reference", "devices.till.driver"),
    ("    profile: tm-t88", "    profile: tm t88", "devices.printer.profile"),
    ("name: emulated", "name: ../emulated", "name"),
    ("ports: {zvt: 20007}", "ports: {z.v.t: 20007}", "links.till-terminal.ports"),
])
def test_names_that_could_leave_a_folder_are_refused(old, new, key):
    with pytest.raises(RigError) as err:
        parse_rig(_broken(old, new), "rigs/evil.yaml")
    msg = str(err.value)
    assert msg.startswith(f"rigs/evil.yaml: {key}: found "), msg
    assert "letters, digits, '_' or '-'" in msg and "\n" not in msg


def test_the_printer_named_to_climb_out_is_refused_by_name():
    with pytest.raises(RigError, match=r"devices: found '\.\./\.\./\.\./\.\./\.\./tmp/trav/P'; expected a device name"):
        parse_rig(_broken("devices:\n  printer:", f"devices:\n  '{TRAVERSAL}':"), "r.yaml")


def test_bench_interfaces_are_nic_names():
    bench = (ROOT / "rigs" / "bench-example.yaml").read_text()
    assert load_rig(ROOT / "rigs" / "bench-example.yaml").links["terminal-host"].interfaces == ("eth3", "acq-br")
    assert parse_rig(bench.replace("[eth3, acq-br]", "[eth3.100, acq-br]"), "b.yaml")      # a VLAN is a NIC
    with pytest.raises(RigError, match=r"links.terminal-host.interfaces\[0\]: found '\.\.'; expected a network"):
        parse_rig(bench.replace("[eth3, acq-br]", "['..', acq-br]"), "b.yaml")


def test_bench_bridge_and_nic_are_interface_names():
    bench = (ROOT / "rigs" / "bench-example.yaml").read_text()
    rig = load_rig(ROOT / "rigs" / "bench-example.yaml")
    assert rig.links["till-terminal"].bridge == "br-tt" and rig.devices["printer"].nic == "eth5"
    with pytest.raises(RigError, match=r"links.till-terminal.bridge: found '\.\./x'"):
        parse_rig(bench.replace("bridge: br-tt", "bridge: ../x"), "b.yaml")
    with pytest.raises(RigError, match=r"devices.printer.nic: found 'eth 5'"):
        parse_rig(bench.replace("nic: eth5", "nic: eth 5"), "b.yaml")


def test_the_middle_node_name_is_reserved():
    with pytest.raises(RigError, match=r"devices.terminal.node: found 'link'; expected any node name but 'link'"):
        parse_rig(_broken("    address: terminal:20007", "    address: terminal:20007\n    node: link"), "r.yaml")


def test_a_rig_file_that_is_not_utf8_is_one_line_naming_file_and_line(tmp_path):
    rig = tmp_path / "latin1.yaml"
    rig.write_bytes(GOOD.replace("description: All", "description: Caf\xe9 all").encode("latin-1"))
    with pytest.raises(RigError) as err:
        load_rig(rig)
    msg = str(err.value)
    assert msg.startswith(f"{rig}: line 5: found 'byte 0xe9") and "expected a UTF-8 text file" in msg
    assert "save the rig as UTF-8" in msg and "\n" not in msg


def test_a_folder_given_as_rig_is_one_line(tmp_path):
    with pytest.raises(RigError, match=r": file: found .*; expected a readable rig file \(Is a directory\)"):
        load_rig(tmp_path)


@pytest.mark.parametrize("text,message", [
    ("name: x\ndescription: a\x01b\n", "r.yaml: line 2: found \"character '\\\\x01'\"; expected YAML text without "
                                       "control characters"),
    ("name: x\ndevices: " + "[" * 1000, "r.yaml: YAML: found \"nesting deeper than Python's recursion limit\""),
])
def test_unreadable_yaml_is_one_rig_error(text, message):
    with pytest.raises(RigError) as err:
        parse_rig(text, "r.yaml")
    assert str(err.value).startswith(message) and "\n" not in str(err.value)

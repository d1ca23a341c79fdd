"""Till command lines run without a shell: values stay one argument each, and templates written for a shell
(quoted placeholders, pipes) are refused with the reason, at rig load already."""

from __future__ import annotations

import pytest

from harness.core.rig import RigError, parse_rig
from harness.till import argv
from harness.till import endpoints as ep
from tests.support import ROOT

EVIL = ["'; touch /tmp/x; '", "$(touch /tmp/x)", "`touch /tmp/x`", "a\nb", "{terminal}"]


@pytest.mark.parametrize("value", EVIL)
def test_a_value_is_one_argument_whatever_it_holds(value):
    assert argv.render("acme sell --basket {basket} --name=x{basket}", {"basket": value}) == \
        ["acme", "sell", "--basket", value, f"--name=x{value}"]


@pytest.mark.parametrize("template, why", [
    ("acme sell --basket '{basket}'", "inside quotes"),
    ('acme sell --tender "{tender}"', "inside quotes"),
    ("acme sell | tee log", "shell syntax"),
    ("acme sell; rm -rf /", "shell syntax"),
    ("acme sell $HOME", "shell syntax"),
    ("acme sell 'unbalanced", "unbalanced"),
])
def test_templates_written_for_a_shell_are_refused(template, why):
    with pytest.raises(argv.TemplateError, match=why):
        argv.check(template)


def test_unknown_placeholder_is_named():
    with pytest.raises(argv.TemplateError, match="unknown placeholder 'colour'"):
        argv.check("acme {colour}", known=["basket"])


def test_a_quoted_placeholder_is_refused_at_rig_load():
    text = (ROOT / "rigs" / "emulated.yaml").read_text().replace(
        "driver: reference             # the reference till shipped with posrig\n    transport: process",
        "driver: command\n    transport: command\n    options: {sell: \"acme sell --basket '{basket}'\"}")
    with pytest.raises(RigError, match=r"devices.till.*placeholder \{basket\} is inside quotes"):
        parse_rig(text, "vendor.yaml")


def test_lifecycle_keys_are_till_options_and_refused_elsewhere():
    base = (ROOT / "rigs" / "emulated.yaml").read_text()
    lifecycle = "    profile: correct\n    launch: \"acme --ecr {terminal}\"\n    capabilities: [journal]\n"
    rig = parse_rig(base.replace("    profile: correct\n", lifecycle), "vendor.yaml")
    assert rig.devices["till"].options == {"launch": "acme --ecr {terminal}", "capabilities": ["journal"]}
    with pytest.raises(RigError, match="for tills only"):
        parse_rig(base.replace("    profile: tm-t88\n", "    profile: tm-t88\n    launch: x\n"), "vendor.yaml")
    with pytest.raises(RigError, match="capabilities"):
        parse_rig(base.replace("    profile: correct\n", "    profile: correct\n    capabilities: [fly]\n"), "v.yaml")


def test_endpoints_reach_the_till_as_environment_and_headers():
    values = {"terminal": "198.18.2.2:20007", "printer_serial": "/dev/pts/5", "timing_scale": "0.05"}
    assert ep.env(values) == {"POSRIG_TERMINAL": "198.18.2.2:20007", "POSRIG_PRINTER_SERIAL": "/dev/pts/5",
                              "POSRIG_TIMING_SCALE": "0.05"}
    assert ep.headers(values)["X-Posrig-Printer-Serial"] == "/dev/pts/5"


def test_endpoints_of_started_devices():
    class Terminal:
        ecr_address = ("198.18.2.2", 20007)

    class Printer:
        address = {"serial": "/dev/pts/6"}

    found = ep.of_bench(terminal=Terminal(), printer=Printer(), timing_scale=0.05)
    assert found["terminal"] == "198.18.2.2:20007" and found["printer_serial"] == "/dev/pts/6"
    assert found["timing_scale"] == "0.05" and "printer" not in found

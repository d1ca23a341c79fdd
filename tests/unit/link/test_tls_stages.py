"""TLS stages in the one stage grammar, in fault specs, in rig files, and the matrix's messages over TLS."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.core.rig import LinkTls, RigError, parse_rig, tls_between
from harness.link.faults import FaultError, FaultSpec
from harness.protocols import stages
from harness.protocols.stages import StageError, over_tls, parse

RIG = (Path(__file__).resolve().parents[3] / "rigs" / "emulated.yaml").read_text()


def tls_rig(tls: str) -> str:
    return RIG.replace("ports: {iso8583: 5000}", "ports: {iso8583: 5000}\n    tls: " + tls)


@pytest.mark.parametrize("text", ["response#1", "response-1", "tls:response#1", "TLS: Response#1"])
def test_spellings_of_a_tls_stage(text):
    s = parse(text)
    assert (s.protocol, s.name, s.label) == ("tls", "response#1", "response-1")


def test_handshake_and_bad_tls_stages():
    assert parse("handshake") == stages.HANDSHAKE and parse("tls:handshake").name == "handshake"
    for bad in ("response#0", "request#", "reply#1"):
        with pytest.raises(StageError, match="TLS stage"):
            parse(bad)


def test_matrix_messages_by_their_place_on_a_tls_link():
    assert [over_tls(m) for m in ("0200", "0210", "0420", "0430")] == ["request#1", "response#1", "request#2",
                                                                       "response#2"]
    assert over_tls("connect") == "connect" and over_tls("response#3") == "response#3"
    with pytest.raises(StageError, match="no place on a TLS link"):
        over_tls("0800")


def test_fault_specs_on_tls_stages_read_back_the_same():
    s = FaultSpec.parse("drop response#1 host->terminal")
    assert (s.stage, s.direction) == ("response#1", "host->terminal")
    cut = FaultSpec.parse("rst after request#1 to=both")
    assert cut.params == {"deliver": True, "to": "both"} and FaultSpec.parse(cut.describe()) == cut
    with pytest.raises(FaultError, match="STAN"):
        FaultSpec.parse("drop response#1 stan=000001")


def test_rig_tls_key_defaults_and_lookup():
    rig = parse_rig(tls_rig("{version: 1.2}"))
    assert rig.links["terminal-host"].tls == LinkTls("1.2", "passthrough", (2, 1))
    assert tls_between(rig, "host") == tls_between(rig, "terminal", "host") == rig.links["terminal-host"].tls
    assert tls_between(rig, "till") is None and parse_rig(RIG).links["terminal-host"].tls is None
    assert parse_rig(tls_rig("{tickets: 1}")).links["terminal-host"].tls.tickets == (1, 1)
    assert parse_rig(tls_rig("{keylog: true}")).links["terminal-host"].tls.keylog


@pytest.mark.parametrize("tls,key,hint", [
    ("{version: 1.4}", "tls.version", "one of: 1.2, 1.3"),
    ("{mode: tunnel}", "tls.mode", "passthrough"),
    ("{tickets: [1, 2, 3]}", "tls.tickets", "after a full and a resumed handshake"),
    ("{tickets: -1}", "tls.tickets", "each 0-16"),
    ("{versoin: '1.3'}", "tls.versoin", "did you mean 'version'"),
    ("yes", "tls", "a mapping"),
    ("{keylog: maybe}", "tls.keylog", "true or false"),
])
def test_rig_tls_key_errors_name_the_key(tls, key, hint):
    with pytest.raises(RigError, match="terminal-host." + key.replace(".", r"\.")) as exc:
        parse_rig(tls_rig(tls))
    assert hint in str(exc.value)


def test_tls_needs_the_links_ports():
    text = RIG.replace("    ports: {iso8583: 5000}", "    tls: {version: '1.3'}")
    with pytest.raises(RigError, match="with `ports:`"):
        parse_rig(text)


def test_terminating_is_for_the_emulated_topology():
    assert parse_rig(tls_rig("{mode: terminate}")).links["terminal-host"].tls.mode == "terminate"
    bench = tls_rig("{mode: terminate}").replace("mode: namespaces", "mode: bench").replace(
        "ends: [terminal, host]", "ends: [terminal, host]\n    interfaces: [eth1, eth2]").replace(
        "ends: [till, terminal]", "ends: [till, terminal]\n    interfaces: [eth3, eth4]")
    with pytest.raises(RigError, match="emulated topology only"):
        parse_rig(bench)

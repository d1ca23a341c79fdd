"""`posrig link up|down` refuses, in one line each, what it cannot make a session bridge of (nothing is run)."""

from __future__ import annotations

import argparse

from harness.cli.link import run

RIG = """
name: b
network: {mode: bench}
devices:
  terminal: {kind: terminal, mode: real, transport: tcp, address: "192.0.2.20:20007"}
  till: {kind: till, mode: real, driver: operator, transport: operator}
links:
  till-terminal: {ends: [till, terminal], faultable: true, driver: bench, interfaces: [eth1, eth2]}
"""


def _args(rig, *names, action="up"):
    return argparse.Namespace(link=action, faults=list(names), rig=str(rig), netns=None, json=False, actions=False)


def test_link_up_without_a_bridge_in_the_rig_says_where_to_name_it(tmp_path, capsys):
    rig = tmp_path / "b.yaml"
    rig.write_text(RIG)
    assert run(_args(rig)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"posrig link: {rig}: links.till-terminal.bridge: not set; name the session bridge there, e.g. "
                   "'bridge: br-till-termin'"]


def test_link_down_of_an_unknown_link_names_the_bench_links(tmp_path, capsys):
    rig = tmp_path / "b.yaml"
    rig.write_text(RIG)
    assert run(_args(rig, "terminal-host", action="down")) == 2
    assert "links.terminal-host: not a bench link of this rig (bench links: till-terminal)" in capsys.readouterr().err

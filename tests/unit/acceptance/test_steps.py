"""Scenario steps on a physical bench (real drivers, nothing started but the printer tap's socket): what posrig
cannot automate becomes an operator prompt, what nobody can do is `NotOnThisBench` with its reason."""

from __future__ import annotations

import os
import select
import time

import pytest

from harness.acceptance import steps
from harness.core.bench import Bench
from harness.core.evidence import Evidence
from harness.core.rig import parse_rig
from harness.till.operator import close_consoles

RIG = """
name: steps-bench
network: {{mode: bench}}
devices:
  printer: {{kind: printer, mode: real, transport: tcp, address: "127.0.0.1:9", options: {{tap: "127.0.0.1:0"}}}}
  terminal: {{kind: terminal, mode: real, transport: tcp, address: "127.0.0.1:20007"}}
  till: {{kind: till, mode: real, driver: operator, transport: operator,
         options: {{input: "{folder}/answers", output: "{folder}/prompts", answer_timeout: 3}}}}
links:
  till-terminal: {{ends: [till, terminal], faultable: false, driver: bench, interfaces: [eth1, eth2]}}
"""


@pytest.fixture
def bench(tmp_path):
    rig = parse_rig(RIG.format(folder=tmp_path), tmp_path / "rig.yaml")
    b = Bench(rig, Evidence(tmp_path / "ev"))
    b.device("till")                    # the operator till, with the tapped printer and the real terminal
    screen = os.open(tmp_path / "prompts", os.O_RDONLY | os.O_NONBLOCK)
    b.screen = lambda: _read(screen)
    yield b
    b.close()
    os.close(screen)
    close_consoles()


def _read(fd: int, settle: float = 0.3) -> str:
    got, deadline = b"", time.monotonic() + settle
    while time.monotonic() < deadline:
        if select.select([fd], [], [], 0.05)[0]:
            got += os.read(fd, 4096)
    return got.decode()


def test_the_card_to_present_goes_into_the_sale_prompt(bench):
    steps.present_card(bench, "decline")
    assert bench.till.next_card == "decline"


def test_a_printer_fault_before_the_sale_is_an_operator_step(bench, tmp_path):
    with open(tmp_path / "answers", "w") as answers:
        answers.write("o\n")
    steps.printer_fault(bench, "paper_out", "before")
    assert "posrig: take the paper roll out of the printer" in bench.screen()
    with open(tmp_path / "answers", "w") as answers:
        answers.write("o\n")
    steps.clear_printer_fault(bench, "paper_out")
    assert "put the paper roll back" in bench.screen()


def test_an_unconfirmed_operator_step_is_not_on_this_bench(bench):
    bench.till.options["answer_timeout"] = 0.2
    with pytest.raises(steps.NotOnThisBench, match="did not confirm within 0.2s: open the printer cover"):
        steps.printer_fault(bench, "offline", "before")


def test_what_a_person_cannot_do_is_not_on_this_bench(bench):
    with pytest.raises(steps.NotOnThisBench, match="cannot be timed by hand on a physical printer"):
        steps.printer_fault(bench, "paper_out", "during")
    with pytest.raises(steps.NotOnThisBench, match="no way to produce printer fault 'jam'"):
        steps.printer_fault(bench, "jam", "before")


def test_a_watched_link_is_not_faulted(bench):
    from harness.acceptance.matrix import scenarios

    planned = next(s for s in scenarios(1.0) if s.id == "till-terminal/04-0F-lost/approve").faults
    with pytest.raises(steps.NotOnThisBench, match="'faultable: false' in the rig"):
        steps.arm_faults(bench, planned)
    assert bench.running("link") is None and not [d for d in bench.started if d.kind == "link"]


def test_the_cashier_abort_prompts_the_person(bench):
    steps.cashier_abort(bench.till)
    assert "press ABORT on the till now" in bench.screen()


def test_terminal_behaviours_need_the_emulated_terminal(bench):
    from harness.acceptance.matrix import TerminalSetup

    steps.set_up_terminal(bench, TerminalSetup())                  # the default asks nothing of the terminal
    with pytest.raises(steps.NotOnThisBench, match="only the emulated terminal can be told"):
        steps.set_up_terminal(bench, TerminalSetup(offline=True, floor_limit=500))
    with pytest.raises(steps.NotOnThisBench, match="presented 1.25 s after the terminal asks"):
        steps.present_card(bench, "approve", delay=1.25)
    assert steps.terminal_setup_problems(bench, TerminalSetup()) == []
    assert "never busy" in steps.terminal_setup_problems(bench, TerminalSetup(busy_after=30))[0]

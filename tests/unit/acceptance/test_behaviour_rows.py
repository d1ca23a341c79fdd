"""The matrix's behaviour rows (issue 14): offline approvals either side of the floor limit, declines of several
kinds, a busy terminal, a late cardholder, varied intermediate statuses; each with the card, terminal setup and
expectation the scenario runner and the oracle rely on."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

from harness.acceptance import steps
from harness.acceptance.matrix import TerminalSetup, behaviour_scenarios, scenarios
from harness.acceptance.scenario import FAULTED
from harness.core.cards import CARDS
from harness.terminal.display import DISPLAYS
from tests.support.ecr_client import Ecr, make_terminal  # noqa: F401 - fixture
from tests.support.scripted_host import acquirer  # noqa: F401 - fixture

EXPECTED = {
    # id: (card, expect_paid)
    "terminal-host/offline-within-floor/approve": ("approve", True),
    "terminal-host/offline-above-floor/approve": ("approve", False),
    "card/offline-only/approve": ("offline_only", True),
    "card/offline-only-above-floor/decline": ("offline_only", False),
    "card/insufficient-funds/decline": ("insufficient_funds", False),
    "card/issuer-unavailable/decline": ("issuer_unavailable", False),
    "card/wrong-pin/decline": ("wrong_pin", False),
    "card/removed-before-online/approve": ("card_removed", False),
    "card/removed-after-online/approve": ("removed_after_online", False),
    "terminal/busy/approve": ("approve", None),
    "card/presented-late/approve": ("approve", True),
    "terminal/statuses-chip-pin/approve": ("approve", True),
    "terminal/statuses-contactless/approve": ("approve", True),
    "terminal/statuses-dial-up/decline": ("decline", False),
    "till/cash-sale/approve": ("approve", None),          # cash: judged by scenario.cash_sale, no card payment
}


def test_the_behaviour_rows_are_in_the_matrix_with_their_card_and_expectation():
    rows = {s.id: s for s in behaviour_scenarios(0.05)}
    assert {i: (s.card, s.expect_paid) for i, s in rows.items()} == EXPECTED
    matrix = [s.id for s in scenarios(0.05)]
    assert set(EXPECTED) <= set(matrix)
    assert [i for i, n in Counter(matrix).items() if n > 1] == []
    assert all(s.card in CARDS for s in rows.values())
    assert all(s.terminal.display in ("", *DISPLAYS) for s in rows.values())
    assert len({s.terminal.display for s in rows.values()}) >= 4                  # several status sequences


def test_offline_rows_put_the_faulted_sale_either_side_of_the_floor_limit_with_the_host_down():
    rows = {s.id: s for s in behaviour_scenarios(0.05)}
    within = rows["terminal-host/offline-within-floor/approve"]
    above = rows["terminal-host/offline-above-floor/approve"]
    assert within.terminal.offline and within.terminal.floor_limit >= FAULTED
    assert above.terminal.offline and above.terminal.floor_limit < FAULTED
    for row in (within, above):
        [fault] = row.faults
        assert fault.spec.describe().startswith("blackhole connect terminal->host")
        assert fault.linger > 0
    assert rows["card/offline-only/approve"].terminal.floor_limit >= FAULTED
    assert rows["card/offline-only-above-floor/decline"].terminal.floor_limit < FAULTED
    assert CARDS["offline_only"].offline_only


def test_terminal_behaviours_other_rows_leave_the_terminal_as_it_was():
    rows = {s.id: s for s in behaviour_scenarios(0.05)}
    assert rows["terminal/busy/approve"].terminal.busy_after > 5.0                # longer than T3 (nominal)
    assert 5.0 < rows["card/presented-late/approve"].terminal.card_delay < 40.0    # past T3, inside the result timer
    assert all(not s.faults for i, s in rows.items() if not i.startswith("terminal-host/"))
    others = [s for s in scenarios(0.05) if s.id not in rows]
    assert all(s.terminal == TerminalSetup() and s.test_card == "" for s in others)
    assert all(s.card == s.outcome for s in others)                              # FOR_OUTCOME, as before


def test_the_setup_step_configures_the_emulated_terminal_and_proves_it_was_busy(make_terminal, acquirer):  # noqa: F811
    terminal = make_terminal()
    bench = SimpleNamespace(terminal=terminal)
    setup = TerminalSetup(offline=True, floor_limit=500, display="chip-pin", busy_after=30)
    steps.set_up_terminal(bench, setup)
    assert (terminal.core.offline, terminal.core.floor_limit, terminal.core.display.name) == (True, 500, "chip-pin")
    assert "never busy" in steps.terminal_setup_problems(bench, setup)[0]
    with Ecr(terminal.ecr_address) as before:
        assert before.converse(before.authorization(478)).completed     # then prints its merchant copy
    with Ecr(terminal.ecr_address) as faulted:
        faulted.send(faulted.authorization(488))
        assert faulted.receive().control == (0x84, 0xA0)
    assert steps.terminal_setup_problems(bench, setup) == []
    steps.present_card(bench, "decline", delay=0.01)
    assert terminal.core._cards.get_nowait()[0].name == "decline"

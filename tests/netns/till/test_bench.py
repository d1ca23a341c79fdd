"""The reference till on the emulated bench: its own process in the till namespace, the emulated ZVT terminal
(with the emulated acquirer host behind it) and the emulated ESC/POS printer. Uses the posrig `bench`
fixture, so the oracle reconciles every test at its end; a seeded-bug case opts out and asserts instead that the
oracle catches its bug."""

from __future__ import annotations

import threading
import time

import pytest

from harness.acceptance.scenario import sell_then_abort, wait_until_authorizing
from harness.core.events import wait_until
from tests.support.till_peers import BASKET, TOTAL

pytestmark = pytest.mark.needs_netns


@pytest.fixture
def profile_bench(bench, monkeypatch):
    """bench with the till profile chosen by the test: profile_bench("trust-abort")."""

    def choose(name: str):
        monkeypatch.setenv("POSRIG_TILL_PROFILE", name)
        return bench

    return choose


def settled(host) -> list:
    return list(host.ledger.settled_payments())


CAUGHT = {"print-on-timeout": "I1", "ignore-print-failure": "I2", "offline-as-approved": "I1",
          "retry-without-query": "I3", "print-before-completion": "I1", "trust-abort": "I2"}


def seeded(profile: str, *values):
    """A seeded-bug case: the end-of-test oracle would (rightly) fail it, so it asserts the catch itself."""
    return pytest.param(profile, *values, marks=pytest.mark.no_oracle(
        f"seeded bug {profile}: the test asserts that the oracle catches it ({CAUGHT[profile]})"))


def assert_caught(bench, profile: str) -> None:
    """A seeded bug's records break its invariant (the correct profile is left to the end-of-test oracle)."""
    if profile in CAUGHT:
        found = bench.reconcile()
        assert CAUGHT[profile] in found.broken, f"{profile} not caught: {found}"


def test_correct_sale_on_the_emulated_bench(profile_bench):
    bench = profile_bench("correct")
    till = bench.till
    out = till.sell(BASKET)
    assert out.status == "paid" and out.receipt == "printed", out
    assert out.masked_pan == "411111******1111" and out.auth_code
    receipt = bench.printer.receipts[-1]
    text = receipt.text if hasattr(receipt, "text") else str(receipt)
    assert "4.88" in text and out.auth_code in text and "4111111111111111" not in text
    assert len(settled(bench.host)) == 1
    ident = till.identity()
    assert ident["profile"] == "correct" and ident["till"]["profile"] == "correct"
    assert till.journal()[-1]["id"] == out.sale_id


def test_declined_card_prints_no_sale_receipt(profile_bench):
    bench = profile_bench("correct")
    till = bench.till
    bench.terminal.present_card("decline")
    out = till.sell(BASKET)
    assert out.status == "declined" and out.receipt == "none"
    assert bench.printer.receipts == [] and settled(bench.host) == []


def test_cash_sale_pulses_the_drawer(profile_bench):
    bench = profile_bench("correct")
    out = bench.till.sell(BASKET, "cash")
    assert out.status == "paid" and out.drawer_opened and out.receipt == "printed"
    assert len(bench.printer.receipts) == 1


@pytest.mark.parametrize("profile, prints", [("correct", False), seeded("print-on-timeout", True)])
def test_host_response_lost(profile_bench, profile, prints):
    """Stage 4: the host approves but its 0210 never arrives. The terminal times out and reverses."""
    bench = profile_bench(profile)
    till = bench.till
    bench.host.behave("silent", amount=TOTAL)
    out = till.sell(BASKET)
    assert (out.receipt == "printed") is prints, out
    assert (len(bench.printer.receipts) == 1) is prints
    assert out.status == ("paid" if prints else out.status) and (out.status != "paid") is (not prints)
    assert_caught(bench, profile)


@pytest.mark.parametrize("profile, charged_without_receipt",
                         [("correct", False), seeded("ignore-print-failure", True)])
def test_printer_offline(profile_bench, profile, charged_without_receipt):
    """Stage 9: the till cannot hand over goods. Correct answers 84 66 and the terminal reverses."""
    bench = profile_bench(profile)
    till = bench.till
    bench.printer.set_fault("offline")
    out = till.sell(BASKET)
    assert bench.printer.receipts == []
    assert (len(settled(bench.host)) == 1) is charged_without_receipt
    assert out.status == ("paid" if charged_without_receipt else "failed")
    if not charged_without_receipt:
        assert "goods-refused" in out.states
    assert_caught(bench, profile)


@pytest.mark.parametrize("profile, prints", [("correct", False), seeded("offline-as-approved", True)])
def test_host_unreachable(profile_bench, profile, prints):
    """Stage 3/13: the terminal cannot reach the host (no offline approval configured)."""
    bench = profile_bench(profile)
    till = bench.till
    bench.host.behave("silent", amount=TOTAL)
    out = till.sell(BASKET)
    assert out.terminal_result in (0xA1, 0xA3)
    assert (len(bench.printer.receipts) == 1) is prints and (out.status == "paid") is prints
    assert_caught(bench, profile)


def test_till_killed_mid_payment_recovers_from_its_journal(profile_bench):
    """Stage 8: the till dies after sending the payment. Restarted on the same journal, it asks the terminal
    and prints the receipt the customer is owed, once."""
    bench = profile_bench("correct")
    till = bench.till
    bench.host.behave("slow", delay_ms=6000, amount=TOTAL)          # 0.3 s at the emulated rig's scale
    failures: list = []

    def sell():
        try:
            till.sell(BASKET)
        except Exception as exc:  # noqa: BLE001 - the till is killed under it
            failures.append(exc)

    seller = threading.Thread(target=sell)
    seller.start()
    wait_until_authorizing(till)
    till.kill()
    seller.join(10)
    assert failures, "the sale should have been cut by the kill"
    def terminal_state():
        last = bench.terminal.journal.last("sale")     # None: the kill came before the 06 01 reached it
        return last["state"] if last else None

    deadline = time.monotonic() + 5
    while terminal_state() not in ("approved", "reversed", "failed") and time.monotonic() < deadline:
        time.sleep(0.05)
    till.restart()
    till.recover()
    sale = till.journal()[-1]
    assert sale["state"] in ("printed", "failed"), sale["state"]
    charged = len(settled(bench.host)) == 1
    assert (sale["status"] == "paid") is charged
    assert len(bench.printer.receipts) == (1 if charged else 0)


def test_cashier_abort_while_the_terminal_waits_for_the_card(profile_bench):
    """Stage 12 (no race): the cashier aborts before any card; the terminal stops, nothing is charged."""
    bench = profile_bench("correct")
    till = bench.till
    bench.terminal.auto_present = False
    out = sell_then_abort(till, BASKET, pause=0.1, timeout=15)
    assert out.status == "cancelled" and out.receipt == "none", out
    assert out.terminal_result == 0x6C and "abort-sent" in out.states
    assert bench.printer.receipts == [] and settled(bench.host) == []


@pytest.mark.parametrize("profile", ["correct", seeded("retry-without-query")])
def test_completion_lost_on_the_till_link(profile_bench, link, profile):
    """Stage 7: the host approved and the till booked, then the terminal's 06 0F never reaches the till (the
    link is cut there). Correct asks the terminal and prints once; retry-without-query pays twice."""
    bench = profile_bench(profile)
    till = bench.till
    fault = link["till-terminal"].inject("rst", stage="zvt:06 0F", direction="terminal->till", to="both")
    out = till.sell(BASKET)
    fault.wait_fired(5)
    payments = settled(bench.host)
    if profile == "correct":
        assert out.status == "paid" and out.receipt == "printed" and "query-answered" in out.states
        assert len(payments) == 1 and len(bench.printer.receipts) == 1
    else:
        assert "retrying" in out.states
        assert len(payments) == 2                            # the customer paid twice
    assert_caught(bench, profile)


def test_owed_receipt_is_reprinted_when_the_paper_is_back(profile_bench):
    """Stage 10: the printer runs out of paper; the sale stands, the receipt is owed and comes out later."""
    bench = profile_bench("correct")
    till = bench.till
    bench.printer.set_fault("paper_out")
    out = till.sell(BASKET, "cash")
    assert out.status == "paid" and out.receipt == "pending"
    assert bench.printer.receipts == []
    bench.printer.set_fault(None)
    bench.printer.wait_for_receipt(5)                       # the till's reprinter notices by itself
    text = bench.printer.receipts[-1].text
    assert "REPRINT" in text and "4.88" in text
    deadline = time.monotonic() + 5
    while till.journal()[-1]["receipt"] != "printed" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert till.journal()[-1]["receipt"] == "printed"


@pytest.mark.parametrize("profile, prints", [("correct", False), seeded("print-before-completion", True)])
def test_link_cut_right_after_the_approval(profile_bench, link, profile, prints):
    """Stage 6/7: the 04 0F (approved) reaches the till, then the link is reset before the till's answer gets
    back. The terminal cannot confirm the issue of goods and reverses. Only print-before-completion prints."""
    bench = profile_bench(profile)
    till = bench.till
    bench.terminal.configure(unconfirmed="reverse")
    fault = link["till-terminal"].inject("rst", stage="zvt:04 0F", direction="terminal->till", to="both",
                                         deliver=True)
    out = till.sell(BASKET)
    fault.wait_fired(5)
    assert (len(bench.printer.receipts) == 1) is prints, out
    assert (out.receipt == "printed") is prints
    assert out.status != "paid" or prints
    bench.terminal.flush_reversals()
    assert settled(bench.host) == []
    assert_caught(bench, profile)


@pytest.mark.parametrize("profile", ["correct", seeded("trust-abort")])
def test_cashier_abort_lost_on_the_link_while_the_host_approves(profile_bench, link, profile):
    """Stage 12 (the race): the cashier aborts while the host is deciding, and the 06 B0 never reaches the
    terminal (the till's stream to it stalls, so its 84 66 is lost too and the terminal books the payment).
    Correct keeps listening, sees the completion, asks, and sells what was paid; trust-abort walks away saying
    "cancelled" while the customer is charged."""
    bench = profile_bench(profile)
    till = bench.till
    bench.host.behave("slow", delay_ms=8000, amount=TOTAL)          # 0.4 s at the emulated rig's scale
    link["till-terminal"].inject("drop", stage="zvt:06 B0", direction="till->terminal")
    out = sell_then_abort(till, BASKET, pause=0.1, timeout=15)
    assert wait_until(lambda: not bench.terminal.core.in_progress, 10)   # the terminal finishes on its own
    bench.terminal.flush_reversals()
    charged = len(settled(bench.host))
    if profile == "correct":
        assert out.status == "paid" and out.receipt == "printed" and "query-answered" in out.states, out
        assert charged == 1 and len(bench.printer.receipts) == 1
    else:
        assert out.status == "cancelled" and out.receipt == "none" and bench.printer.receipts == []
        assert charged == 1                                          # cancelled, yet charged
    assert_caught(bench, profile)

"""The terminal against the rig's real acquirer (`EmulatedHost`), started by the bench in the emulated rig's
namespaces: the ECR connects from the till's node, the terminal reaches the host through the link node. For
every flow the Status-Information, the terminal journal and the host ledger agree.
"""

from __future__ import annotations

import time

import pytest

from tests.support.ecr_client import Ecr

pytestmark = pytest.mark.needs_netns


@pytest.fixture
def rig_terminal(bench):
    try:
        term = bench.terminal  # starts the EmulatedHost first (needs = ("host",))
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"bench cannot start: {exc}")
    return term


@pytest.fixture
def till_ecr(bench, rig_terminal):
    """An ECR connection from the till's namespace (loopback when there is no topology)."""
    topo = bench.topology
    sock = topo.nodes["till"].connect(rig_terminal.ecr_address, 5.0) if topo else None
    with Ecr(rig_terminal.ecr_address, sock=sock) as client:
        yield client


def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_placement_in_the_emulated_rig(bench, rig_terminal):
    if bench.topology is None:
        pytest.skip("no namespaces")
    assert rig_terminal.ecr_address == (bench.topology.ip("terminal"), 20007)


def test_approval_agrees_with_host_ledger(bench, rig_terminal, till_ecr):
    d = till_ecr.converse(till_ecr.authorization(1999))
    assert d.completed
    row = rig_terminal.journal.last("sale")
    payment = bench.host.ledger.payment(stan=row["stan"], terminal=rig_terminal.core.terminal_id)
    assert payment.state == "approved" and payment.amount == 1999 == d.status.amount
    assert payment.auth_code == row["auth_code"] == d.status.aid
    assert payment.pan == row["masked_pan"] == d.status.pan
    assert d.status.trace == row["trace"] and d.status.receipt_no == row["receipt_no"]


def test_decline_agrees_with_host_ledger(bench, rig_terminal, till_ecr):
    rig_terminal.present_card("insufficient_funds")
    d = till_ecr.converse(till_ecr.authorization(700))
    assert d.status.result_code == 51 and d.abort_code == 51
    row = rig_terminal.journal.last("sale")
    payment = bench.host.ledger.payment(stan=row["stan"], terminal=rig_terminal.core.terminal_id)
    assert payment.state == "declined" and row["state"] == "declined" and payment.code == "51"


def test_answer_lost_host_ledger_shows_the_reversal(bench, rig_terminal, till_ecr):
    bench.host.behave("silent", amount=4242)  # the host books the sale and never answers
    d = till_ecr.converse(till_ecr.authorization(4242))
    assert d.abort_code == 0xA1
    row = rig_terminal.journal.last("sale")
    ledger = bench.host.ledger
    assert wait_for(
        lambda: ledger.payment(stan=row["stan"], terminal=rig_terminal.core.terminal_id).state == "reversed"
    )
    assert wait_for(lambda: rig_terminal.journal.last("sale")["state"] == "reversed")
    assert [m["mti"] for m in ledger.messages(direction="rx")][-1] in ("0420", "0421")
    assert not ledger.holds_money(stan=row["stan"], terminal=rig_terminal.core.terminal_id)


def test_issue_of_goods_refused_is_reversed_at_the_host(bench, rig_terminal, till_ecr):
    d = till_ecr.converse(till_ecr.authorization(555), status_answer=b"\x84\x66\x00")
    assert d.abort_code == 0x66
    row = rig_terminal.journal.last("sale")
    assert wait_for(lambda: bench.host.ledger.payment(stan=row["stan"]).state == "reversed")


def test_end_of_day_totals_match_the_host(bench, rig_terminal, till_ecr):
    for amount in (1000, 250):
        assert till_ecr.converse(till_ecr.authorization(amount)).completed
    d = till_ecr.converse(bytes([0x06, 0x50, 0x03, 0x00, 0x00, 0x00]))
    assert d.completed and d.status.result_code == 0 and d.status.amount == 1250
    [batch] = bench.host.ledger.batches()
    assert batch["host_totals"] is not None
    assert all(p.state == "settled" for p in bench.host.ledger.payments())


def test_host_unreachable_agrees_with_host_ledger(bench, rig_terminal, till_ecr):
    ledger = bench.host.ledger
    before = len(ledger.payments())
    bench.host.close()  # the acquirer is gone
    d = till_ecr.converse(till_ecr.authorization(1500))
    assert d.abort_code == 0xA3 and d.status.result_code == 0xA3
    assert rig_terminal.journal.last("sale")["state"] == "failed"
    assert len(ledger.payments()) == before


def test_cashier_abort_leaves_no_payment_anywhere(bench, rig_terminal, till_ecr):
    rig_terminal.auto_present = False
    ecr = till_ecr
    ecr.send(ecr.authorization(100))
    ecr.expect_ack()
    assert ecr.receive().control == (0x04, 0xFF)
    ecr.ack()
    assert rig_terminal.abort()
    while True:
        m = ecr.receive()
        ecr.ack()
        if m.control == (0x06, 0x1E):
            assert m.data[0] == 0x6C
            break
    assert rig_terminal.journal.last("sale")["state"] == "aborted"
    assert bench.host.ledger.payments() == []


def test_repeated_request_charges_once(bench, rig_terminal, till_ecr):
    rig_terminal.present_card("approve", delay=0.8)  # well past T3 (0.25 s), when a busy terminal says 84 A0
    request = till_ecr.authorization(3100)
    till_ecr.send(request)
    till_ecr.expect_ack()
    till_ecr.send(request)  # the till repeats itself while the payment runs
    nacks, end = 0, None
    while end is None:
        m = till_ecr.receive()
        if m.cls == 0x84:
            nacks += 1  # 84 A0: not ready, no second payment
            continue
        till_ecr.ack()
        if m.control in ((0x06, 0x0F), (0x06, 0x1E)):
            end = m
    assert nacks == 1 and end.control == (0x06, 0x0F)
    assert [p.amount for p in bench.host.ledger.payments()] == [3100]
    assert len(rig_terminal.journal.transactions("sale")) == 1


def test_malformed_apdus_then_a_payment(bench, rig_terminal, till_ecr):
    till_ecr.send(b"\x42\x42\x42")
    assert till_ecr.receive().control == (0x84, 0x9A)
    assert till_ecr.converse(till_ecr.authorization(10)).completed
    assert [p.state for p in bench.host.ledger.payments()] == ["approved"]

"""Payment flows driven over ZVT by an independent ECR: the Status-Information, the terminal journal and the
acquirer's ledger must agree for every one.
"""

from __future__ import annotations

import threading
import time

from tests.support.ecr_client import Ecr, apdu, bcd

ACK = b"\x80\x00\x00"


def agree(status, journal_row, ledger_rows):
    """The three records of one approved sale say the same thing."""
    assert status.result_code == 0
    assert journal_row["state"] == "approved"
    assert status.amount == journal_row["amount"]
    assert status.trace == journal_row["trace"]
    assert status.receipt_no == journal_row["receipt_no"]
    assert status.aid == journal_row["auth_code"]
    assert status.pan == journal_row["masked_pan"]
    [entry] = [r for r in ledger_rows if r["stan"] == journal_row["stan"]]
    assert entry["state"] == "approved" and entry["amount"] == journal_row["amount"]
    assert entry["pan"] == journal_row["masked_pan"]


def test_approval(terminal, ecr, acquirer):
    d = ecr.converse(ecr.authorization(1999))
    assert d.completed
    st = d.status
    assert st.pan == "411111******1111"
    assert len(st.time) == 6 and len(st.date) == 4
    assert d.intermediate[0] == 0x0A  # insert card
    row = terminal.journal.last("sale")
    agree(st, row, acquirer.ledger())
    assert row["goods"] == "booked"


def test_decline_and_insufficient_funds(terminal, ecr, acquirer):
    terminal.present_card("decline")
    d = ecr.converse(ecr.authorization(500))
    assert d.status.result_code == 0x05 and d.abort_code == 0x05
    row = terminal.journal.last("sale")
    assert row["state"] == "declined" and row["host_rc"] == "05"
    terminal.present_card("insufficient_funds")
    d = ecr.converse(ecr.authorization(700))
    assert d.status.result_code == 51 and d.abort_code == 51
    states = [(r["stan"], r["state"]) for r in acquirer.ledger()]
    assert [s for _, s in states] == ["declined", "declined"]
    assert [r["stan"] for r in terminal.journal.transactions("sale")] == [s for s, _ in states]


def test_host_unreachable_aborts(make_terminal, acquirer, dead_host):
    term = make_terminal(host=dead_host.address)  # nobody listens there
    with Ecr(term.ecr_address) as ecr:
        d = ecr.converse(ecr.authorization(1200))
    assert d.abort_code == 0xA3
    assert d.status.result_code == 0xA3  # the card was read: status tells the outcome
    assert term.journal.last("sale")["state"] == "failed"
    assert acquirer.ledger() == []


def test_answer_lost_is_reversed_on_a_fresh_connection_and_the_late_answer_never_counts(terminal, ecr, acquirer):
    acquirer.delay["0210"] = 0.5 * 3  # answer after the terminal's host timeout (0.5 s)
    d = ecr.converse(ecr.authorization(4242))
    assert d.abort_code == 0xA1
    assert acquirer.wait_for(lambda: "0420" in acquirer.mtis())
    assert acquirer.wait_for(lambda: terminal.journal.last("sale")["state"] == "reversed")
    row = terminal.journal.last("sale")
    [entry] = acquirer.ledger()
    assert entry["stan"] == row["stan"] and entry["state"] == "reversed"
    assert row["reversal"] == "acknowledged" and row["reversal_reason"] == "68"
    # the terminal hung up on the silent connection: the late 0210 goes to a closed socket, the journal is unchanged
    import time

    time.sleep(1.0)
    assert [m["t"] for m in terminal.core.host.ignored] == []
    assert terminal.journal.last("sale")["state"] == "reversed"


def test_reversal_repeated_until_acknowledged_before_next_sale(terminal, ecr, acquirer):
    acquirer.drop_responses("0210")
    acquirer.drop_responses("0430", 2)  # the 0420 and the first 0421 go unanswered
    terminal.set_timer("reversal_retry", 60)  # only the next sale may flush it
    d = ecr.converse(ecr.authorization(1000))
    assert d.abort_code == 0xA1
    assert terminal.journal.last("sale")["state"] == "reversal_pending"
    d = ecr.converse(ecr.authorization(2000))
    assert d.completed
    mtis = acquirer.mtis()
    assert mtis[:2] == ["0200", "0420"]
    assert mtis.index("0421") < len(mtis) - 1 - mtis[::-1].index("0200")  # reversal settled before the sale
    first, second = terminal.journal.transactions("sale")
    assert first["state"] == "reversed" and second["state"] == "approved"
    ledger = {r["stan"]: r["state"] for r in acquirer.ledger()}
    assert ledger == {first["stan"]: "reversed", second["stan"]: "approved"}
    [saf] = terminal.journal.saf_all()
    assert saf["state"] == "acknowledged" and saf["attempts"] >= 2


def test_repeated_request_while_busy_is_refused(terminal, ecr, acquirer):
    terminal.auto_present = False
    request = ecr.authorization(3300)
    ecr.send(request)
    ecr.expect_ack()
    assert ecr.receive().control == (0x04, 0xFF)  # insert card
    ecr.ack()
    ecr.send(request)  # the till repeats the same request
    got = ecr.receive()
    assert (got.cls, got.ins) == (0x84, 0xA0)  # receiver not ready: no second payment
    terminal.present_card("approve")
    msgs = []
    while not msgs or msgs[-1].control not in ((0x06, 0x0F), (0x06, 0x1E)):
        msgs.append(ecr.receive())
        ecr.ack()
    assert msgs[-1].control == (0x06, 0x0F)
    assert len(acquirer.ledger()) == 1 and len(terminal.journal.transactions("sale")) == 1


def test_cashier_abort_while_waiting_for_card(terminal, ecr, acquirer):
    terminal.auto_present = False
    threading.Timer(0.2, terminal.abort).start()
    d = ecr.converse(ecr.authorization(100))
    assert d.abort_code == 0x6C and d.status is None
    assert terminal.journal.last("sale")["state"] == "aborted"
    assert acquirer.ledger() == []


def test_ecr_abort_06_b0(terminal, ecr, acquirer):
    terminal.auto_present = False
    ecr.send(ecr.authorization(100))
    ecr.expect_ack()
    assert ecr.receive().control == (0x04, 0xFF)
    ecr.ack()
    ecr.send(apdu(0x06, 0xB0))
    ends = []
    while True:
        m = ecr.receive()
        ends.append(m.control)
        if m.control == (0x06, 0x1E):
            assert m.data[0] == 0x6C
            ecr.ack()
            break
    assert (0x80, 0x00) in ends  # the 06 B0 was acknowledged
    assert terminal.journal.last("sale")["state"] == "aborted"


def test_abort_during_host_wait_reverses_the_approval(terminal, ecr, acquirer):
    acquirer.delay["0210"] = 0.2
    terminal.present_card("approve")
    threading.Timer(0.1, terminal.abort).start()
    d = ecr.converse(ecr.authorization(900))
    assert d.abort_code == 0x6C
    assert acquirer.wait_for(lambda: acquirer.ledger() and acquirer.ledger()[0]["state"] == "reversed")
    assert acquirer.wait_for(lambda: terminal.journal.last("sale")["state"] == "reversed")


def test_malformed_apdus_keep_the_terminal_serving(terminal, ecr, acquirer):
    ecr.send(b"\x17\x42\x99garbage")  # unknown class
    assert ecr.receive().control == (0x84, 0x9A)
    ecr.send(apdu(0x06, 0x01, b"\x04\x00\x00"))  # amount BMP cut short
    assert ecr.receive().control == (0x84, 0x9A)
    ecr.send(apdu(0x06, 0x01, b"\x04" + bcd(100, 6) + b"\x77\x01"))  # unknown BMP 77
    assert ecr.receive().control == (0x84, 0x9A)
    ecr.send(apdu(0x06, 0x99))  # unknown command
    assert ecr.receive().control == (0x84, 0x83)
    ecr.send(b"\x06\x01\xff\xff\xff")  # extended length of 65535: refused, dropped
    assert ecr.receive().control == (0x84, 0x9A)
    half = ecr.authorization(1500)
    ecr.send(half[:4])  # half an APDU, then the rest
    time.sleep(0.05)
    ecr.send(half[4:])
    ecr.expect_ack()
    msgs = []
    while not msgs or msgs[-1].control not in ((0x06, 0x0F), (0x06, 0x1E)):
        msgs.append(ecr.receive())
        ecr.ack()
    assert msgs[-1].control == (0x06, 0x0F)
    # a second connection after all this still works
    with Ecr(terminal.ecr_address) as other:
        assert other.converse(other.authorization(10)).completed
    assert [r["state"] for r in acquirer.ledger()] == ["approved", "approved"]


def test_extended_length_request_is_understood(terminal, ecr):
    text = ("x" * 300).encode()
    extra = b"\x3c" + bytes([0xF0 | 3, 0xF0 | 0, 0xF0 | 0]) + text  # additional data, LLLVAR 300
    raw = ecr.authorization(1234, extra=extra)
    assert raw[2] == 0xFF  # FF LL HH form
    d = ecr.converse(raw)
    assert d.completed and d.status.amount == 1234


def test_issue_of_goods(terminal, ecr, acquirer):
    # 84 66: the till cannot hand over the goods -> the terminal reverses
    d = ecr.converse(ecr.authorization(800), status_answer=b"\x84\x66\x00")
    assert d.abort_code == 0x66
    first = terminal.journal.last("sale")
    assert first["goods"] == "refused"
    assert acquirer.wait_for(lambda: terminal.journal.get(first["id"])["state"] == "reversed")
    # 84 9C: wait, the status is repeated, then 80 00 books it
    d = ecr.converse(ecr.authorization(900), status_answer=[b"\x84\x9c\x00", b"\x84\x9c\x00", ACK])
    assert d.completed and len(d.statuses) == 3
    second = terminal.journal.last("sale")
    assert second["goods"] == "booked" and second["state"] == "approved"
    ledger = {r["stan"]: r["state"] for r in acquirer.ledger()}
    assert ledger == {first["stan"]: "reversed", second["stan"]: "approved"}


def test_unconfirmed_status_is_booked_or_reversed_by_policy(terminal, ecr, acquirer):
    d = ecr.converse(ecr.authorization(100), status_answer=b"")  # the till never answers the 04 0F
    assert d.completed
    assert terminal.journal.last("sale")["goods"] == "unconfirmed"
    terminal.configure(unconfirmed="reverse")
    d = ecr.converse(ecr.authorization(200), status_answer=b"")
    assert d.abort_code == 0x6C
    assert acquirer.wait_for(lambda: [r["state"] for r in acquirer.ledger()] == ["approved", "reversed"])


def test_card_side_failures(terminal, ecr, acquirer):
    terminal.present_card("wrong_pin")
    d = ecr.converse(ecr.authorization(100))
    assert 0x15 in d.intermediate and d.abort_code == 0x37
    terminal.present_card("card_removed")
    d = ecr.converse(ecr.authorization(100))
    assert d.abort_code == 0x64
    assert acquirer.ledger() == []  # neither went online
    terminal.present_card("removed_after_online")  # host approves, the card is gone: auto-reversal
    d = ecr.converse(ecr.authorization(100))
    assert d.abort_code == 0x64
    assert acquirer.wait_for(lambda: [r["state"] for r in acquirer.ledger()] == ["reversed"])
    assert [r["state"] for r in terminal.journal.transactions("sale")][:2] == ["declined", "failed"]


def test_card_presented_after_delay(terminal, ecr):
    terminal.present_card("approve", delay=0.3)
    t0 = time.monotonic()
    d = ecr.converse(ecr.authorization(100))
    assert d.completed and time.monotonic() - t0 >= 0.3


def test_card_timeout_from_ecr(terminal, ecr):
    terminal.auto_present = False
    d = ecr.converse(ecr.authorization(100, timeout_s=4))  # 4 s nominal = 0.2 s at scale 0.05
    assert d.abort_code == 0x6C


def test_offline_approval_within_floor_limit(make_terminal, dead_host):
    from tests.support.scripted_host import REFUSING_HOST_TIMERS

    term = make_terminal(offline=True, floor_limit=2500, host=dead_host.address, timers=REFUSING_HOST_TIMERS)
    with Ecr(term.ecr_address) as ecr:
        d = ecr.converse(ecr.authorization(2000))
        assert d.completed
        assert d.status.bmps[0x3C] == b"OFFLINE Y3"  # marked offline in the result
        d = ecr.converse(ecr.authorization(3000))  # above the floor limit: no offline approval
        assert d.abort_code == 0xA3
        term.present_card("offline_only")
        d = ecr.converse(ecr.authorization(1000))
        assert d.completed and d.status.bmps[0x3C] == b"OFFLINE Y1"
    rows = term.journal.transactions("sale")
    assert [(r["state"], r["offline"]) for r in rows] == [("approved", 1), ("failed", 0), ("approved", 1)]
    assert [s["kind"] for s in term.journal.saf_pending()] == ["advice", "advice"]


def test_offline_advices_reach_the_host_later(make_terminal, dead_host):
    from tests.support.scripted_host import ScriptedHost

    term = make_terminal(offline=True, floor_limit=5000, host=dead_host.address)
    with Ecr(term.ecr_address) as ecr:
        assert ecr.converse(ecr.authorization(1500)).completed
    dead_host.release()
    late = ScriptedHost(bind=dead_host.address)
    try:
        assert term.flush_reversals(5.0)
        assert [r["mti"] for r in late.ledger()] == ["0220"]
        assert late.ledger()[0]["amount"] == 1500 and late.ledger()[0]["rc"] == "Y3"
    finally:
        late.close()


def test_journal_survives_restart_and_resumes_reversal(make_terminal, tmp_path, acquirer):
    journal = str(tmp_path / "durable.sqlite")
    acquirer.drop_responses("0210")
    acquirer.drop_responses("0430", 1)
    first = make_terminal(name="t1", journal=journal, timers={"reversal_retry": 600})
    with Ecr(first.ecr_address) as ecr:
        assert ecr.converse(ecr.authorization(5000)).abort_code == 0xA1
    assert first.journal.saf_pending()
    first.close()
    second = make_terminal(name="t2", journal=journal)
    assert second.flush_reversals(3.0)
    assert acquirer.mtis().count("0421") == 1
    assert second.journal.last("sale")["state"] == "reversed"
    assert [r["state"] for r in acquirer.ledger()] == ["reversed"]


def test_every_timer_scales_with_the_rig(terminal, ecr, acquirer):
    core = terminal.core
    assert core.seconds("t3") == 5.0 * 0.05 and core.seconds("host") == 10.0 * 0.05
    assert core.host.timeout == 0.5
    terminal.set_timer("host", 60)  # 3 s at scale 0.05: a 0.8 s answer is in time
    assert core.host.timeout == 60 * 0.05
    acquirer.delay["0210"] = 0.8
    assert ecr.converse(ecr.authorization(100)).completed


def test_close_leaves_no_thread_behind(make_terminal):
    term = make_terminal(name="short-lived")
    term.auto_present = False
    ecr = Ecr(term.ecr_address)
    ecr.send(ecr.authorization(100))  # a payment waiting for a card when closing
    ecr.expect_ack()
    term.close()
    ecr.close()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        left = [t.name for t in threading.enumerate() if t.name.startswith(("zvt-", "terminal-"))]
        if not left:
            break
        time.sleep(0.05)
    assert left == []


def test_transcript_is_decoded_and_readable(terminal, ecr, tmp_path):
    """Every APDU is in the transcript, hex intact (not mangled by the PAN masker) and decoded, PAN masked."""
    import json

    from harness.core.masking import find_unmasked_pans

    assert ecr.converse(ecr.authorization(200000)).completed  # BCD digits that once looked like a PAN
    text = (tmp_path / "evidence" / "terminal.jsonl").read_text()
    records = [json.loads(line) for line in text.splitlines()]
    status = [r for r in records if r.get("decoded", "").startswith("status_information")][0]
    raw = bytes.fromhex(status["apdu"].replace(":", ""))
    assert raw[:2] == b"\x04\x0f" and len(raw) == raw[2] + 3
    assert "pan=411111******1111" in status["decoded"]
    assert find_unmasked_pans(text) == []
    assert {"sale_started", "card_presented", "sale_approved", "issue_of_goods"} <= {
        r["event"] for r in records
    }

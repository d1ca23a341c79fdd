"""The other ZVT commands: Registration, Status Enquiry, Repeat Receipt, Reversal, End-of-Day, print lines."""

from __future__ import annotations

from harness.core.masking import find_unmasked_pans
from tests.support.ecr_client import Ecr, apdu, bcd, parse_bmps, unbcd

PASSWORD = b"\x00\x00\x00"


def test_registration_completion_carries_tid_and_currency(terminal, ecr):
    d = ecr.converse(Ecr.registration(config_byte=0x08, currency=978))
    assert d.completed
    bmps = parse_bmps(d.end.data)
    assert bmps[0x19] == b"\x00" and bmps[0x29].hex() == "29001234" and unbcd(bmps[0x49]) == 978


def test_registration_with_wrong_currency_is_refused(terminal, ecr):
    d = ecr.converse(Ecr.registration(currency=840))
    assert d.abort_code == 0x6F


def test_status_enquiry(terminal, ecr):
    d = ecr.converse(apdu(0x05, 0x01, PASSWORD))
    assert d.completed
    data = d.end.data
    n = (data[0] & 0xF) * 100 + (data[1] & 0xF) * 10 + (data[2] & 0xF)  # LLLVAR sw-version
    assert data[3 : 3 + n].decode().startswith("posrig")
    assert data[3 + n] == 0x00  # terminal ready


def test_receipt_lines_when_registered_for_ecr_printing(terminal, ecr, acquirer):
    # 02: the ECR prints payment receipts; 80 (ECR print-type): as print lines 06 D1
    assert ecr.converse(Ecr.registration(config_byte=0x80 | 0x08 | 0x02)).completed
    d = ecr.converse(ecr.authorization(1999))
    assert d.completed
    lines = d.print_lines
    text = "\n".join(t for _, t in lines)
    assert "APPROVED" in text and "411111******1111" in text and "AMOUNT EUR 19.99" in text
    assert "2812" not in text  # no expiry date on a receipt
    assert all(attr == 0x00 for attr, _ in lines[:-1]) and lines[-1][0] & 0x80 and lines[-1][0] != 0xFF
    assert find_unmasked_pans(text) == []
    # not registered for printing: no lines
    assert ecr.converse(Ecr.registration(config_byte=0x08)).completed
    assert ecr.converse(ecr.authorization(100)).print_lines == []


def test_declined_receipt_says_so(make_terminal):
    term = make_terminal(ecr_receipts=True)
    term.present_card("decline")
    with Ecr(term.ecr_address) as ecr:
        d = ecr.converse(ecr.authorization(500))
    assert d.abort_code == 0x05
    assert any("NOT APPROVED" in t for _, t in d.print_lines)


def test_repeat_receipt_reports_the_last_outcome(terminal, ecr, acquirer):
    assert ecr.converse(apdu(0x06, 0x20, PASSWORD)).abort_code == 0x83  # nothing to repeat yet
    first = ecr.converse(ecr.authorization(1234))
    again = ecr.converse(apdu(0x06, 0x20, PASSWORD))
    assert again.completed
    assert again.status.bmps == first.status.bmps  # the same Status-Information
    # a lost answer: the repeat says it failed, so the till must not print a sale receipt
    acquirer.drop_responses("0210")
    assert ecr.converse(ecr.authorization(777)).abort_code == 0xA1
    st = ecr.converse(apdu(0x06, 0x20, PASSWORD)).status
    assert st.result_code == 0xA1 and st.amount == 777


def test_reversal_06_30_of_a_receipt(terminal, ecr, acquirer):
    sale = ecr.converse(ecr.authorization(2500)).status
    d = ecr.converse(apdu(0x06, 0x30, PASSWORD + b"\x87" + bcd(sale.receipt_no, 2)))
    assert d.completed and d.status.result_code == 0 and d.status.amount == 2500
    assert unbcd(d.status.bmps[0x37]) == sale.trace  # original trace
    assert acquirer.mtis()[-1] == "0400"
    assert [r["state"] for r in acquirer.ledger()] == ["reversed"]
    rows = terminal.journal.transactions()
    assert [(r["kind"], r["state"]) for r in rows] == [("sale", "voided"), ("void", "approved")]
    again = ecr.converse(apdu(0x06, 0x30, PASSWORD + b"\x87" + bcd(sale.receipt_no, 2)))
    assert again.abort_code == 0xB4  # already reversed
    assert ecr.converse(apdu(0x06, 0x30, PASSWORD + b"\x87" + bcd(99, 2))).abort_code == 0x83


def test_end_of_day_settles_after_owed_reversals(terminal, ecr, acquirer):
    assert ecr.converse(ecr.authorization(1000)).completed
    acquirer.drop_responses("0210")
    assert ecr.converse(ecr.authorization(300)).abort_code == 0xA1
    terminal.present_card("removed_after_online")
    ecr.converse(ecr.authorization(50))
    assert ecr.converse(ecr.authorization(250)).completed
    d = ecr.converse(apdu(0x06, 0x50, PASSWORD))
    assert d.completed
    assert d.status.result_code == 0 and d.status.amount == 1250
    totals = d.status.bmps[0x60]
    assert unbcd(totals[0:2]) == 1 and unbcd(totals[2:4]) == 4  # receipts 1..4
    visa = totals[4 + 4 * 7 : 4 + 5 * 7]
    assert visa[0] == 2 and unbcd(visa[1:]) == 1250
    mtis = acquirer.mtis()
    assert mtis[-1] == "0500"
    assert "0420" in mtis and mtis.index("0420") < mtis.index("0500")
    eod = terminal.journal.last("end_of_day")
    assert eod["state"] == "approved" and eod["amount"] == 1250
    sent = [m for m in acquirer.received if m["t"] == "0500"][0]
    assert int(sent["76"]) == 2 and int(sent["88"]) == 1250


def test_end_of_day_refused_while_host_down(make_terminal, dead_host):
    term = make_terminal(host=dead_host.address)
    with Ecr(term.ecr_address) as ecr:
        d = ecr.converse(apdu(0x06, 0x50, PASSWORD))
    assert d.abort_code == 0xA3


def test_intermediate_status_limited_by_ecr(terminal, ecr):
    d = ecr.converse(ecr.authorization(100, extra=b"\x02\x01"))  # BMP 02: at most 1 status
    assert d.completed and len(d.intermediate) == 1
    assert ecr.converse(Ecr.registration(config_byte=0x00)).completed  # no intermediate status wanted
    assert ecr.converse(ecr.authorization(100)).intermediate == []


def test_repeat_receipt_after_an_abort_does_not_show_the_older_approval(terminal, ecr, acquirer):
    import threading

    assert ecr.converse(ecr.authorization(1000)).completed
    terminal.auto_present = False
    threading.Timer(0.1, terminal.abort).start()
    assert ecr.converse(ecr.authorization(2000)).abort_code == 0x6C
    st = ecr.converse(apdu(0x06, 0x20, PASSWORD)).status
    assert st.result_code == 0x6C and st.amount == 2000 and 0x22 not in st.bmps


def test_abort_while_the_till_holds_the_goods_reverses(terminal, ecr, acquirer):
    import threading

    terminal.set_timer("goods_retry", 4)  # 0.2 s between repeats
    threading.Timer(0.3, terminal.abort).start()
    d = ecr.converse(ecr.authorization(600), status_answer=b"\x84\x9c\x00")  # the till keeps saying "wait"
    assert d.abort_code == 0x6C
    assert acquirer.wait_for(lambda: [r["state"] for r in acquirer.ledger()] == ["reversed"])
    assert acquirer.wait_for(lambda: terminal.journal.last("sale")["state"] == "reversed")


def test_void_of_an_offline_sale(make_terminal, dead_host):
    from harness.terminal.core import TIMERS
    from tests.support.scripted_host import REFUSING_HOST_TIMERS, ScriptedHost

    term = make_terminal(
        offline=True, floor_limit=5000, host=dead_host.address, timers={"reversal_retry": 600, **REFUSING_HOST_TIMERS}
    )
    with Ecr(term.ecr_address) as ecr:
        kept = ecr.converse(ecr.authorization(1000)).status  # offline, advice owed
        withdrawn = ecr.converse(ecr.authorization(2000)).status
        d = ecr.converse(apdu(0x06, 0x30, PASSWORD + b"\x87" + bcd(withdrawn.receipt_no, 2)))
        assert d.completed  # never reached the host: the advice is simply withdrawn
        for name in REFUSING_HOST_TIMERS:  # a host that answers comes up: the usual timers from here on
            term.set_timer(name, TIMERS[name])
        dead_host.release()
        host = ScriptedHost(bind=dead_host.address)
        try:
            assert term.flush_reversals(5.0)
            assert [(r["mti"], r["amount"]) for r in host.ledger()] == [("0220", 1000)]
            d = ecr.converse(apdu(0x06, 0x30, PASSWORD + b"\x87" + bcd(kept.receipt_no, 2)))
            assert d.completed  # delivered already: reversed at the host with a 0420 naming the 0220
            assert host.wait_for(lambda: [r["state"] for r in host.ledger()] == ["reversed"])
            reversal = [m for m in host.received if m["t"] == "0420"][0]
            assert reversal["90"].startswith("0220")
        finally:
            host.close()


def test_link_drop_mid_payment_then_query(terminal, acquirer):
    """The till loses the connection while the payment runs; it reconnects and asks with 06 20."""
    import time

    terminal.present_card("approve", delay=0.3)
    first = Ecr(terminal.ecr_address)
    first.send(first.authorization(4400))
    first.expect_ack()
    first.close()  # the link drops while the terminal waits for the card
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (terminal.journal.last("sale") or {}).get("goods") is None:
        time.sleep(0.02)
    row = terminal.journal.last("sale")
    assert row["state"] == "approved" and row["goods"] == "unconfirmed"  # booked: the host has the money
    with Ecr(terminal.ecr_address) as again:
        st = again.converse(apdu(0x06, 0x20, PASSWORD)).status
    assert st.result_code == 0 and st.amount == 4400 and st.trace == row["trace"]
    assert [r["state"] for r in acquirer.ledger()] == ["approved"]


def test_link_drop_mid_payment_with_reverse_policy(make_terminal, acquirer):
    import time

    term = make_terminal(unconfirmed="reverse")
    term.present_card("approve", delay=0.3)
    first = Ecr(term.ecr_address)
    first.send(first.authorization(4500))
    first.expect_ack()
    first.close()
    assert acquirer.wait_for(lambda: [r["state"] for r in acquirer.ledger()] == ["reversed"])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and term.journal.last("sale")["state"] != "reversed":
        time.sleep(0.02)
    with Ecr(term.ecr_address) as again:
        st = again.converse(apdu(0x06, 0x20, PASSWORD)).status
    assert st.result_code == 0x6C and st.amount == 4500  # the till must not print a sale receipt


def test_a_stale_request_and_its_abort_touch_neither_the_running_payment_nor_the_next(terminal, ecr, acquirer):
    """A till gave up on a request whose bytes were held on the link; they arrive late, the 06 01 with its own
    06 B0 right behind, on their old connection, while the next customer pays on another. The terminal is busy:
    the late 06 B0 withdraws its own request, not the running payment, and the late request never starts (no
    payment nobody waits for, paid with the next customer's card)."""
    import threading
    import time

    terminal.present_card("approve", delay=0.4)              # the next customer's card, read a little later
    current = Ecr(terminal.ecr_address)
    done: list = []
    paying = threading.Thread(target=lambda: done.append(current.converse(current.authorization(669))))
    paying.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (terminal.journal.last("sale") or {}).get("state") != "started":
        time.sleep(0.01)
    stale = Ecr(terminal.ecr_address)
    stale.send(stale.authorization(488) + apdu(0x06, 0xB0))   # both at once, as a retransmission delivers them
    stale.close()                                            # the till hung up long ago
    paying.join(10)
    assert done and done[0].completed and done[0].status.amount == 669, "the running payment was aborted"
    time.sleep(0.3)
    sales = [t for t in terminal.journal.transactions() if t["kind"] == "sale"]
    assert [(t["amount"], t["state"]) for t in sales] == [(669, "approved")]
    assert [r["amount"] for r in acquirer.ledger()] == [669]
    current.close()


def test_a_late_abort_after_its_own_payment_ended_leaves_the_next_payment_alone(terminal, ecr, acquirer):
    """The till's 06 B0 was held on the link behind its payment's answers; the payment ended (the terminal went
    on), then the retransmission delivers the abort on the old connection while the next customer pays on a new
    one. That payment is not the old connection's to end."""
    import threading
    import time

    first = Ecr(terminal.ecr_address)
    assert first.converse(first.authorization(488)).completed       # this connection's payment has ended
    terminal.present_card("approve", delay=0.4)
    current = Ecr(terminal.ecr_address)
    done: list = []
    paying = threading.Thread(target=lambda: done.append(current.converse(current.authorization(669))))
    paying.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (terminal.journal.last("sale") or {}).get("amount") != 669:
        time.sleep(0.01)
    first.send(apdu(0x06, 0xB0))                                     # the late abort, on the old connection
    paying.join(10)
    assert done and done[0].completed and done[0].status.amount == 669, "the late abort ended the next payment"
    assert sorted(r["amount"] for r in acquirer.ledger() if r["state"] == "approved") == [488, 669]
    first.close()
    current.close()

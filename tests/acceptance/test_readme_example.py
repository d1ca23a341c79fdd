"""The example in README.md, verbatim: a test repository's first posrig test (keep the two in step)."""

import pytest

pytestmark = [pytest.mark.acceptance, pytest.mark.needs_netns]


def test_no_receipt_when_the_approval_is_lost(till, link, printer, host, terminal):
    with link["terminal-host"].inject("drop", stage="0210", direction="host->terminal"):
        sale = till.sell([{"sku": "milk", "name": "Milk 1l", "price": "1.19"}])
    assert sale.status != "paid" and sale.receipt == "none"
    assert printer.receipts == []
    assert terminal.flush_reversals()                  # the terminal delivers its reversal (0420) to the host
    assert not host.ledger.settled_payments()          # so the acquirer holds nothing

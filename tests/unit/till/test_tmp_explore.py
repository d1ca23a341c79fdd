import pytest
from conftest import BASKET, TOTAL

@pytest.mark.parametrize("profile", ["correct", "print-before-completion", "ignore-print-failure", "offline-as-approved"])
@pytest.mark.parametrize("case", ["removed_after_online", "printer_offline", "printer_paper_out", "host_down", "offline_only"])
def test_explore(bench, monkeypatch, profile, case):
    monkeypatch.setenv("POSRIG_TILL_PROFILE", profile)
    till = bench.till
    if case == "removed_after_online":
        bench.terminal.present_card("removed_after_online")
    elif case == "printer_offline":
        bench.printer.set_fault("offline")
    elif case == "printer_paper_out":
        bench.printer.set_fault("paper_out")
    elif case == "host_down":
        bench.host.behave("close")
    elif case == "offline_only":
        bench.terminal.present_card("offline_only")
    out = till.sell(BASKET)
    print("\nRESULT", profile, case, out.status, out.receipt, out.offline, hex(out.terminal_result or 0), out.message, out.states,
          "printed:", len(bench.printer.receipts), "settled:", len(list(bench.host.ledger.settled_payments())))

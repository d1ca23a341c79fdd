"""A warm bench is reset between scenarios: one scenario leaves a mess on its bench slot (a held 0210, a reversal
still owed, an armed fault that never fired, a printer out of paper, a half-open connection into the terminal, half
a ZVT APDU), and the next scenario on the same slot, served by the same till process, starts clean and ends as it
would on a fresh bench.
"""

import json

import pytest

from harness.acceptance.matrix import scenarios
from harness.acceptance.pool import ScenarioPool
from harness.acceptance.scenario import BASKET
from harness.acceptance.verdict import Verdict
from harness.core.bench import Bench
from harness.core.events import wait_until
from harness.core.evidence import Evidence

pytestmark = [pytest.mark.acceptance, pytest.mark.needs_netns,
              pytest.mark.no_oracle("the pool's scenarios are reconciled by run_scenario; the test asserts them")]


def _json(folder, name):
    return json.loads((folder / name).read_text())


def test_the_next_scenario_on_a_slot_starts_clean(rig, tmp_path):
    pool = ScenarioPool(rig, size=1)
    slot = pool.slots[0]
    topology = slot.ensure_topology()
    if topology is None:
        pytest.skip("needs the emulated topology")
    try:
        mess = Bench(rig, Evidence(tmp_path / "mess"), topology, keeper=slot.keeper, carried=slot.carried)
        mess.start()
        till, terminal, printer = mess.till, mess.terminal, mess.printer
        host_link, till_link = mess.links["terminal-host"], mess.links["till-terminal"]
        # The 0210 is held far past the terminal's timer, and every reversal dropped: a reversal stays owed.
        held = host_link.inject("hold", stage="0210", direction="host->terminal", ms=600_000)
        host_link.inject("drop", stage="0420", direction="terminal->host", occurrence="every")
        till_link.inject("drop", stage="zvt:06 D1", direction="terminal->till", required=False)  # never fires
        outcome = till.sell(BASKET)
        assert outcome.status != "paid"
        assert held.fired, "the 0210 was never held"
        assert wait_until(lambda: any(r["state"] != "acknowledged" for r in terminal.journal.saf_all()), 5.0), \
            "no reversal left owed: the mess is not made"
        printer.set_fault("paper_out")
        stray = topology.nodes["till"].connect(terminal.ecr_address)       # half-open: never closed by us
        stray.sendall(b"\x06\x01\x0a\x04")                                  # half a payment request
        mess_pid = till.process.pid
        mess_trace = max(t.get("trace") or 0 for t in terminal.journal.transactions())
        slot.keeper.keep_next = True                  # as after a clean scenario: the till is kept
        assert not mess.close()
        topology.drop_connections()

        clean = next(s for s in scenarios(rig.timing.scale) if s.id == "terminal-host/0210-slow/approve")
        record = pool.submit(clean, tmp_path / "next").future.result(120)
        ev = tmp_path / "next"
        assert record.verdict is Verdict.OK, record.violations or record.observed
        served = _json(ev, "till.json")
        assert served["pid"] == mess_pid and served["scenarios_before"] == 1, served    # the same till, warm
        sales = _json(ev, "till-journal.json")["sales"]                  # only its own sales: 4.78, 4.88, 6.69
        assert [(s["amount_cents"], s["status"]) for s in sales] == [(478, "paid"), (488, "paid"), (669, "paid")]
        ledger = _json(ev, "host-ledger.json")["payments"]
        assert [(p["mti"], p["state"]) for p in ledger] == [("0200", "approved")] * 3, ledger  # no 0420 of the mess
        journal = _json(ev, "terminal-journal.json")
        assert journal["store_and_forward"] == [], "the owed reversal reached the next scenario"
        assert [(t["kind"], t["state"]) for t in journal["transactions"]] == [("sale", "approved")] * 3
        assert journal["transactions"][0]["trace"] > mess_trace     # the terminal's counters carried on
        summary = _json(ev, "printer-summary.json")
        assert summary["status"]["paper"] == "ok" and not summary["status"]["faults"]
        assert len(summary["receipts"]) >= 1                        # it printed: the paper fault is gone
        faults = _json(ev, "link-terminal-host-faults.json")["faults"]
        assert [f["describe"] for f in faults] == [clean.faults[0].spec.describe()]   # only its own fault
        assert _json(ev, "link-till-terminal-faults.json")["faults"] == []
        stray.close()
    finally:
        errors = pool.close()
    assert not errors


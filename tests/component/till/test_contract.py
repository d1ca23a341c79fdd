"""The till contract (docs/till-contract.md) as served by the reference till (its own process) and spoken by
HttpTill."""

from __future__ import annotations

import json
import threading
import time

import pytest

from harness.core.device import DeviceContext
from harness.core.evidence import Evidence
from harness.core.rig import DeviceSpec
from harness.till.http import HttpTill
from harness.till.outcome import ContractError, SaleOutcome
from tests.support.till_peers import BASKET, TOTAL, ScriptedTerminal


def raw(till, method, path, body=None):
    try:
        return 200, till.client.request(method, path, body)
    except ContractError as exc:
        return int(str(exc).split(" answered ")[1][:3]), str(exc)


def test_health_journal_and_sale_lookup(make_till):
    till, _, _ = make_till("correct")
    health = till.client.health()
    assert health["ok"] is True and health["identity"]["profile"] == "correct"
    assert health["identity"]["timers"]["result"] == pytest.approx(40 * 0.05)
    out = till.sell(BASKET)
    sale = till.client.request("GET", f"/sales/{out.sale_id}")
    assert sale["status"] == "paid" and sale["amount_cents"] == TOTAL
    assert [p["kind"] for p in sale["prints"]] == ["sale"]
    assert any(z["summary"]["apdu"] == "status_information" for z in sale["zvt"])
    assert [s["id"] for s in till.journal()] == [out.sale_id]


@pytest.mark.parametrize("body, message", [
    ({"tender": "card"}, "needs"),
    ({"basket": [], "tender": "card"}, "non-empty"),
    ({"basket": [{"sku": "x"}]}, "price"),
    ({"basket": [{"sku": "x", "price": "1.999"}]}, "at most 2 decimals"),
    ({"basket": [{"sku": "x", "price": "1.00", "qty": 0}]}, "positive integer"),
    ({"basket": BASKET, "tender": "cheque"}, "tender 'cheque'"),
])
def test_bad_sale_requests_get_400_naming_the_problem(make_till, body, message):
    till, terminal, _ = make_till("correct")
    status, err = raw(till, "POST", "/sale", body)
    assert status == 400 and message in err
    assert terminal.commands("0601") == 0 and till.journal() == []


def test_unknown_endpoints_and_sales_get_404(make_till):
    till, _, _ = make_till("correct")
    assert raw(till, "GET", "/nope")[0] == 404
    assert raw(till, "POST", "/nope", {})[0] == 404
    status, err = raw(till, "GET", "/sales/T1-000042")
    assert status == 404 and "T1-000042" in err


def test_non_json_body_gets_400(make_till):
    till, _, _ = make_till("correct")
    import http.client

    conn = http.client.HTTPConnection(till.client.host, till.client.port, timeout=5)
    conn.request("POST", "/sale", body=b"{not json", headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 400 and "not JSON" in json.loads(resp.read())["error"]
    conn.close()


def test_second_sale_while_one_runs_gets_409(make_till):
    till, _, _ = make_till("correct", ScriptedTerminal("slow-approve", delay=0.8))
    first: list = []
    t = threading.Thread(target=lambda: first.append(till.sell(BASKET)))
    t.start()
    time.sleep(0.3)
    status, err = raw(till, "POST", "/sale", {"basket": BASKET})
    t.join()
    assert status == 409 and "in progress" in err
    assert first[0].status == "paid"


def test_abort_without_a_sale_is_harmless(make_till):
    till, _, _ = make_till("correct")
    assert till.client.abort() == {"aborted": None, "message": "no sale in progress"}


def test_http_driver_drives_the_reference_till(make_till, tmp_path, rig_emulated):
    ref, terminal, printer = make_till("correct")
    spec = DeviceSpec(name="vendor", kind="till", mode="real", driver="http", transport="http",
                      address=ref.client.url, node="till")
    ctx = DeviceContext(rig=rig_emulated, evidence=Evidence(tmp_path / "ev"), timing=rig_emulated.timing)
    with HttpTill(spec, ctx) as till:
        out = till.sell(BASKET, "cash")
        assert isinstance(out, SaleOutcome) and out.paid and out.drawer_opened
        assert till.journal()[-1]["id"] == out.sale_id
        assert till.recover() == []
        assert till.identity()["till"]["profile"] == "correct"

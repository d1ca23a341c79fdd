"""The till contract (docs/till-contract.md) as served by the reference till and spoken by HttpTill."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from harness.core.device import DeviceContext
from harness.core.evidence import Evidence
from harness.core.rig import DeviceSpec
from harness.till.http import HttpTill, TillUnreachable
from harness.till.outcome import ContractError, SaleOutcome, basket_total
from tests.support.till_peers import BASKET, TOTAL, ScriptedTerminal, till_spec


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
    assert any(z["summary"]["apdu"] == "status-information" for z in sale["zvt"])
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


class _Vendor(BaseHTTPRequestHandler):
    answer: object = {"ok": True}

    def log_message(self, *args):
        pass

    def _send(self):
        data = json.dumps(self.answer).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        type(self).answer = {"ok": True, "identity": {"vendor": "acme"}}
        self._send()

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).answer = self.server.sale_answer
        self._send()


@pytest.mark.parametrize("answer, message", [
    ({"sale_id": "1", "status": "approved", "tender": "card", "amount_cents": 5}, "status 'approved'"),
    ({"sale_id": "1", "status": "paid", "tender": "card"}, "lacks 'amount_cents'"),
    ({"sale_id": "1", "status": "paid", "tender": "card", "amount_cents": "4.88"}, "integer number of cents"),
    ([1, 2], "JSON object"),
])
def test_contract_violations_by_a_vendor_till_are_named(tmp_path, rig_emulated, answer, message):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Vendor)
    server.sale_answer = answer
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        spec = DeviceSpec(name="vendor", kind="till", mode="real", driver="http", transport="http",
                          address=f"http://127.0.0.1:{server.server_address[1]}", node="till")
        ctx = DeviceContext(rig=rig_emulated, evidence=Evidence(tmp_path / "ev"), timing=rig_emulated.timing)
        with HttpTill(spec, ctx) as till:
            with pytest.raises(ContractError, match=message):
                till.sell(BASKET)
    finally:
        server.shutdown()
        server.server_close()


def test_unreachable_vendor_till_is_named(tmp_path, rig_emulated):
    spec = DeviceSpec(name="vendor", kind="till", mode="real", driver="http", transport="http",
                      address="http://127.0.0.1:9", node="till")
    ctx = DeviceContext(rig=rig_emulated, evidence=Evidence(tmp_path / "ev"), timing=rig_emulated.timing)
    with pytest.raises(TillUnreachable, match="127.0.0.1:9/health"):
        HttpTill(spec, ctx).start()


def test_unknown_profile_is_refused_with_the_known_names(tmp_path, rig_emulated):
    from harness.till.reference import ReferenceTill

    ctx = DeviceContext(rig=rig_emulated, evidence=Evidence(tmp_path / "ev"), timing=rig_emulated.timing)
    with pytest.raises(ValueError, match="print-on-timeout"):
        ReferenceTill(till_spec("print-on-timout"), ctx, printer=SimpleNamespace(), terminal=SimpleNamespace())


def test_basket_total():
    assert basket_total(BASKET) == TOTAL
    assert basket_total([{"price": {"cents": 250}, "qty": 2}]) == 500

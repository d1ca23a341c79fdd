"""The till contract (docs/till-contract.md) as HttpTill speaks it, against vendor tills served in-process."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from harness.core.device import DeviceContext
from harness.core.evidence import Evidence
from harness.core.rig import DeviceSpec
from harness.till.http import HttpTill, TillUnreachable
from harness.till.outcome import ContractError, basket_total
from tests.support.till_peers import BASKET, TOTAL, till_spec


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
    # shutdown() waits for serve_forever's next poll: every 0.05 s, not the default 0.5 s
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
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

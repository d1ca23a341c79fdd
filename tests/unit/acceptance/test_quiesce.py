"""`quiesce`: the bench is quiet only when the till says so. A till whose journal does not answer (still booting
after a power cut, its control API busy) is not a quiet till; one that keeps no journal has nothing to wait for."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from harness.acceptance.scenario import quiesce
from harness.till.http import TillClient

OWED = {"id": "T1-000002", "status": "paid", "receipt": "pending"}
PRINTED = {**OWED, "receipt": "printed"}


class ScriptedTill:
    """A till control API on a real socket: GET /journal answers from `script` in turn (an int is an HTTP error
    status, a list the sales), the last entry for ever; POST /recover answers no sales."""

    def __init__(self, script: list):
        self.script, self.reads = script, 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                step = outer.script[min(outer.reads, len(outer.script) - 1)]
                outer.reads += 1
                if isinstance(step, int):
                    self._send(step, {"error": "the till is busy: booting"})
                else:
                    self._send(200, {"sales": step})

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._send(200, {"sales": []})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.bench = SimpleNamespace(running=lambda kind: TillClient("127.0.0.1", self.server.server_port,
                                                                     timeout=2) if kind == "till" else None)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted():
    made: list[ScriptedTill] = []

    def make(script: list) -> ScriptedTill:
        made.append(ScriptedTill(script))
        return made[-1]

    yield make
    for t in made:
        t.close()


def test_a_journal_that_does_not_answer_yet_is_waited_for(scripted):
    till = scripted([503, 503, [OWED], [OWED], [PRINTED]])
    assert quiesce(till.bench, timeout=5) == []
    assert till.reads >= 5                                  # it waited through the errors and the owed receipt


def test_a_journal_that_never_answers_is_reported_open(scripted):
    till = scripted([503])
    still_open = quiesce(till.bench, timeout=0.5)
    assert len(still_open) == 1 and "the till's journal could not be read" in still_open[0] and "503" in still_open[0]


def test_a_till_without_a_journal_has_nothing_to_wait_for(scripted):
    till = scripted([404])
    assert quiesce(till.bench, timeout=5) == [] and till.reads == 1

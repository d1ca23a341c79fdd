"""The reference till: a small, real till program. It sells a basket, takes card payments from a ZVT terminal,
prints on an ESC/POS printer, kicks the drawer for cash and keeps a durable journal. It is driven through the
till contract (docs/till-contract.md) on an HTTP JSON control port; this module is that port and the program
(the sale logic is `register.py`).

    python -m harness.reference_till serve --ecr 198.18.2.2:20007 --printer 127.0.0.1:9100 \\
        --profile correct --control 127.0.0.1:0 --journal till.sqlite --timing-scale 0.05

It prints one JSON line when ready: {"event": "ready", "pid": ..., "control": "127.0.0.1:PORT", ...}.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from harness import __version__
from harness.core.address import AddressError, parse_hostport
from harness.core.process import StopRequest, announce_failed, announce_ready
from harness.reference_till.journal import Journal
from harness.reference_till.profiles import profile
from harness.reference_till.register import Register, TillBusy

log = logging.getLogger("posrig.till")
CAPABILITIES = ["abort", "recover", "journal", "lifecycle"]      # what it tells posrig in GET /health


class ControlHandler(BaseHTTPRequestHandler):
    """HTTP JSON: GET /health, GET /journal, GET /sales/ID, POST /sale, POST /abort, POST /recover."""

    server_version = f"posrig-till/{__version__}"
    register: Register                 # set on the subclass made by `serve`

    def log_message(self, fmt: str, *args: Any) -> None:
        log.debug("control: " + fmt, *args)

    def _reply(self, status: int, body: Any) -> None:
        data = json.dumps(body, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"request body is not JSON: {exc}") from None

    def do_GET(self) -> None:
        reg = self.register
        if self.path == "/health":
            self._reply(200, {"ok": True, "identity": reg.identity(), "capabilities": CAPABILITIES})
        elif self.path == "/journal":
            self._reply(200, {"sales": [{"sale_id": s["id"], **s} for s in reg.journal.sales()]})
        elif self.path.startswith("/sales/"):
            try:
                self._reply(200, reg.journal.sale(self.path.removeprefix("/sales/")))
            except KeyError as exc:
                self._reply(404, {"error": str(exc.args[0])})
        else:
            self._reply(404, {"error": f"no such endpoint GET {self.path}; see docs/till-contract.md"})

    def do_POST(self) -> None:
        reg = self.register
        try:
            body = self._body()
            if self.path == "/sale":
                if not isinstance(body, dict) or "basket" not in body:
                    raise ValueError('POST /sale needs {"basket": [...], "tender": "card"|"cash"}')
                out = reg.sell(body["basket"], body.get("tender", "card"), body.get("client_ref"))
                self._reply(200, out.to_dict())
            elif self.path == "/abort":
                self._reply(200, reg.abort())
            elif self.path == "/recover":
                self._reply(200, {"sales": [o.to_dict() for o in reg.recover()]})
            else:
                self._reply(404, {"error": f"no such endpoint POST {self.path}; see docs/till-contract.md"})
        except TillBusy as exc:
            self._reply(HTTPStatus.CONFLICT, {"error": str(exc)})
        except ValueError as exc:
            self._reply(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        except Exception as exc:  # noqa: BLE001 - the till reports, it does not die
            log.exception("control request %s failed", self.path)
            self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(exc).__name__}: {exc}"})


def address_argument(what: str):
    """An argparse `type` for HOST:PORT options (the one parser: harness.core.address)."""
    def parse(text: str) -> tuple[str, int]:
        try:
            return parse_hostport(text, what=what)
        except AddressError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ecr", required=True, type=address_argument("--ecr"),
                   help="the terminal's ZVT ECR port, HOST:PORT")
    p.add_argument("--printer", required=True, type=address_argument("--printer"),
                   help="the ESC/POS printer, HOST:PORT")
    p.add_argument("--profile", default="correct", help="correct or a seeded-bug profile")
    p.add_argument("--control", default="127.0.0.1:0", type=address_argument("--control"),
                   help="where the HTTP control API listens (port 0: any free port)")
    p.add_argument("--journal", required=True, help="the SQLite journal file (kept across restarts)")
    p.add_argument("--timing-scale", type=float, default=1.0, help="multiply every till timer by this")
    p.add_argument("--till-id", default="T1", help="prefix of sale ids")


def serve(args: argparse.Namespace) -> int:
    """Run the till until SIGTERM/SIGINT. Prints one JSON line when the control API is up."""
    try:
        profile(args.profile)
    except ValueError as exc:
        announce_failed(str(exc))
        return 2
    journal = Journal(args.journal, till_id=args.till_id)
    register = Register(ecr=args.ecr, printer=args.printer, profile_name=args.profile, journal=journal,
                        timing_scale=args.timing_scale)
    handler = type("BoundControlHandler", (ControlHandler,), {"register": register})
    server = ThreadingHTTPServer(args.control, handler)
    server.daemon_threads = True
    host, port = server.server_address[:2]
    stop = StopRequest()
    register.start()
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="control",
                               daemon=True)
    serving.start()
    announce_ready(control=f"{host}:{port}", identity=register.identity())
    try:
        stop.wait()
    finally:
        register.stop()
        server.shutdown()
        server.server_close()
        journal.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.reference_till",
                                     description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    add_serve_arguments(sub.add_parser("serve", help="run the reference till"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("POSRIG_TILL_LOG", "INFO"), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return serve(args)

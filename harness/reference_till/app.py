"""The reference till: a small, real till program. It sells a basket, takes card payments from a ZVT terminal,
prints on an ESC/POS printer, kicks the drawer for cash and keeps a durable journal. It is driven through the
till contract (docs/till-contract.md) on an HTTP JSON control port; this module is that port and the program
(the sale logic is `register.py`).

    python -m harness.reference_till serve --ecr 198.18.2.2:20007 --printer 127.0.0.1:9100 \\
        --profile correct --control 127.0.0.1:0 --journal till.sqlite --timing-scale 0.05

It prints one JSON line when ready: {"event": "ready", "pid": ..., "control": "127.0.0.1:PORT", ...}, or
{"event": "failed", "error": ...} when it cannot start (a bad profile, a control address it cannot listen on).

The control port has limits, each answered in JSON without stopping the till: a body over `MAX_BODY` bytes
(413, not read), a missing-or-bad Content-Length on a body (400), a request not received within
`REQUEST_TIMEOUT` seconds (408, or closed), more than `MAX_CONNECTIONS` requests at once (503). Connections that
send nothing cost no thread (`harness.core.service.TcpService`, `wait_for_data`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import socket
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any

from harness import __version__
from harness.core.address import AddressError, parse_hostport
from harness.core.process import StopRequest, announce_failed, announce_ready
from harness.core.service import TcpService
from harness.reference_till.journal import Journal
from harness.reference_till.profiles import profile
from harness.reference_till.register import Register, TillBusy

log = logging.getLogger("posrig.till")
CAPABILITIES = ["abort", "recover", "journal", "lifecycle"]      # what it tells posrig in GET /health

MAX_BODY = 1 << 20                     # bytes: a basket is a few hundred
REQUEST_TIMEOUT = 30.0                 # seconds to receive a whole request once it started (and to sit idle)
MAX_CONNECTIONS = 32                   # requests served at once; the harness drives a few


class RequestError(Exception):
    """A request the till refuses before reading it all: answered with `status` and closed."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class ControlHandler(BaseHTTPRequestHandler):
    """HTTP JSON: GET /health, GET /journal, GET /sales/ID, POST /sale, POST /abort, POST /recover."""

    server_version = f"posrig-till/{__version__}"
    register: Register                 # set on the subclass made by `serve`
    timeout = REQUEST_TIMEOUT          # socket timeout while a request is read or answered
    refused = False                    # answered before the whole request was read

    def log_message(self, fmt: str, *args: Any) -> None:
        log.debug("control: " + fmt, *args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (bad request line, headers too long, unknown method) in JSON too."""
        self.close_connection = self.refused = True
        error = message or HTTPStatus(code).phrase
        self._reply(code, {"error": f"{error}{': ' + explain if explain else ''}; see docs/till-contract.md"})

    def finish(self) -> None:
        """Send the answer; after a refused request, take (bounded) what the client still sends, so that it
        reads the answer instead of a reset."""
        super().finish()
        if self.refused:
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_WR)
                self.connection.settimeout(0.2)
                for _ in range(16):                   # at most 1 MiB and ~3 s
                    if not self.connection.recv(65536):
                        break

    def _reply(self, status: int, body: Any) -> None:
        data = json.dumps(body, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        declared = (self.headers.get("Content-Length") or "0").strip()
        if not declared.isdigit():
            raise RequestError(HTTPStatus.BAD_REQUEST, f"Content-Length {declared!r} is not a byte count; send "
                                                       "the JSON body's length in bytes, 0 or more")
        n = int(declared)
        if n > MAX_BODY:
            raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"a body of {n} bytes is over the control "
                                                                    f"API's limit of {MAX_BODY} bytes; send less")
        try:
            raw = self.rfile.read(n) if n else b""
        except TimeoutError:
            raise RequestError(HTTPStatus.REQUEST_TIMEOUT, f"the {n}-byte body did not arrive within "
                                                           f"{self.timeout:g} s") from None
        if len(raw) < n:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"the connection ended after {len(raw)} of the {n} "
                                                       "bytes Content-Length announced")
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"request body is not JSON: {exc}") from None

    def do_GET(self) -> None:
        reg = self.register
        if self.path == "/health":
            self._reply(200, {"ok": True, "identity": reg.identity(), "capabilities": CAPABILITIES,
                              "busy": reg.busy})
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
        except RequestError as exc:
            self.close_connection = self.refused = True      # the rest of the request is not read
            self._reply(exc.status, {"error": str(exc)})
        except TillBusy as exc:
            self._reply(HTTPStatus.CONFLICT, {"error": str(exc)})
        except ValueError as exc:
            self._reply(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        except Exception as exc:  # noqa: BLE001 - the till reports, it does not die
            log.exception("control request %s failed", self.path)
            self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(exc).__name__}: {exc}"})


def refuse_busy(conn: socket.socket, why: str) -> None:
    """Answer a request over `MAX_CONNECTIONS` with 503 and a JSON error (the service then closes it)."""
    with contextlib.suppress(OSError):               # take what the client sent, so the close is a clean FIN
        conn.setblocking(False)
        conn.recv(65536)
    conn.setblocking(True)
    conn.settimeout(0.5)
    body = json.dumps({"error": f"the till is busy: {why}"}).encode()
    conn.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
                 b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    conn.shutdown(socket.SHUT_WR)


def control_service(listener: socket.socket, register: Register) -> TcpService:
    """The HTTP control API on `listener`, with its limits (see the module docstring); call `start()`."""
    handler = type("BoundControlHandler", (ControlHandler,), {"register": register})

    def serve_one(conn: socket.socket, peer: tuple) -> None:
        handler(conn, peer, service)

    service = TcpService(listener, serve_one, name="till-control", max_connections=MAX_CONNECTIONS,
                         idle_timeout=REQUEST_TIMEOUT, wait_for_data=True, refuse=refuse_busy)
    return service


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
    try:
        listener = socket.create_server(args.control)
    except OSError as exc:
        why = f"cannot listen on --control {args.control[0]}:{args.control[1]}: {exc.strerror or exc}"
        print(f"posrig till serve: {why}", file=sys.stderr)
        announce_failed(why)
        return 2
    journal = Journal(args.journal, till_id=args.till_id)
    register = Register(ecr=args.ecr, printer=args.printer, profile_name=args.profile, journal=journal,
                        timing_scale=args.timing_scale)
    server = control_service(listener, register)
    host, port = server.address
    stop = StopRequest()
    register.start()
    server.start()
    announce_ready(control=f"{host}:{port}", identity=register.identity())
    try:
        stop.wait()
    finally:
        register.stop()
        server.close()
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

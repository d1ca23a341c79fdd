"""A small control socket for a running `posrig printer serve`: one line in, one JSON line out.

    $ printf 'fault paper_out\\n' | nc 127.0.0.1 PORT      ->  {"ok": true, "status": {...}}
    commands: `fault NAME[,NAME]|none`, `status`, `receipts`, `discard-held`
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Callable

from harness.core.address import parse_hostport
from harness.printer.core import PrinterCore
from harness.printer.status import FaultError
from harness.printer.transports import TcpEndpoint

USAGE = "fault NAME|none, status, receipts, discard-held"


class ControlServer(TcpEndpoint):
    """The control socket of a running printer: clients one after another, each sending command lines."""

    def __init__(self, core: PrinterCore, listener: socket.socket, timeout: float = 2.0,
                 settle: Callable[[], object] | None = None):
        super().__init__(listener, self._serve, name="printer-control", concurrent=False)
        self.core = core
        self.timeout = timeout
        self.settle = settle                  # the journal's: receipts are listed once their files are written

    def handle(self, line: str) -> dict:
        """Run one control command; returns the JSON-able answer."""
        words = line.split()
        if not words:
            return {"ok": False, "error": f"empty command; use: {USAGE}"}
        cmd, args = words[0], words[1:]
        try:
            if cmd == "fault":
                self.core.set_fault(None if not args or args[0] == "none" else args[0])
            elif cmd == "discard-held":
                return {"ok": True, "discarded": self.core.discard_held()}
            elif cmd == "receipts":
                if self.settle:
                    self.settle()
                return {"ok": True, "receipts": [r.to_dict() for r in self.core.receipts]}
            elif cmd != "status":
                return {"ok": False, "error": f"unknown command {cmd!r}; use: {USAGE}"}
        except FaultError as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": True, "status": self.core.status.to_dict(), "held_bytes": len(self.core.held),
                "receipts": len(self.core.receipts)}

    def _serve(self, conn: socket.socket, peer: tuple) -> None:
        """Answer each line of one client; bytes that are not UTF-8 get an error answer, not a dead socket."""
        conn.settimeout(self.timeout)
        with contextlib.suppress(OSError):
            for line in conn.makefile("r", encoding="utf-8", errors="replace"):
                conn.sendall((json.dumps(self.handle(line), default=str) + "\n").encode())


def send_control(address: str, command: str, timeout: float = 5.0) -> dict:
    """Send one command to a running printer's control socket; returns its answer."""
    with socket.create_connection(parse_hostport(address, what="control address"), timeout=timeout) as s:
        s.sendall(command.strip().encode() + b"\n")
        s.shutdown(socket.SHUT_WR)
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data)

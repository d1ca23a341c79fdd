"""A small control socket for a running `posrig printer serve`: one line in, one JSON line out.

    $ printf 'fault paper_out\\n' | nc 127.0.0.1 PORT      ->  {"ok": true, "status": {...}}
    commands: `fault NAME[,NAME]|none`, `status`, `receipts`, `discard-held`
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading

from harness.printer.core import PrinterCore
from harness.printer.status import FaultError

USAGE = "fault NAME|none, status, receipts, discard-held"


class ControlServer:
    def __init__(self, core: PrinterCore, listener: socket.socket, poll: float = 0.1):
        self.core = core
        self.listener = listener
        self.listener.settimeout(poll)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="printer-control", daemon=True)

    @property
    def address(self) -> str:
        host, port = self.listener.getsockname()[:2]
        return f"{host}:{port}"

    def start(self) -> None:
        self._thread.start()

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
                return {"ok": True, "receipts": [r.to_dict() for r in self.core.receipts]}
            elif cmd != "status":
                return {"ok": False, "error": f"unknown command {cmd!r}; use: {USAGE}"}
        except FaultError as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": True, "status": self.core.status.to_dict(), "held_bytes": len(self.core.held),
                "receipts": len(self.core.receipts)}

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    for line in conn.makefile("r", encoding="utf-8"):
                        conn.sendall((json.dumps(self.handle(line), default=str) + "\n").encode())
                except OSError:
                    continue

    def close(self, timeout: float = 2.0) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self.listener.close()
        if self._thread.is_alive():
            self._thread.join(timeout)


def send_control(address: str, command: str, timeout: float = 5.0) -> dict:
    """Send one command to a running printer's control socket; returns its answer."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(command.strip().encode() + b"\n")
        s.shutdown(socket.SHUT_WR)
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data)

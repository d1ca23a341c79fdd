"""A scriptable ISO 8583 acquirer for the terminal's tests (real TCP, pyiso8583, a SQLite ledger), and the
fixtures built on it: `acquirer` (a ScriptedHost on loopback) and `dead_host` (an address nobody answers).

The rig's own acquirer is `harness.host.emulated.EmulatedHost`; this one exists so the terminal's tests can drop,
delay and decline exactly the message a test needs, and it uses pyiso8583 directly, not the terminal's framing
code. Ledger states: approved, declined, reversed; offline advices are recorded as approved.
"""

from __future__ import annotations

import socket
import sqlite3
import struct
import threading
import time
from collections.abc import Iterator

import iso8583
import pytest
from iso8583.specs import default_ascii

from harness.core.cards import CARDS
from harness.core.service import TcpService

# The acquirer answers the declining cards of posrig's one test-card table.
DECLINES = {c.pan: c.host_code for c in CARDS.values() if c.host_code != "00"}


class ScriptedHost:
    def __init__(self, bind: tuple[str, int] = ("127.0.0.1", 0)):
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(bind)
        self.listener.listen(8)
        self.address = self.listener.getsockname()[:2]
        self.db = sqlite3.connect(":memory:", check_same_thread=False)
        self.db.execute(
            "CREATE TABLE ledger (stan TEXT, mti TEXT, amount INTEGER, pan TEXT, rc TEXT, state TEXT)"
        )
        self.lock = threading.Lock()
        self.received: list[dict] = []
        self.drop: dict[str, int] = {}  # response MTI -> how many to swallow
        self.delay: dict[str, float] = {}  # response MTI -> seconds before answering
        self.conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._service = TcpService(self.listener, self._serve, name="scripted-host")
        self._service.start()

    # -- scripting -------------------------------------------------------------------------------------------
    def drop_responses(self, mti: str, count: int = 1) -> None:
        self.drop[mti] = self.drop.get(mti, 0) + count

    def ledger(self) -> list[dict]:
        with self.lock:
            rows = self.db.execute("SELECT stan, mti, amount, pan, rc, state FROM ledger").fetchall()
        return [dict(zip(("stan", "mti", "amount", "pan", "rc", "state"), r, strict=True)) for r in rows]

    def mtis(self) -> list[str]:
        return [m["t"] for m in self.received]

    def wait_for(self, predicate, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return predicate()

    # -- server ----------------------------------------------------------------------------------------------
    def _serve(self, conn: socket.socket, _peer: tuple) -> None:
        self.conns.append(conn)
        buf = b""
        while True:
            try:
                chunk = conn.recv(4096)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while len(buf) >= 2:
                (n,) = struct.unpack(">H", buf[:2])
                if len(buf) < 2 + n:
                    break
                raw, buf = buf[2 : 2 + n], buf[2 + n :]
                msg, _ = iso8583.decode(bytearray(raw), default_ascii)
                self.received.append(msg)
                answer = self._answer(msg)
                if answer is None:
                    continue
                threading.Thread(target=self._send, args=(conn, answer), daemon=True).start()

    def _send(self, conn: socket.socket, answer: dict) -> None:
        delay = self.delay.get(answer["t"], 0)
        if delay:
            time.sleep(delay)
        raw, _ = iso8583.encode(answer, default_ascii)
        try:
            conn.sendall(struct.pack(">H", len(raw)) + bytes(raw))
        except OSError:
            pass

    def _answer(self, msg: dict) -> dict | None:
        mti = msg["t"]
        stan = msg.get("11", "")
        response = {
            "0200": "0210",
            "0220": "0230",
            "0221": "0230",
            "0400": "0410",
            "0420": "0430",
            "0421": "0430",
            "0500": "0510",
        }[mti]
        rc = "00"
        with self.lock:
            if mti == "0200":
                rc = DECLINES.get(msg.get("2", ""), "00")
                pan = msg.get("2", "")
                self.db.execute(
                    "INSERT INTO ledger VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        stan,
                        mti,
                        int(msg["4"]),
                        pan[:6] + "*" * (len(pan) - 10) + pan[-4:],
                        rc,
                        "approved" if rc == "00" else "declined",
                    ),
                )
            elif mti in ("0220", "0221"):
                if not self.db.execute(
                    "SELECT 1 FROM ledger WHERE stan=? AND mti='0220'", (stan,)
                ).fetchone():
                    self.db.execute(
                        "INSERT INTO ledger VALUES (?, '0220', ?, '', ?, 'approved')",
                        (stan, int(msg["4"]), msg.get("39", "")),
                    )
            elif mti in ("0400", "0420", "0421"):
                original_stan = msg.get("90", "")[4:10]
                self.db.execute(
                    "UPDATE ledger SET state='reversed' WHERE stan=? AND state='approved'", (original_stan,)
                )
        answer = {"t": response, "11": stan, "39": rc}
        for f in ("3", "4", "41", "42", "49"):
            if f in msg:
                answer[f] = msg[f]
        if response == "0210" and rc == "00":
            answer["38"] = f"A{int(stan):05d}"
            answer["37"] = f"{int(stan):012d}"
        if self.drop.get(response, 0) > 0:
            self.drop[response] -= 1
            return None
        return answer

    def close(self) -> None:
        self._stop.set()
        self._service.close(timeout=1.0)


# Terminal timers (nominal seconds) for a host that refuses at once: before going online a terminal tries to settle
# what it owes for 2 x host + host_connect (25 s nominal, 1.25 s at the fixtures' scale), which against a refusing
# host is only waiting. These make it 0.25 s; restore "host" before a host that answers comes up.
REFUSING_HOST_TIMERS = {"host": 2.0, "host_connect": 1.0}


class DeadHost:
    """An address where nobody listens, kept bound (not listening) so no other socket takes the port:
    connecting is refused. `.release()` frees the port for a host that comes up later."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.address = self.sock.getsockname()[:2]

    def release(self) -> None:
        self.sock.close()


@pytest.fixture
def acquirer() -> Iterator[ScriptedHost]:
    """A ScriptedHost on loopback, closed after the test."""
    host = ScriptedHost()
    yield host
    host.close()


@pytest.fixture
def dead_host() -> Iterator[DeadHost]:
    dead = DeadHost()
    yield dead
    dead.release()

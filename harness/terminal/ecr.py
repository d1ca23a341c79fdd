"""The emulated terminal's ZVT ECR interface: the connections from the till (the ECR), on TCP port 20007 served by
`harness.core.service.TcpService`, or on the RS-232 link (`serial_link.SerialLink`, shaped like a socket).

Each connection is read in its own thread (acknowledgements, 06 B0 abort and new commands arrive at any time)
and runs one command at a time in a worker thread (`commands.EcrCommands`). Every APDU is written, decoded and
card-number-masked, to the transcript. Refusals, as a real PT gives them:

    84 83  a command this terminal does not support (06 E0 Display Text, 06 C0 Read Card, any unknown instruction
           of a ZVT class): "function not possible", decided from the control field alone, before any field of
           its data is decoded (PA00P015 2.67 "Other Commands", which Portalum.Zvt's receive handler cites for
           the 84 83 "command not supported" answer)
    84 83  a supported command carrying a password other than the terminal's (option `password`; none set:
           any password is accepted). The spec's error list has no code of its own for a wrong password; posrig
           refuses with the code for a command the terminal will not execute, before acknowledging it
    84 A0  a command arriving while the terminal is still busy (a payment running, or the merchant copy it
           prints after one: `TerminalCore.finish_slowly`): "receiver not ready", within half of T3, so before
           the ECR's own T3 runs out; nothing of the command happens
    84 9A  a supported command whose data is malformed (a mandatory field missing, a BMP cut short), and bytes
           that are not ZVT at all (an APDU class ZVT does not define): "ZVT protocol error"

>>> server = EcrServer(core, socket.create_server(("127.0.0.1", 0)))    # doctest: +SKIP
>>> server.start(); server.address                                     # doctest: +SKIP
('127.0.0.1', 40123)
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import struct
import threading
import time
from typing import Any

from harness.core.service import TcpService
from harness.protocols import zvt
from harness.terminal.commands import EcrCommands
from harness.terminal.core import TerminalCore
from harness.terminal.journal import PoweredOff

log = logging.getLogger(__name__)

ACK = zvt.encode("ack")
REPLIES = ("ack", "ack_84", "nack")    # the ECR's acknowledgements of what the terminal sent
PASSWORD_REFUSED = zvt.RESULT_NOT_POSSIBLE


def parse_password(value: Any) -> int | None:
    """The terminal password option: 6 decimal digits ('123456' or 123456) -> 123456; None/'' = accept any.

    >>> parse_password("012345"), parse_password(None)
    (12345, None)
    """
    if value is None or value == "":
        return None
    text = f"{value:06d}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
    if len(text) != 6 or not text.isdigit():
        raise ValueError(f"terminal password {value!r}: expected 6 decimal digits, e.g. '123456' "
                         "(ZVT sends it as 3 BCD bytes)")
    return int(text)
BUSY_GRACE = 0.5          # of T3: how long a command waits for a busy terminal before it is refused (84 A0)
MAX_UNREAD_REPLIES = 16     # acknowledgements kept while no command waits for one (an ECR may send them unasked)


class EcrSession:
    """One connection from the ECR: an accepted socket, or a serial link shaped like one."""

    def __init__(self, server: EcrServer, sock: Any, peer: str):
        self.server = server
        self.sock = sock
        self.peer = peer
        # Since when this connection serves the ECR's current business: its connect time (a TCP connection per
        # command), or its last command's arrival on a link that stays (serial). A message on a connection older
        # than a sale is not that sale's (a request held on the link, delivered to a socket the till had closed).
        self.persistent = not isinstance(sock, socket.socket)
        self.opened = time.time()
        self.replies: queue.Queue[zvt.Message] = queue.Queue()
        self.closed = threading.Event()
        self._send_lock = threading.Lock()
        self.command: str | None = None       # this connection's command, from its arrival until it ends
        self.started = False                  # ... and whether it has begun (it may wait for a busy terminal)
        self.cancelled = False                # an 06 B0 on this connection came before its command began
        # Acknowledgements: messages sent that want one, replies received, and the messages whose reply did not
        # come within T3 (still owed, oldest first). A late reply settles the oldest owed one.
        self._acks = threading.Lock()
        self._asked = self._answered = 0
        self._owed: list[dict[str, Any]] = []

    # -- I/O -------------------------------------------------------------------------------------------------
    def send(self, raw: bytes) -> bool:
        msg = zvt.decode(raw)
        self.server.note("tx", peer=self.peer, apdu=zvt.hexdump(raw), decoded=zvt.describe(msg))
        try:
            with self._send_lock:
                self.sock.sendall(raw)
            return True
        except OSError as exc:
            self.server.note("send_failed", peer=self.peer, error=str(exc))
            self.closed.set()
            return False

    def request(self, raw: bytes, timeout: float) -> zvt.Message | None:
        """Send and wait for the ECR's 80 00 / 84 xx; None when none arrives in time or the link is gone."""
        while not self.replies.empty():
            self.replies.get_nowait()
        with self._acks:                              # before it goes out: its reply may beat the next line
            self._asked += 1
        if not self.send(raw):
            return None
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or (self.closed.is_set() and self.replies.empty()):
                self.server.note("no_acknowledgement", peer=self.peer, seconds=round(timeout, 3))
                entry = self.server.core.unacknowledged_message(
                    f"{raw[0]:02X} {raw[1]:02X} {zvt.decode(raw).name}", self.peer, closed=self.closed.is_set(),
                    opened=self.opened)
                with self._acks:
                    self._owed.append(entry)
                    self._settle_late()
                return None
            try:
                return self.replies.get(timeout=min(left, 0.05))
            except queue.Empty:
                continue

    def _settle_late(self) -> None:
        """Replies came for all but `asked - answered` messages: the older owed ones were answered late."""
        while len(self._owed) > max(0, self._asked - self._answered):
            self._owed.pop(0)["late"] = True

    def serve(self) -> None:
        """Read the connection until it ends, dispatching every APDU (runs in the connection's thread)."""
        reader = zvt.ApduReader()
        while not self.closed.is_set():
            try:
                chunk = self.sock.recv(4096)
            except OSError:
                chunk = b""
            if not chunk:
                if reader.pending:
                    self.server.note("half_apdu_dropped", peer=self.peer, bytes=len(reader.pending))
                break
            try:
                apdus = reader.feed(chunk)
            except zvt.ZvtError as exc:
                self.server.note("malformed", peer=self.peer, error=str(exc))
                self.send(zvt.encode("nack", result_code=exc.code))
                continue
            for apdu in apdus:
                self._dispatch(apdu)
        self.closed.set()
        self.server.note("disconnected", peer=self.peer)
        try:
            self.sock.close()
        except OSError:
            pass

    def _dispatch(self, apdu: zvt.Apdu) -> None:
        name = apdu.name
        handlers = self.server.commands.handlers
        if name not in REPLIES and name != "ecr_abort" and name not in handlers:
            # Not supported: refused from the control field alone; its data is never decoded (nor written out:
            # an unknown command may carry card data in clear).
            self.server.note("unsupported", peer=self.peer, command=name, data_bytes=len(apdu.data))
            self.send(zvt.encode("nack", result_code=zvt.RESULT_NOT_POSSIBLE))
            return
        try:
            msg = zvt.decode_apdu(apdu)
        except zvt.ZvtError as exc:
            self.server.note("malformed", peer=self.peer, apdu=_hex(apdu), error=str(exc))
            self.send(zvt.encode("nack", result_code=exc.code))
            return
        self.server.note("rx", peer=self.peer, apdu=_hex(apdu, msg), decoded=zvt.describe(msg))
        if msg.name in REPLIES:
            with self._acks:
                self._answered += 1
                self._settle_late()
            while self.replies.qsize() >= MAX_UNREAD_REPLIES:   # unasked for: only the newest can matter
                try:
                    self.replies.get_nowait()
                except queue.Empty:
                    break
            self.replies.put(msg)
        elif msg.name == "ecr_abort":
            self.send(ACK)
            if self.command is not None and not self.started:
                # The abort follows its own command, which has not begun (the terminal is busy with another
                # connection's payment): that command is withdrawn; the running payment is not this ECR's to end.
                self.cancelled = True
                self.server.note("abort_before_start", peer=self.peer, command=self.command)
            elif self.command is None and self.started:
                # Late: this connection's own command has ended (the 06 B0 was held up on the link behind it);
                # a payment running now belongs to another connection, the next sale, and is not this ECR's to end.
                self.server.note("abort_after_end", peer=self.peer)
            else:
                self.server.core.abort(source="ecr")
        elif not self.server.password_accepted(msg):
            self.server.note("wrong_password", peer=self.peer, command=msg.name)
            self.send(zvt.encode("nack", result_code=PASSWORD_REFUSED))
        else:
            if self.persistent:
                self.opened = time.time()
            self.server.submit(self, msg)

    def close(self) -> None:
        self.closed.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def _hex(apdu: zvt.Apdu, msg: zvt.Message | None = None) -> str:
    """APDU bytes for the transcript; withheld when the ECR sent card data in clear (manual entry); a password
    that leads the data (06 00, 05 01, 06 20, 06 30, 06 50) shown as **:**:**."""
    if msg is not None and any(k in msg.fields for k in zvt.CARD_DATA):
        return f"{apdu.cls:02x}:{apdu.ins:02x} <{len(apdu.data)} bytes with card data withheld>"
    raw = apdu.to_bytes()
    command = zvt.COMMANDS.get(apdu.control)
    if msg is not None and command is not None and command.prefix and command.prefix[0].name == "password" \
            and "password" in msg.fields:
        head = len(raw) - len(apdu.data)
        return ":".join([zvt.hexdump(raw[:head]), "**:**:**", zvt.hexdump(raw[head + 3 :])]).rstrip(":")
    return zvt.hexdump(raw)


class EcrServer:
    """Serves ECR connections (a listening socket, and/or serial links) and runs their ZVT commands against a
    TerminalCore, one command at a time."""

    def __init__(
        self,
        core: TerminalCore,
        listener: socket.socket | None,
        *,
        transcript: Any = None,
        ecr_receipts: bool | None = None,
        password: Any = None,
    ):
        self.core = core
        self.transcript = transcript
        self.password = parse_password(password)   # None: any password is accepted
        self.commands = EcrCommands(self, ecr_receipts)
        self.service = TcpService(listener, self._serve_tcp, name="zvt-ecr") if listener is not None else None
        self.sessions: list[EcrSession] = []
        self.threads: list[threading.Thread] = []  # the readers of serial links
        self.workers: list[threading.Thread] = []
        self.busy_refusals = 0  # commands refused with 84 A0 because the terminal was busy
        self._lock = threading.Lock()  # sessions and workers come and go from several threads

    @property
    def address(self) -> tuple[str, int]:
        if self.service is None:
            raise RuntimeError("this ECR interface is serial: it has no TCP address")
        return self.service.address

    def start(self) -> None:
        if self.service is not None:
            self.service.start()

    def _open(self, link: Any, peer: str) -> EcrSession:
        session = EcrSession(self, link, peer)
        self.note("connected", peer=peer)
        with self._lock:
            self.sessions = [s for s in self.sessions if not s.closed.is_set()] + [session]
        return session

    def _serve_tcp(self, conn: socket.socket, peer: tuple) -> None:
        name = f"{peer[0]}:{peer[1]}"
        threading.current_thread().name = f"zvt-ecr-{name}"
        self._open(conn, name).serve()

    def attach(self, link: Any, peer: str) -> EcrSession:
        """Serve one more ECR connection in its own thread: a serial link shaped like a socket (or a socket)."""
        session = self._open(link, peer)
        thread = threading.Thread(target=session.serve, name=f"zvt-ecr-{peer}", daemon=True)
        with self._lock:
            self.threads = [t for t in self.threads if t.is_alive()] + [thread]
        thread.start()
        return session

    def password_accepted(self, msg: zvt.Message) -> bool:
        """True unless the terminal has a password and the command carries a different one (a command whose
        password is optional in ZVT, e.g. 05 01, may leave it out)."""
        given = msg.fields.get("password")
        return self.password is None or given is None or int(given) == self.password

    def submit(self, session: EcrSession, msg: zvt.Message) -> None:
        session.command, session.started, session.cancelled = msg.name, False, False
        worker = threading.Thread(target=self._run, args=(session, msg), name=f"zvt-{msg.name}", daemon=True)
        with self._lock:
            self.workers = [w for w in self.workers if w.is_alive()] + [worker]
        worker.start()

    def _run(self, session: EcrSession, msg: zvt.Message) -> None:
        # A command arriving while another finishes (its last acknowledgement just read) waits a moment; one
        # arriving while the terminal is still busy (a payment, the merchant copy it prints after one) is
        # refused with 84 A0 (receiver not ready) within the ECR's T3, as a PT must answer every command in T3
        # (waiting all of T3 would race the ECR's own timer).
        # A command whose connection is gone, or that its own 06 B0 withdrew, before it could begin never begins.
        core = self.core
        if not core.busy.acquire(timeout=self.commands.t3 * BUSY_GRACE):
            self.note("busy", peer=session.peer, command=msg.name)
            with self._lock:
                self.busy_refusals += 1
            session.send(zvt.encode("nack", result_code=zvt.RESULT_RECEIVER_NOT_READY))
            session.command = None
            return
        if session.cancelled or session.closed.is_set():
            why = "withdrawn by its 06 B0" if session.cancelled else "the ECR hung up"
            self.note("not_started", peer=session.peer, command=msg.name, reason=why)
            session.command = None
            core.busy.release()
            return
        session.started = True
        core.begin()
        try:
            if not session.send(ACK):
                self.note("not_started", peer=session.peer, command=msg.name, reason="its acknowledgement failed")
                return
            self.commands.handlers[msg.name](session, msg)
        except PoweredOff:
            return                      # the terminal lost power mid-command: it says nothing more
        except Exception as exc:  # noqa: BLE001 - a failing command must not stop the terminal
            log.exception("ZVT %s failed", msg.name)
            self.note("command_failed", command=msg.name, error=repr(exc))
            session.send(zvt.encode("abort", result_code=zvt.RESULT_SYSTEM_ERROR))
        finally:
            session.command = None
            if not core.journal.frozen:
                core.end()
            core.busy.release()

    # -- lifecycle -------------------------------------------------------------------------------------------
    def note(self, event: str, **fields: Any) -> None:
        if self.transcript is not None:
            self.transcript.write(event, link="zvt", **fields)

    def close(self, timeout: float = 2.0, reset: bool = False) -> None:
        """Stop serving; `reset`: the terminal lost power, so every ECR connection is reset (RST, no FIN first)."""
        deadline = time.monotonic() + timeout
        if reset:
            with self._lock:
                sessions = list(self.sessions)
            for s in sessions:
                with contextlib.suppress(OSError):
                    s.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    s.sock.shutdown(socket.SHUT_RD)       # wakes its reader; nothing goes on the wire
            for s in sessions:
                s.closed.wait(max(0.0, deadline - time.monotonic()))
                with contextlib.suppress(OSError):
                    s.sock.close()                        # linger 0: the peer gets a reset
        if self.service is not None:
            self.service.close(timeout)  # stops accepting, shuts the TCP connections, waits for their readers
        with self._lock:
            sessions, threads = list(self.sessions), [*self.threads, *self.workers]
        for s in sessions:
            s.close()
        for t in threads:
            if t.is_alive() and t is not threading.current_thread():
                t.join(max(0.0, deadline - time.monotonic()))

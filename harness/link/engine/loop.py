"""The engine's main loop: bind an NFQUEUE (fail-open), then serve packets in bounded batches, timers and the
control channel, until told to stop.

Imports, the capture and the queue binding happen at normal priority; the engine takes real-time priority only
after its ready line (see `sharpen_timing`). The loop sleeps in `select` until a packet, a control line or the
next timer is due, and stops sleeping SPIN seconds before a timer to poll the last stretch, so holds are
released within about a millisecond. Packets are taken BATCH at a time, so a flood cannot starve hold releases
and control messages.

Control lines (stdin, JSON): {"op": "arm", "fault": 1, "spec": {...FaultSpec...}}, {"op": "clear",
"fault": 1 | null}, {"op": "status"}, {"op": "stop"} (stdin closing = stop), and for a warm engine kept across
scenarios {"op": "park"} (end the scenario, keep running) and {"op": "reset", "epoch": N, "pcap": PATH} (a new
scenario: clean slate, new capture). Event lines (stdout, the `harness.core.process` dialect): ready (with the
queue bound), the fault events of `harness.link.faults` (armed, fired, released, verified, outage_end, cleared),
status, error, parked, reset (with its epoch), stopped.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import signal
import socket
import struct
import sys
import time
from typing import Any

from harness.core.process import announce_failed, announce_ready
from harness.link.engine.decision import Engine
from harness.link.faults import FaultSpec

BATCH = 64                   # packets handled before timers and control get a turn
SPIN = 0.001                 # s before a timer is due when the loop stops sleeping and polls (precise holds)
MAX_QUEUE = 8192             # packets the kernel queues for us (held packets count against it); beyond, the
                             # kernel lets packets through (fail-open) rather than dropping them


def set_fail_open(fd: int, queue: int) -> None:
    """Ask the kernel to accept packets, not drop them, when our queue is full (NFQA_CFG_F_FAIL_OPEN), on the
    queue's own netlink socket (only the binding socket may configure it). NetfilterQueue lacks it."""
    flag = 1                                                 # NFQA_CFG_F_FAIL_OPEN
    attrs = (struct.pack("=HH", 8, 4) + struct.pack("!I", flag)       # NFQA_CFG_MASK
             + struct.pack("=HH", 8, 5) + struct.pack("!I", flag))    # NFQA_CFG_FLAGS
    body = struct.pack("=BB", 0, 0) + struct.pack("!H", queue) + attrs   # nfgenmsg: AF_UNSPEC, v0, res_id
    header = struct.pack("=IHHII", 16 + len(body), (3 << 8) | 2, 1, 0, 0)  # NFNL_SUBSYS_QUEUE/CONFIG, REQUEST
    with socket.socket(fileno=os.dup(fd)) as sock:
        sock.sendto(header + body, (0, 0))


class Batch:
    """A socket stand-in for NetfilterQueue.run_socket that ends its loop after `n` packets (raising EAGAIN,
    which run_socket takes as "nothing more"), so a flood cannot starve hold releases and control messages."""

    def __init__(self, sock: socket.socket, n: int):
        self.sock, self.left = sock, n

    def recv(self, size: int) -> bytes:
        if self.left <= 0:
            raise BlockingIOError(errno.EAGAIN, "batch done")
        self.left -= 1
        return self.sock.recv(size)


class Loop:
    """Serves one engine: its queue, its timers and its control channel."""

    def __init__(self, engine: Engine, config: dict[str, Any]):
        self.engine = engine
        self.config = config
        self.running = True
        self.queue_num: int | None = None
        self.nfq: Any = None

    def bind(self) -> int:
        """Bind the first free queue of the configured range, fail-open. Raises OSError when none is free."""
        import warnings

        from netfilterqueue import NetfilterQueue

        warnings.simplefilter("ignore", RuntimeWarning)  # socket buffer smaller than asked: harmless here
        self.nfq = NetfilterQueue()
        first, count = self.config.get("queue", [0, 64])
        errors = []
        for num in range(first, first + count):
            try:
                self.nfq.bind(num, self.engine.on_packet, max_len=int(self.config.get("max_queue", MAX_QUEUE)))
                set_fail_open(self.nfq.get_fd(), num)
                self.queue_num = num
                return num
            except OSError as exc:
                errors.append(f"{num}: {exc}")
        raise OSError(f"no free NFQUEUE number in {first}..{first + count - 1}: {'; '.join(errors[-3:])}")

    def control(self, msg: dict[str, Any]) -> None:
        engine, op = self.engine, msg.get("op")
        if op == "arm":
            engine.effects.arm(int(msg["fault"]), FaultSpec.from_json(msg["spec"]))
        elif op == "clear":
            engine.effects.clear(msg.get("fault"))
        elif op == "status":
            engine.flush()                        # so the capture can be read while the link runs
            engine.emit("status", stats=engine.stats, seen=engine.tracker.stages_seen,
                        faults=engine.effects.states(), queue=self.queue_num)
        elif op == "park":                        # the scenario is over; the engine stays warm for the next
            engine.emit("parked", **engine.park())
        elif op == "reset":                       # a new scenario adopts this engine
            dropped = engine.rearm(msg.get("pcap"))
            engine.emit("reset", epoch=msg.get("epoch"), queue=self.queue_num, dropped_held=dropped)
        elif op == "stop":
            self.running = False
        else:
            engine.emit("error", message=f"unknown control op {op!r}")

    def run(self, realtime: bool = False) -> None:
        """Announce readiness, then (`realtime`) take real-time priority and serve until stopped; held packets go
        through and the capture is closed."""
        engine, nfq = self.engine, self.nfq
        nfsock = socket.socket(fileno=os.dup(nfq.get_fd()))
        nfsock.setblocking(False)
        announce_ready(queue=self.queue_num)
        if realtime:
            print(f"engine timing: {sharpen_timing(True)}", file=sys.stderr, flush=True)
        ctrl = sys.stdin.buffer.raw if hasattr(sys.stdin.buffer, "raw") else sys.stdin.buffer
        os.set_blocking(ctrl.fileno(), False)
        buf = b""
        flush_s = float(self.config.get("flush_s") or 0)     # a bench link: the capture is read while it runs
        flushed = time.monotonic()
        try:
            while self.running:
                timeout = engine.effects.run_timers()
                if timeout is not None:
                    timeout = 0 if timeout <= SPIN else timeout - SPIN   # wake early, poll the last stretch
                if flush_s:
                    if time.monotonic() - flushed >= flush_s:
                        engine.flush()
                        flushed = time.monotonic()
                    timeout = flush_s if timeout is None else min(timeout, flush_s)
                readable, _, _ = select.select([nfsock, ctrl], [], [], timeout)
                if nfsock in readable:
                    nfq.run_socket(Batch(nfsock, BATCH))   # bounded: timers and control run between batches
                if ctrl in readable:
                    chunk = os.read(ctrl.fileno(), 65536)
                    if not chunk:
                        break
                    buf += chunk
                    while b"\n" in buf:
                        line, buf = buf.split(b"\n", 1)
                        if line.strip():
                            try:
                                self.control(json.loads(line))
                            except Exception as exc:  # noqa: BLE001 - reported to the driver, engine goes on
                                engine.emit("error", message=f"bad control message {line[:200]!r}: {exc}")
        finally:
            engine.effects.release_all()
            engine.flush()
            engine.emit("stopped", stats=engine.stats, seen=engine.tracker.stages_seen,
                        faults=engine.effects.states())
            nfq.unbind()
            nfsock.close()
            engine.close()


def sharpen_timing(realtime: bool) -> str:
    """Make holds and releases punctual: 1 ns timer slack and, when allowed (root), SCHED_FIFO priority so the
    engine is woken on time on a busy machine. Returns what was applied.

    Real-time comes only once the engine is ready (`Loop.run`): a FIFO task is never preempted by one of equal
    priority, so on a loaded machine an engine still importing at FIFO could wait behind other FIFO work for
    longer than its start may take."""
    import ctypes

    applied = []
    with contextlib.suppress(OSError, AttributeError):
        if ctypes.CDLL(None, use_errno=True).prctl(29, 1, 0, 0, 0) == 0:     # PR_SET_TIMERSLACK
            applied.append("timerslack=1ns")
    if realtime:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
            applied.append("SCHED_FIFO 10")
        except (OSError, AttributeError) as exc:
            applied.append(f"normal priority ({exc.__class__.__name__})")
    return ", ".join(applied)


def main(argv: list[str] | None = None) -> int:
    """`python -m harness.link.engine CONFIG.json`: run one link's engine until stopped."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m harness.link.engine CONFIG.json", file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as fh:
        config = json.load(fh)

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)      # an operator's Ctrl-C is for the driver; it stops us
    realtime = bool(config.get("realtime", True))
    if not realtime:
        print(f"engine timing: {sharpen_timing(False)}", file=sys.stderr, flush=True)
    try:
        engine = Engine(config)
    except OSError as exc:
        announce_failed(f"engine cannot start: {exc}")
        return 1
    loop = Loop(engine, config)
    try:
        loop.bind()
    except OSError as exc:
        announce_failed(str(exc))
        engine.close()
        return 1
    try:
        loop.run(realtime=realtime)                   # real-time priority from the ready line on, not before
    except OSError as exc:
        engine.emit("error", message=str(exc), fatal=True)
        return 1
    return 0

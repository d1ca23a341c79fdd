"""Child processes of the harness: they die with it, say they are ready in one JSON line, and stop in bounded time.

In the child, once it serves:

>>> announce_ready(listen="127.0.0.1:5000")            # doctest: +SKIP
{"event": "ready", "pid": 4242, "listen": "127.0.0.1:5000"}

In the harness:

>>> host = Child("host", ["posrig", "host", "serve", ...], log=evidence.file("host-serve.log"))  # doctest: +SKIP
>>> host.start(timeout=15)["listen"]                    # doctest: +SKIP
'127.0.0.1:5000'
>>> host.stop()                                         # doctest: +SKIP

A child that cannot start prints `{"event": "failed", "error": ...}` (`announce_failed`) or exits; `start()` then
raises `ChildFailed` with its log tail. Every child is forked by one long-lived spawner thread with
PR_SET_PDEATHSIG, so the kernel kills it when the harness dies, whatever thread asked for it.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from harness.core import forkserver

if TYPE_CHECKING:
    from harness.topology import Namespace

PR_SET_PDEATHSIG = 1
READY, FAILED = "ready", "failed"

_libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent() -> None:
    """preexec_fn: the child is SIGKILLed when the thread that spawned it ends (PR_SET_PDEATHSIG)."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


_spawn_queue: queue.Queue = queue.Queue()
_spawner: threading.Thread | None = None
_spawner_lock = threading.Lock()


def _spawn_loop() -> None:
    while True:
        call, done, box = _spawn_queue.get()
        try:
            box.append(call())
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller's thread
            box.append(exc)
        done.set()


def spawn(cmd: list[str], **kwargs: Any) -> subprocess.Popen:
    """Popen a long-running child that dies with this process, whatever thread asks.

    PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, so children are forked by one
    spawner thread that lives as long as the process; devices may then start from short-lived threads.
    """
    global _spawner
    kwargs.setdefault("preexec_fn", die_with_parent)
    with _spawner_lock:
        if _spawner is None:
            _spawner = threading.Thread(target=_spawn_loop, name="posrig-spawner", daemon=True)
            _spawner.start()
    done, box = threading.Event(), []
    _spawn_queue.put((lambda: subprocess.Popen(cmd, **kwargs), done, box))
    done.wait()
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]


def posrig_command() -> list[str]:
    """How to run `posrig` with this interpreter: the installed script beside it, else `python -m harness.cli`."""
    script = Path(sys.executable).with_name("posrig")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "harness.cli"]


# -- the child's side ------------------------------------------------------------------------------------------
def announce(event: str, **fields: Any) -> None:
    """One JSON line on stdout, flushed: how every posrig child talks to its supervisor."""
    sys.stdout.write(json.dumps({"event": event, **fields}, default=str) + "\n")
    sys.stdout.flush()


def announce_ready(**fields: Any) -> None:
    """Tell the supervisor this process serves now: `{"event": "ready", "pid": ..., **fields}`."""
    announce(READY, pid=os.getpid(), **fields)


def announce_failed(error: str, **fields: Any) -> None:
    """Tell the supervisor this process could not start, and why (then exit non-zero)."""
    announce(FAILED, pid=os.getpid(), error=error, **fields)


class StopRequest:
    """SIGTERM (the supervisor's stop) and SIGINT (Ctrl-C) caught from the moment this is made: make it before
    `announce_ready`, so a stop that comes right after the ready line is not lost, then `wait()`."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._event = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._caught)

    def _caught(self, signum: int, _frame: Any) -> None:
        self.signal = signum
        self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def wait(self) -> int:
        """Block until a stop signal came; returns its number."""
        while not self._event.wait(0.5):        # timed, so the handler runs promptly in the main thread
            pass
        return self.signal or signal.SIGTERM


# -- the harness's side ----------------------------------------------------------------------------------------
def _runqueue_wait(pid: int) -> float:
    """Seconds `pid` has spent runnable but waiting for a CPU (/proc/PID/schedstat; 0 where unknown)."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


class ChildFailed(RuntimeError):
    """A child process did not become ready; the message carries what it said and the tail of its log."""


class Child:
    """One supervised child process: started (in a namespace or here), awaited until ready, stopped in time.

    stdout carries JSON lines (the ready line first); `lines()` yields the ones after it. With `stdin=True` the
    child reads JSON lines from `send()`.
    """

    def __init__(self, name: str, argv: list[str], *, namespace: Namespace | None = None,
                 log: Path | None = None, stdin: bool = False, env: dict[str, str] | None = None,
                 preload: str | None = None):
        self.name = name
        self.preload = preload          # `python -m M ...` forked from a server that imported these (forkserver)
        self.argv = list(argv)
        self.namespace = namespace
        self.log = Path(log) if log is not None else None
        self.stdin = stdin
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.ready: dict[str, Any] = {}
        self._buf = b""
        self._send_lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def start(self, timeout: float, *, max_wait: float | None = None) -> dict[str, Any]:
        """Start the child and wait for its ready line; returns that line's fields. Raises ChildFailed.

        With `max_wait`, the wait is honest on a loaded machine: time the child spends runnable but waiting for a
        CPU does not count against `timeout`, up to `max_wait` seconds in all."""
        log = open(self.log, "ab") if self.log is not None else subprocess.DEVNULL
        kwargs: dict[str, Any] = {"stdin": subprocess.PIPE if self.stdin else subprocess.DEVNULL,
                                  "stdout": subprocess.PIPE, "stderr": log}
        if self.env is not None:
            kwargs["env"] = self.env
        try:
            if self.preload and self.argv[1:2] == ["-m"] and self.env is None and forkserver.enabled():
                self.proc = forkserver.server(self.preload).spawn(
                    self.argv[2], self.argv[3:], namespace=self.namespace, stdin=kwargs["stdin"],
                    stdout=subprocess.PIPE, stderr=log)
            else:
                self.proc = (self.namespace.popen(self.argv, **kwargs) if self.namespace is not None
                             else spawn(self.argv, **kwargs))
        except OSError as exc:
            raise ChildFailed(f"{self.name}: cannot run {' '.join(self.argv)}: {exc}") from exc
        finally:
            if log is not subprocess.DEVNULL:
                log.close()
        first = self.readline(timeout) if max_wait is None else self._await_ready(timeout, max_wait)
        if first is None or first.get("event") != READY:
            if first is not None and first.get("event") == FAILED:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=2.0)       # it is on its way out: keep its own exit code
            self.stop(timeout=2.0)
            if first is not None and first.get("event") == FAILED:
                why = f"{self.name} could not start: {first.get('error')}"
            elif first is None and self.proc.returncode is not None and self.proc.returncode >= 0:
                why = f"{self.name} exited ({self.proc.returncode}) before it was ready"
            else:
                said = json.dumps(first) if first else "nothing"
                why = f"{self.name} did not report ready within {timeout:g}s (it said: {said})"
                if max_wait is not None:
                    why += f"{self._starvation}; load average {os.getloadavg()[0]:.1f}"
            raise ChildFailed(f"{why}; command: {' '.join(self.argv)}" + self._log_tail())
        self.ready = first
        return first

    _starvation = ""

    def _await_ready(self, timeout: float, max_wait: float) -> dict[str, Any] | None:
        """The first line, waiting `timeout` seconds of the child's own time (not counting its waits for a CPU),
        at most `max_wait` seconds in all."""
        assert self.proc is not None
        began, starved0 = time.monotonic(), _runqueue_wait(self.proc.pid)
        while True:
            elapsed = time.monotonic() - began
            starved = max(0.0, _runqueue_wait(self.proc.pid) - starved0)
            left = min(timeout - (elapsed - starved), max_wait - elapsed)
            self._starvation = f" ({elapsed:.1f}s in all, {starved:.1f}s of them waiting for a CPU)"
            if left <= 0:
                return None
            asked = min(left, 0.5)
            t0 = time.monotonic()
            line = self.readline(asked)
            if line is not None or self.proc.poll() is not None:
                return line
            if time.monotonic() - t0 < asked:             # its stdout ended: it is on its way out
                time.sleep(0.05)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 3.0, sig: int = signal.SIGTERM) -> int | None:
        """Ask the child to stop (`sig`), SIGKILL it after `timeout`; returns its exit code. Idempotent."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        self._close_pipes()
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL the child (a crash: no chance to clean up) and reap it."""
        if self.alive:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=5)

    def _close_pipes(self) -> None:
        assert self.proc is not None
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    # -- the JSON-lines channel --------------------------------------------------------------------------------
    def readline(self, timeout: float | None) -> dict[str, Any] | None:
        """The next JSON line from the child (None at its end, or after `timeout` seconds of silence)."""
        assert self.proc is not None and self.proc.stdout is not None
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            try:
                fd = self.proc.stdout.fileno()
                ready, _, _ = select.select([fd], [], [], 0.2 if left is None else min(0.2, left))
            except (ValueError, OSError):          # closed by stop()
                return None
            if not ready:
                if self.proc.poll() is not None and not self._drain(fd):
                    return None
                continue
            if not self._drain(fd):
                return None
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            value = json.loads(line)
        except ValueError:
            return {"event": "unreadable", "line": line[:200].decode("latin-1")}
        return value if isinstance(value, dict) else {"event": "unreadable", "line": repr(value)[:200]}

    def _drain(self, fd: int) -> bool:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            return False
        self._buf += chunk
        return bool(chunk)

    def lines(self) -> Iterator[dict[str, Any]]:
        """Every JSON line after the ready line, until the child's stdout ends."""
        while True:
            line = self.readline(None)
            if line is None:
                return
            yield line

    def send(self, message: dict[str, Any]) -> None:
        """One JSON line to the child's stdin. Raises OSError when the child is gone."""
        if self.proc is None or self.proc.stdin is None:
            raise OSError(f"{self.name} has no stdin channel")
        data = (json.dumps(message) + "\n").encode()
        with self._send_lock:
            stream: IO[bytes] = self.proc.stdin
            try:
                stream.write(data)
                stream.flush()
            except ValueError as exc:                  # closed file
                raise OSError(str(exc)) from None

    def _log_tail(self, limit: int = 2000) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return f"; log {self.log}:\n" + self.log.read_text(errors="replace")[-limit:]

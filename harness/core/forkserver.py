"""A fork server: one process per harness process that imports a heavy module once (the link engine: scapy and
NetfilterQueue, about 0.4 CPU-seconds) and forks a ready copy of itself for every engine a bench starts.

>>> proc = forkserver.spawn("harness.link.engine", ["config.json"], namespace=ns,
...                         stdin=PIPE, stdout=PIPE, stderr=log)       # a Popen-like `Forked`  # doctest: +SKIP
>>> proc.poll(), proc.pid                                               # doctest: +SKIP
(None, 4242)

The server is started on first use, dies with this process (PR_SET_PDEATHSIG), and its children die with it.
A child enters the network namespace it is given, takes the three standard streams it is sent (SCM_RIGHTS), and
runs the module as `python -m MODULE ARGS` would. The server tells this process when a child exits, with its
exit code, so `Forked` waits and polls like `subprocess.Popen`. `POSRIG_FORKSERVER=0` starts every engine as a
process of its own instead.
"""

from __future__ import annotations

import array
import contextlib
import io
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from typing import IO, Any

MAX_MESSAGE = 1 << 16


def enabled() -> bool:
    return os.environ.get("POSRIG_FORKSERVER", "1").strip().lower() not in ("0", "no", "off", "false")


# -- this process's side -------------------------------------------------------------------------------------------
class ForkServerError(OSError):
    """The fork server is gone or refused a request; the message says which."""


class Forked:
    """A child of the fork server, driven like `subprocess.Popen` (pid, stdin, stdout, poll, wait, kill)."""

    def __init__(self, server: ForkServer, pid: int, args: list[str], stdin: IO[bytes] | None,
                 stdout: IO[bytes] | None):
        self.server, self.pid, self.args = server, pid, args
        self.stdin, self.stdout, self.stderr = stdin, stdout, None
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.server.exit_code(self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.poll() is None:
            code = self.server.wait_exit(self.pid, timeout)
            if code is None:
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
            self.returncode = code
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ForkServer:
    """The client of one running fork server that has imported `preload`."""

    def __init__(self, preload: str):
        from harness.core.process import spawn

        self.preload = preload
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = spawn([sys.executable, "-m", "harness.core.forkserver", str(theirs.fileno()), preload],
                              pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
        finally:
            theirs.close()
        self.sock = mine
        self._lock = threading.Lock()              # one request at a time on the socket
        self._cond = threading.Condition()
        self._exits: dict[int, int] = {}
        self._replies: dict[int, dict[str, Any]] = {}
        self._seq = 0
        self._gone = False
        self._reader = threading.Thread(target=self._read, name=f"forkserver-{preload}", daemon=True)
        self._reader.start()

    @property
    def alive(self) -> bool:
        return not self._gone and self.proc.poll() is None

    def _read(self) -> None:
        try:
            while True:
                data = self.sock.recv(MAX_MESSAGE)
                if not data:
                    break
                msg = json.loads(data)
                with self._cond:
                    if "exit" in msg:
                        self._exits[int(msg["exit"])] = int(msg["code"])
                    else:
                        self._replies[int(msg["id"])] = msg
                    self._cond.notify_all()
        except (OSError, ValueError):
            pass
        with self._cond:
            self._gone = True
            self._cond.notify_all()

    def exit_code(self, pid: int) -> int | None:
        with self._cond:
            if pid in self._exits:
                return self._exits[pid]
            return -signal.SIGKILL if self._gone else None      # the server died: its children with it

    def wait_exit(self, pid: int, timeout: float | None) -> int | None:
        with self._cond:
            self._cond.wait_for(lambda: pid in self._exits or self._gone, timeout)
        return self.exit_code(pid)

    def spawn(self, module: str, args: list[str], *, namespace: Any = None, stdin: Any = None, stdout: Any = None,
              stderr: Any = None, timeout: float = 10.0) -> Forked:
        """Fork a child that runs `python -m module args` (inside `namespace`'s network namespace).
        stdin/stdout: subprocess.PIPE or DEVNULL/None; stderr: an open file, DEVNULL or None."""
        ours: list[IO[bytes] | None] = [None, None]
        theirs: list[int] = []
        close_after: list[int] = []
        null = os.open(os.devnull, os.O_RDWR)
        close_after.append(null)
        try:
            if stdin == subprocess.PIPE:
                r, w = os.pipe()
                theirs.append(r)
                close_after.append(r)
                ours[0] = open(w, "wb", buffering=0)
            else:
                theirs.append(null)
            if stdout == subprocess.PIPE:
                r, w = os.pipe()
                theirs.append(w)
                close_after.append(w)
                ours[1] = open(r, "rb", buffering=0)
            else:
                theirs.append(null)
            theirs.append(stderr.fileno() if hasattr(stderr, "fileno") else null)
            with self._lock:
                self._seq += 1
                seq = self._seq
                request = {"id": seq, "module": module, "argv": list(args),
                           "netns": str(namespace.path) if namespace is not None else None}
                try:
                    self.sock.sendmsg([json.dumps(request).encode()],
                                      [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", theirs))])
                except OSError as exc:
                    raise ForkServerError(f"fork server for {self.preload} is gone: {exc}") from None
            with self._cond:
                if not self._cond.wait_for(lambda: seq in self._replies or self._gone, timeout):
                    raise ForkServerError(f"fork server for {self.preload} did not answer within {timeout:g}s")
                reply = self._replies.pop(seq, None)
            if reply is None:
                raise ForkServerError(f"fork server for {self.preload} exited")
            if "error" in reply:
                raise ForkServerError(f"fork server for {self.preload}: {reply['error']}")
        except BaseException:
            for f in ours:
                if f is not None:
                    f.close()
            raise
        finally:
            for fd in close_after:
                os.close(fd)
        return Forked(self, int(reply["pid"]), [module, *args], ours[0], ours[1])

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        with contextlib.suppress(ProcessLookupError, OSError):
            self.proc.kill()
            self.proc.wait(5)


_servers: dict[str, ForkServer] = {}
_servers_lock = threading.Lock()


def server(preload: str) -> ForkServer:
    """This process's fork server for `preload`, started (again) if needed."""
    with _servers_lock:
        found = _servers.get(preload)
        if found is None or not found.alive:
            if found is not None:
                found.close()
            found = _servers[preload] = ForkServer(preload)
        return found


def spawn(module: str, args: list[str], **kwargs: Any) -> Forked:
    """Fork `python -m module args` from this process's warm fork server for `module`."""
    return server(module).spawn(module, args, **kwargs)


# -- the server process ----------------------------------------------------------------------------------------------
def _child(request: dict[str, Any], fds: list[int], sock: socket.socket) -> None:
    """In the forked child: become `python -m module argv` in the requested namespace. Never returns."""
    code = 1
    try:
        sock.close()
        from harness.core.process import die_with_parent

        die_with_parent()                                  # the server's children die with it
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if request.get("netns"):
            from harness.topology.namespace import _setns

            fd = os.open(request["netns"], os.O_RDONLY)
            _setns(fd)
            os.close(fd)
        for target, fd in enumerate(fds[:3]):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True)
        import runpy

        sys.argv = [request["module"], *request["argv"]]
        os.environ.update(request.get("env") or {})
        try:
            runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - whatever happened, the child must not return into the server loop
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def serve(fd: int, preload: str) -> None:
    """The server loop: fork a child per request, report every child's exit."""
    import importlib

    from harness.core.process import die_with_parent

    die_with_parent()
    for name in preload.split(","):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    sock = socket.socket(fileno=fd)
    wake_r, wake_w = os.pipe()                            # SIGCHLD wakes the loop: exits are told at once
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    children: set[int] = set()
    while True:
        try:
            ready, _, _ = select.select([sock, wake_r], [], [], 1.0)
        except InterruptedError:
            ready = []
        if wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_r, 512)
            ready.remove(wake_r)
        for pid in list(children):
            with contextlib.suppress(ChildProcessError):
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    children.discard(pid)
                    code = os.waitstatus_to_exitcode(status)
                    with contextlib.suppress(OSError):
                        sock.send(json.dumps({"exit": pid, "code": code}).encode())
        if not ready:
            continue
        data, ancdata, _, _ = sock.recvmsg(MAX_MESSAGE, socket.CMSG_SPACE(8 * array.array("i").itemsize))
        if not data:
            return                                        # this process's client is gone
        fds: list[int] = []
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                arr = array.array("i")
                arr.frombytes(payload[: len(payload) - len(payload) % arr.itemsize])
                fds.extend(arr)
        try:
            request = json.loads(data)
            pid = os.fork()
        except (OSError, ValueError) as exc:
            for f in fds:
                os.close(f)
            with contextlib.suppress(OSError, NameError):
                sock.send(json.dumps({"id": request.get("id", 0), "error": str(exc)}).encode())
            continue
        if pid == 0:
            signal.set_wakeup_fd(-1)
            os.close(wake_r)
            os.close(wake_w)
            _child(request, fds, sock)
        for f in fds:
            os.close(f)
        children.add(pid)
        sock.send(json.dumps({"id": request["id"], "pid": pid}).encode())


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2])

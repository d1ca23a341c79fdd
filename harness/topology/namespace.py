"""One network namespace: held open by a holder process, entered by threads, commands and children run inside it.

Each namespace is held by a small holder process created with PR_SET_PDEATHSIG, so the kernel tears it down if
this process is SIGKILLed. As root it is also named (`ip netns list` shows `posrig-<pid>-<seq>-<node>`) so an
engineer can `ip netns exec` into it; those names are what `harness.topology.reaper` removes after a killed run.
Works as root and, unprivileged, inside `unshare -Urn` (user namespaces).

>>> ns = new_namespace("host", "posrig-4242-0-host", name_it=True)      # doctest: +SKIP
>>> with ns.listening(("0.0.0.0", 5000)) as srv: ...                    # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.core.process import PR_SET_PDEATHSIG, spawn

log = logging.getLogger(__name__)

CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")

ENABLE_HINT = ("run as root, or as an unprivileged user inside a user namespace: `unshare -Urn pytest ...` "
               "(needs kernel.unprivileged_userns_clone=1 and user.max_user_namespaces > 0)")

_libc = ctypes.CDLL(None, use_errno=True)


BIND_PATIENCE = 2.0              # s a listener waits for its port to be let go by the one it replaces


class NetnsUnavailable(RuntimeError):
    """Network namespaces cannot be built here; the message says how to enable them."""


class TopologyError(RuntimeError):
    """A kernel command failed while building or tearing down the topology."""


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns(CLONE_NEWNET) failed: {os.strerror(err)}")


def _holder_preexec() -> None:
    """Runs in the holder child before exec: die with our parent, then move into a fresh network namespace."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if _libc.unshare(CLONE_NEWNET) != 0:
        os._exit(97)



def capabilities() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def in_initial_user_ns() -> bool:
    """True outside any user namespace (uid_map is the identity over the whole range)."""
    try:
        return Path("/proc/self/uid_map").read_text().split() == ["0", "0", "4294967295"]
    except OSError:
        return True


_probe_result: tuple[bool, str] | None = None


def probe() -> tuple[bool, str]:
    """(True, how) when namespaces can be built here, else (False, reason with how to enable it). Cached."""
    global _probe_result
    if _probe_result is not None:
        return _probe_result
    caps = capabilities()
    missing = [name for bit, name in ((21, "CAP_SYS_ADMIN"), (12, "CAP_NET_ADMIN")) if not caps >> bit & 1]
    if missing:
        _probe_result = (False, f"missing {' and '.join(missing)}: {ENABLE_HINT}")
    elif not shutil.which("ip") or not shutil.which("nsenter"):
        _probe_result = (False, "the `ip` (iproute2) and `nsenter` (util-linux) commands are needed: "
                                "apt-get install iproute2 util-linux")
    else:
        try:
            p = subprocess.run(["true"], preexec_fn=_holder_preexec, timeout=10)
            ok = p.returncode == 0
        except OSError as exc:
            ok = False
            log.debug("namespace probe failed: %s", exc)
        how = "root" if in_initial_user_ns() else "user namespace"
        _probe_result = (True, how) if ok else (False, f"unshare(CLONE_NEWNET) is refused here: {ENABLE_HINT}")
    return _probe_result


def run(cmd: list[str], *, input: str | None = None, check: bool = True, timeout: float = 20) -> str:
    p = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        shown = " ".join(cmd) + (f" <<< {input.strip()!r}" if input else "")
        raise TopologyError(f"`{shown}` failed ({p.returncode}): {p.stderr.strip() or p.stdout.strip()}")
    return p.stdout


@dataclass(eq=False)
class Namespace:
    """One node of the topology: a network namespace held open by a holder process."""

    node: str
    label: str
    holder: subprocess.Popen
    named: bool = False
    ip: str | None = None                    # this node's address on its segment (None for the link node)

    @property
    def path(self) -> str:
        return str(NETNS_DIR / self.label) if self.named else f"/proc/{self.holder.pid}/ns/net"

    def command(self, cmd: list[str]) -> list[str]:
        """`cmd` wrapped to run inside this namespace."""
        return ["nsenter", f"--net={self.path}", "--", *cmd]

    def run(self, cmd: list[str], *, input: str | None = None, check: bool = True, timeout: float = 20) -> str:
        """Run a command inside this namespace and return its stdout; raise TopologyError on failure."""
        return run(self.command(cmd), input=input, check=check, timeout=timeout)

    def popen(self, cmd: list[str], **kwargs) -> subprocess.Popen:
        """Start a long-running process inside this namespace. It is SIGKILLed if this process dies."""
        return spawn(self.command(cmd), **kwargs)

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """Run the body with the calling thread inside this namespace; sockets made here stay in it."""
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(self.path, os.O_RDONLY)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(home)
        finally:
            os.close(target)
            os.close(home)

    def socket(self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM, proto: int = 0) -> socket.socket:
        """A socket that lives in this namespace."""
        with self.entered():
            return socket.socket(family, type, proto)

    def connect(self, address: tuple[str, int], timeout: float = 5.0) -> socket.socket:
        """A TCP connection from this node to `address`."""
        with self.entered():
            return socket.create_connection(address, timeout=timeout)

    def listen(self, address: tuple[str, int], backlog: int = 16) -> socket.socket:
        """A listening TCP socket bound inside this namespace (SO_REUSEADDR set). The port may still be held for a
        moment by the listener of the device this one replaces (a bench slot's previous scenario, a power cycle):
        the bind is tried again for up to `BIND_PATIENCE` s before EADDRINUSE is raised, naming the address."""
        s = self.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + BIND_PATIENCE
        while True:
            try:
                s.bind(address)
                break
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                    s.close()
                    raise OSError(exc.errno, f"{exc.strerror}: {address[0]}:{address[1]} in namespace "
                                             f"{self.label}") from None
                time.sleep(0.05)
        s.listen(backlog)
        return s

    @contextlib.contextmanager
    def listening(self, address: tuple[str, int]) -> Iterator[socket.socket]:
        s = self.listen(address)
        try:
            yield s
        finally:
            s.close()




def new_namespace(node: str, label: str, name_it: bool) -> Namespace:
    """A fresh network namespace for `node`, held by a `sleep infinity` that dies with this process."""
    holder = spawn(["sleep", "infinity"], preexec_fn=_holder_preexec, start_new_session=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ns = Namespace(node=node, label=label, holder=holder)
    if name_it:
        try:
            run(["ip", "netns", "attach", label, str(holder.pid)])
            ns.named = True
        except TopologyError as exc:
            log.debug("namespace %s stays unnamed: %s", label, exc)
    return ns

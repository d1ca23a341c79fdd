"""Emulated bench topology: one network namespace per node, joined by veth pairs through a middle "link" node.

    till ──veth── ┐
    terminal ─────┤ link (routes between segments; the faulted links live here)
    host ──veth── ┘

>>> topo = build_topology(["till", "terminal", "host"])
>>> with topo.nodes["host"].listening(("0.0.0.0", 5000)) as srv: ...
>>> topo.close()

Each namespace is held by a small holder process created with PR_SET_PDEATHSIG, so the kernel tears everything
down if this process is SIGKILLed. As root the namespaces are also given names (`ip netns list` shows
`posrig-<pid>-<seq>-<node>`) so an engineer can `ip netns exec` into them; those names are what `reap_leftovers()`
removes after a killed run. Works as root and, unprivileged, inside `unshare -Urn` (user namespaces).
Namespaces are isolated, so every topology reuses the same subnets without colliding, also under pytest-xdist.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ipaddress
import itertools
import logging
import os
import queue
import re
import shlex
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
NETNS_DIR = Path("/run/netns")
LABEL = re.compile(r"^posrig-(\d+)-")          # namespaces, e.g. posrig-4242-0-till
IFNAME = re.compile(r"^pr(\d+)-")              # root-namespace interfaces (bench bridges), e.g. pr4242-br0
COMMENT = re.compile(r"posrig-(\d+)")          # iptables rule comments in the root namespace
DEFAULT_SUBNET = "198.18.0.0/16"               # RFC 2544 benchmarking range: never routed outside the bench

ENABLE_HINT = ("run as root, or as an unprivileged user inside a user namespace: `unshare -Urn pytest ...` "
               "(needs kernel.unprivileged_userns_clone=1 and user.max_user_namespaces > 0)")

_libc = ctypes.CDLL(None, use_errno=True)
_seq = itertools.count()
_live: set[Topology] = set()
_live_lock = threading.Lock()


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


def spawn(cmd: list[str], **kwargs) -> subprocess.Popen:
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


def _caps() -> int:
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
    caps = _caps()
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


def _run(cmd: list[str], *, input: str | None = None, check: bool = True, timeout: float = 20) -> str:
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
        return _run(self.command(cmd), input=input, check=check, timeout=timeout)

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
        """A listening TCP socket bound inside this namespace (SO_REUSEADDR set)."""
        s = self.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(address)
        s.listen(backlog)
        return s

    @contextlib.contextmanager
    def listening(self, address: tuple[str, int]) -> Iterator[socket.socket]:
        s = self.listen(address)
        try:
            yield s
        finally:
            s.close()


@dataclass(frozen=True)
class Segment:
    """The veth pair joining one node to the link node."""

    node: str
    node_if: str             # inside the node
    link_if: str             # inside the link node
    node_ip: str
    link_ip: str
    prefix: int


@dataclass(eq=False)
class Topology:
    """A built topology. `close()` removes every namespace, veth and rule it made; it is idempotent."""

    run_label: str
    nodes: dict[str, Namespace]
    link: Namespace
    segments: dict[str, Segment]
    _closed: bool = field(default=False, repr=False)

    def ip(self, node: str) -> str:
        """The address of `node` as seen from every other node."""
        try:
            return self.segments[node].node_ip
        except KeyError:
            raise KeyError(f"no node {node!r} in this topology; nodes: {', '.join(self.nodes)}") from None

    def namespaces(self) -> list[Namespace]:
        return [*self.nodes.values(), self.link]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with _live_lock:
            _live.discard(self)
        errors = []
        for ns in self.namespaces():
            _kill_namespace_processes(ns)
            if ns.named:
                try:
                    _run(["ip", "netns", "del", ns.label])
                except (TopologyError, subprocess.TimeoutExpired) as exc:
                    errors.append(str(exc))
            with contextlib.suppress(ProcessLookupError):
                ns.holder.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                ns.holder.wait(timeout=5)
        if errors:
            raise TopologyError("teardown left objects behind: " + "; ".join(errors))

    def __enter__(self) -> Topology:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _pids_in(ns_path: str) -> list[int]:
    """Processes whose network namespace is the one at `ns_path` (by inode)."""
    try:
        target = os.stat(ns_path).st_ino
    except OSError:
        return []
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}/ns/net").st_ino == target:
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


def _kill_namespace_processes(ns: Namespace) -> None:
    me = os.getpid()
    for pid in _pids_in(ns.path):
        if pid not in (me, ns.holder.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def _spawn_holder(node: str, label: str, name_it: bool) -> Namespace:
    holder = spawn(["sleep", "infinity"], preexec_fn=_holder_preexec, start_new_session=True,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ns = Namespace(node=node, label=label, holder=holder)
    if name_it:
        try:
            _run(["ip", "netns", "attach", label, str(holder.pid)])
            ns.named = True
        except TopologyError as exc:
            log.debug("namespace %s stays unnamed: %s", label, exc)
    return ns


def build_topology(nodes: list[str], subnet: str = DEFAULT_SUBNET) -> Topology:
    """Build one namespace per node plus a routing "link" namespace. Raises NetnsUnavailable if impossible."""
    ok, why = probe()
    if not ok:
        raise NetnsUnavailable(why)
    if "link" in nodes:
        raise ValueError("'link' is the middle node's name; rename that device node")
    net = ipaddress.ip_network(subnet)
    if net.prefixlen > 16:
        raise ValueError(f"subnet {subnet} must be a /16 or larger: each node gets a /24 of it")
    seq = next(_seq)
    run_label = f"posrig-{os.getpid()}-{seq}"
    name_it = in_initial_user_ns() and os.geteuid() == 0
    reap_leftovers()
    link = _spawn_holder("link", f"{run_label}-link", name_it)
    topo = Topology(run_label=run_label, nodes={}, link=link, segments={})
    with _live_lock:
        _live.add(topo)
    try:
        subnets = list(net.subnets(new_prefix=24))
        veths = []
        for i, node in enumerate(nodes):
            ns = _spawn_holder(node, f"{run_label}-{node}", name_it)
            topo.nodes[node] = ns
            seg_net = subnets[i + 1]
            seg = Segment(node=node, node_if="eth0", link_if=f"to-{node}"[:15],
                          node_ip=str(seg_net[2]), link_ip=str(seg_net[1]), prefix=24)
            ns.ip = seg.node_ip
            topo.segments[node] = seg
            veths.append(f"link add {seg.link_if} netns {link.holder.pid} type veth "
                         f"peer name {seg.node_if} netns {ns.holder.pid}")
        _run(["ip", "-batch", "-"], input="\n".join(veths) + "\n")
        for node, ns in topo.nodes.items():
            seg = topo.segments[node]
            ns.run(["ip", "-batch", "-"], input=(
                "link set lo up\n"
                f"addr add {seg.node_ip}/{seg.prefix} dev {seg.node_if}\n"
                f"link set {seg.node_if} up\n"
                f"route add default via {seg.link_ip}\n"))
        link_cmds = ["link set lo up"]
        for seg in topo.segments.values():
            link_cmds += [f"addr add {seg.link_ip}/{seg.prefix} dev {seg.link_if}", f"link set {seg.link_if} up"]
        link.run(["ip", "-batch", "-"], input="\n".join(link_cmds) + "\n")
        link.run(["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        return topo
    except BaseException:
        topo.close()
        raise


def _alive(pid: int) -> bool:
    """True when `pid` is a live harness process (python, pytest or posrig), so its objects must stay."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return any(word in cmdline for word in (b"python", b"pytest", b"posrig"))


def reap_leftovers() -> list[str]:
    """Remove namespaces, interfaces and iptables rules of harness runs whose process is gone (e.g. SIGKILL).

    Touches only objects carrying the harness prefix; returns what it removed.
    """
    removed: list[str] = []
    if NETNS_DIR.is_dir():
        for label in sorted(os.listdir(NETNS_DIR)):
            m = LABEL.match(label)
            if not m or _alive(int(m.group(1))):
                continue
            for pid in _pids_in(str(NETNS_DIR / label)):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            try:
                _run(["ip", "netns", "del", label])
                removed.append(f"netns {label}")
            except TopologyError as exc:
                log.warning("could not reap %s: %s", label, exc)
    if shutil.which("ip"):
        for line in _run(["ip", "-o", "link", "show"], check=False).splitlines():
            parts = line.split(": ")
            if len(parts) < 2:
                continue
            ifname = parts[1].split("@")[0]
            m = IFNAME.match(ifname)
            if m and not _alive(int(m.group(1))):
                _run(["ip", "link", "del", ifname], check=False)
                removed.append(f"link {ifname}")
    for tool in ("iptables", "ip6tables"):
        if not shutil.which(f"{tool}-save"):
            continue
        table = None
        for line in _run([f"{tool}-save"], check=False).splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith("-A ") and table:
                m = COMMENT.search(line)
                if m and not _alive(int(m.group(1))):
                    _run([tool, "-t", table, "-D", *shlex.split(line)[1:]], check=False)
                    removed.append(f"{tool} -t {table} {line}")
    for what in removed:
        log.info("reaped leftover of a killed run: %s", what)
    return removed


@atexit.register
def _close_all() -> None:
    with _live_lock:
        live = list(_live)
    for topo in live:
        with contextlib.suppress(Exception):
            topo.close()

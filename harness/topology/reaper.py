"""The reaper: removes what a killed harness run left behind (namespaces, bench bridges, iptables rules).

Everything the harness creates carries its process id (`posrig-<pid>-...` namespaces and rule comments,
`pr<pid>-...` interfaces); an object whose process is gone is a leftover. Touches nothing else.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shlex
import shutil
import signal
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from harness.topology.namespace import NETNS_DIR, TopologyError, run

if TYPE_CHECKING:
    from harness.topology.namespace import Namespace

log = logging.getLogger(__name__)

LABEL = re.compile(r"^posrig-(\d+)-")          # namespaces, e.g. posrig-4242-0-till
IFNAME = re.compile(r"^pr(\d+)-")              # root-namespace interfaces (bench bridges), e.g. pr4242-br0
COMMENT = re.compile(r"posrig-(\d+)")          # iptables rule comments in the root namespace
TMPFILE = re.compile(r"^posrig-(\d+)-(?:warm|tls)-")   # a warm engine's log, a warm till's folder, a TLS key folder


def pids_in(ns_path: str) -> list[int]:
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


def kill_namespace_processes(ns: Namespace) -> None:
    me = os.getpid()
    for pid in pids_in(ns.path):
        if pid not in (me, ns.holder.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)



def _alive(pid: int) -> bool:
    """True when `pid` is a live harness process (python, pytest or posrig), so its objects must stay."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return any(word in cmdline for word in (b"python", b"pytest", b"posrig"))


def _owner_gone(label: str) -> bool:
    """True for a named namespace left by a dead run: its owner is gone, or nothing lives in it any more (its
    holder died with its run; a live topology always has its holder inside until it is deleted)."""
    m = LABEL.match(label)
    if not m:
        return False
    return not _alive(int(m.group(1))) or not pids_in(str(NETNS_DIR / label))


def _found() -> tuple[list[str], list[str], list[tuple[str, str, str]]]:
    """(namespaces, root interfaces, (tool, table, rule)) left by runs that are gone."""
    spaces = [label for label in sorted(os.listdir(NETNS_DIR)) if _owner_gone(label)] if NETNS_DIR.is_dir() else []
    links = []
    if shutil.which("ip"):
        for line in run(["ip", "-o", "link", "show"], check=False).splitlines():
            parts = line.split(": ")
            if len(parts) < 2:
                continue
            ifname = parts[1].split("@")[0]
            m = IFNAME.match(ifname)
            if m and not _alive(int(m.group(1))):
                links.append(ifname)
    rules = []
    for tool in ("iptables", "ip6tables"):
        if not shutil.which(f"{tool}-save"):
            continue
        table = None
        for line in run([f"{tool}-save"], check=False).splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith("-A ") and table:
                m = COMMENT.search(line)
                if m and not _alive(int(m.group(1))):
                    rules.append((tool, table, line))
    return spaces, links, rules


def _files() -> list[Path]:
    """Temporary files of runs that are gone (a warm engine's log, a warm till's folder, a bench TLS key folder:
    removed by their run unless it was killed)."""
    found = []
    for path in sorted(Path(tempfile.gettempdir()).glob("posrig-*-*-*")):
        m = TMPFILE.match(path.name)
        if m and not _alive(int(m.group(1))):
            found.append(path)
    return sorted(found)


def leftovers() -> list[str]:
    """What killed runs left behind, without touching it (for `posrig doctor`)."""
    spaces, links, rules = _found()
    return [f"netns {s}" for s in spaces] + [f"link {i}" for i in links] + \
        [f"{t} -t {tb} {r}" for t, tb, r in rules] + [f"file {f}" for f in _files()]


def reap_leftovers() -> list[str]:
    """Remove namespaces, interfaces and iptables rules of harness runs whose process is gone (e.g. SIGKILL).

    Touches only objects carrying the harness prefix; returns what it removed. Called at the start of every
    command that builds namespaces (`posrig run`, each topology) and by `posrig doctor --clean`.
    """
    removed: list[str] = []
    spaces, links, rules = _found()
    for label in spaces:
        for pid in pids_in(str(NETNS_DIR / label)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        try:
            run(["ip", "netns", "del", label])
            removed.append(f"netns {label}")
        except TopologyError as exc:
            if (NETNS_DIR / label).exists():             # else another run's reaper removed it first: fine
                log.warning("could not reap %s: %s", label, exc)
    for ifname in links:
        run(["ip", "link", "del", ifname], check=False)
        removed.append(f"link {ifname}")
    for tool, table, line in rules:
        run([tool, "-t", table, "-D", *shlex.split(line)[1:]], check=False)
        removed.append(f"{tool} -t {table} {line}")
    for path in _files():
        with contextlib.suppress(FileNotFoundError):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(f"file {path}")
    for what in removed:
        log.info("reaped leftover of a killed run: %s", what)
    return removed

"""The iptables rules that send a link's packets to its engine's NFQUEUE, tagged so leftovers can be reaped.

Every rule carries `-m comment --comment posrig-<pid>-<link>` (what `harness.topology.reaper` matches)
and `--queue-bypass`: while no engine is bound to the queue (it died, or has not started), the kernel lets the
packets through instead of dropping them. That is the link's fail-open.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable

Runner = Callable[[list[str]], str]
INJECTED_MARK = 0x706F73     # fwmark ("pos") of the packets the engine forges (harness.link.engine.forge)


def comment(link: str) -> str:
    return f"posrig-{os.getpid()}-{link}"


def queue_range(in_root_namespace: bool) -> tuple[int, int]:
    """Queue numbers to try. Queues are per network namespace: a private namespace starts at 0; the machine's
    own namespace (a physical bench) starts at a per-process offset so parallel runs do not collide."""
    if not in_root_namespace:
        return 0, 64
    return 1024 + (os.getpid() % 4000) * 8, 64


def local_run(cmd: list[str]) -> str:
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    if p.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` failed ({p.returncode}): {p.stderr.strip()}")
    return p.stdout


class QueueRules:
    """A set of FORWARD rules (or of `chain`) queueing matched packets to one NFQUEUE; `remove()` deletes
    exactly those."""

    def __init__(self, run: Runner, link: str, queue: int, matches: list[list[str]], chain: str = "FORWARD"):
        self.run = run
        self.chain = chain
        self.tag = comment(link)
        self.queue = queue
        self.rules = [[*m, "-m", "comment", "--comment", self.tag, "-j", "NFQUEUE", "--queue-num", str(queue),
                       "--queue-bypass"] for m in matches]
        self.installed: list[list[str]] = []

    def install(self) -> None:
        for rule in self.rules:
            self.run(["iptables", "-w", "5", "-I", self.chain, *rule])
            self.installed.append(rule)

    def remove(self) -> None:
        errors = []
        while self.installed:
            rule = self.installed.pop()
            try:
                self.run(["iptables", "-w", "5", "-D", self.chain, *rule])
            except Exception as exc:  # noqa: BLE001 - collected: every rule gets its chance to go
                errors.append(str(exc))
        if errors:
            raise RuntimeError("; ".join(errors))

    def listed(self) -> list[str]:
        """Rules carrying this link's tag (for tests and `posrig link`)."""
        out = self.run(["iptables-save", "-t", "filter"])
        return [line for line in out.splitlines() if self.tag in line]


class RedirectRule:
    """One nat PREROUTING REDIRECT rule (a terminating TLS link's front proxy), tagged like the queue rules."""

    def __init__(self, run: Runner, link: str, match: list[str], to_port: int):
        self.run = run
        self.rule = [*match, "-m", "comment", "--comment", comment(link), "-j", "REDIRECT", "--to-ports",
                     str(to_port)]
        self.installed = False

    def install(self) -> None:
        self.run(["iptables", "-w", "5", "-t", "nat", "-I", "PREROUTING", *self.rule])
        self.installed = True

    def remove(self) -> None:
        if self.installed:
            self.installed = False
            self.run(["iptables", "-w", "5", "-t", "nat", "-D", "PREROUTING", *self.rule])

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
    """A set of FORWARD rules queueing matched packets to one NFQUEUE; `remove()` deletes exactly those."""

    def __init__(self, run: Runner, link: str, queue: int, matches: list[list[str]]):
        self.run = run
        self.tag = comment(link)
        self.queue = queue
        self.rules = [[*m, "-m", "comment", "--comment", self.tag, "-j", "NFQUEUE", "--queue-num", str(queue),
                       "--queue-bypass"] for m in matches]
        self.installed: list[list[str]] = []

    def install(self) -> None:
        for rule in self.rules:
            self.run(["iptables", "-w", "5", "-I", "FORWARD", *rule])
            self.installed.append(rule)

    def remove(self) -> None:
        errors = []
        while self.installed:
            rule = self.installed.pop()
            try:
                self.run(["iptables", "-w", "5", "-D", "FORWARD", *rule])
            except Exception as exc:  # noqa: BLE001 - collected: every rule gets its chance to go
                errors.append(str(exc))
        if errors:
            raise RuntimeError("; ".join(errors))

    def listed(self) -> list[str]:
        """Rules in FORWARD carrying this link's tag (for tests and `posrig link`)."""
        out = self.run(["iptables-save", "-t", "filter"])
        return [line for line in out.splitlines() if self.tag in line]

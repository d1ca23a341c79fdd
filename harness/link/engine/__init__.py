"""The link engine: a process that receives the link's packets from NFQUEUE and decides on each one.

Runs where the traffic is (the link namespace, or the bench machine with its bridge); the kernel forwards,
iptables sends the link's packets to this engine's queue, and the engine gives every packet a decision: accept,
drop, hold for N ms (retain, accept later) or accept plus inject (forged RSTs, duplicates). It never
terminates TCP. If this process dies the queue goes away and iptables' `--queue-bypass` lets traffic through
(fail-open).

    python -m harness.link.engine CONFIG.json      # control on stdin, events on stdout, both JSON lines

It is a supervised child (`harness.core.process`): it announces `{"event": "ready", "queue": N, ...}` and
`harness.link.driver.EngineLink` runs it with `Child`. One concern per module:

    forge.py      IPv4/TCP packets built with checksums; the Injector that sends forged packets
    effects.py    what each fault action does (drop ranges, holds, outages, rst + probe, duplicate, corrupt)
    decision.py   the decision on each packet, and the capture
    loop.py       NFQUEUE binding (fail-open), bounded batches, timers, the control channel, main()
"""

from harness.link.engine.decision import Engine
from harness.link.engine.loop import main, sharpen_timing

__all__ = ["Engine", "main", "sharpen_timing"]

"""`posrig link`: on a physical bench, arm faults on a link by payment stage while a person runs a payment.

    posrig link --rig rigs/bench.yaml terminal-host "drop 0210 host->terminal"
    posrig link --rig rigs/bench.yaml till-terminal "rst zvt:04 0F terminal->till to=both" --timeout 300

    posrig link up   --rig rigs/bench.yaml [LINK ...]   # session-long bridges (links.LINK.bridge), left up
    posrig link down --rig rigs/bench.yaml [LINK ...]   # remove the bridges `link up` made

Bridges the link's two NICs (or adopts the rig's session bridge), arms the faults, prints each one as it fires
(packet number in the capture, stage, STAN) and exits --linger seconds after all fired (0), at the timeout or
on Ctrl-C (1 if a fault never fired). The capture and fault log are written to the evidence folder.
Fault text: ACTION [STAGE] [A->B] [first|every|nth=N] [stan=S] [key=value ...]; actions: drop, hold ms=,
blackhole [ms=], rst [to=] [deliver=], flap count= down_ms= every_ms=, duplicate, corrupt (`--actions`).
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

from harness.core.device import DeviceContext
from harness.core.evidence import Evidence
from harness.core.registry import DriverError, lookup
from harness.core.rig import RigError, load_rig
from harness.link.driver import Fault, FaultNotFired, LinkError, ResetNotTaken
from harness.link.faults import ACTIONS, FaultError, FaultFired, FaultSpec


def register(sub) -> None:
    p = sub.add_parser("link", help="arm faults on a bench link by payment stage and report what fired",
                       description=__doc__, formatter_class=_raw())
    p.add_argument("link", nargs="?", help="link name from the rig, e.g. terminal-host")
    p.add_argument("faults", nargs="*", metavar="FAULT", help='e.g. "drop 0210 host->terminal"')
    p.add_argument("--rig", default="rigs/bench-example.yaml",
                   help="rig file (default rigs/bench-example.yaml)")
    p.add_argument("--timeout", type=float, default=600.0,
                   help="give up after this many seconds (default 600)")
    p.add_argument("--linger", type=float, default=60.0, help="after every fault fired, keep their effects "
                   "(e.g. retransmissions of a dropped message stay dropped) this many seconds (default 60)")
    p.add_argument("--evidence", default=None, help="evidence folder (default evidence/link-<name>-<time>)")
    p.add_argument("--netns", default=None, help="run the bridge in this named network namespace "
                   "(for trying the bench path without NICs)")
    p.add_argument("--json", action="store_true", help="print events as JSON lines")
    p.add_argument("--actions", action="store_true", help="list fault actions and their parameters")
    p.set_defaults(func=run)


def _raw():
    import argparse

    return argparse.RawDescriptionHelpFormatter


def _say(args, text: str, **event) -> None:
    if args.json:
        print(json.dumps({"event": text, **event}, default=str), flush=True)
    else:
        print(text, flush=True)


def run(args) -> int:
    if args.actions:
        for action, params in ACTIONS.items():
            extra = ", ".join(f"{k}= ({meaning}; default {default})"
                              for k, (_, default, meaning) in params.items())
            print(f"{action:10} {extra}")
        return 0
    if args.link in ("up", "down"):
        return _session(args)
    if not args.link or not args.faults:
        print("posrig link: name a link and at least one fault, e.g. "
              "posrig link terminal-host \"drop 0210 host->terminal\"", file=sys.stderr)
        return 2
    try:
        rig = load_rig(args.rig)
        if args.link not in rig.links:
            raise RigError(rig.path, "links", args.link, "one of: " + ", ".join(rig.links))
        spec = rig.links[args.link]
        if spec.driver != "bench":
            print(f"posrig link: link {args.link} in {rig.path} is '{spec.driver}'; this command drives a "
                  f"bench link (in emulated rigs use the `link` fixture in a test)", file=sys.stderr)
            return 2
        faults = [FaultSpec.parse(text) for text in args.faults]
        cls = lookup("link", spec.driver)
    except (RigError, FaultError, DriverError) as exc:
        print(f"posrig link: {exc}", file=sys.stderr)
        return 2
    folder = Path(args.evidence or f"evidence/link-{args.link}-{time.strftime('%Y%m%d-%H%M%S')}")
    ctx = DeviceContext(rig=rig, evidence=Evidence(folder), timing=rig.timing,
                        namespace=_namespace(args.netns))
    link = cls(spec, ctx)
    stop = {"now": False}
    previous = signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))
    try:
        link.start()
        _say(args, f"link {args.link}: bridge up ({', '.join(spec.interfaces)}), queue {link.queue}; "
                   f"capture {link.pcap_path}", kind="ready", queue=link.queue, pcap=str(link.pcap_path))
        armed = [link.inject(f) for f in faults]
        for f in armed:
            _say(args, f"armed #{f.id}: {f.spec.describe()}", kind="armed", id=f.id, spec=f.spec.to_json())
        _say(args, "run the payment now; waiting for the faults to fire (Ctrl-C to stop)", kind="waiting")
        reported: dict[int, int] = {}
        deadline = time.monotonic() + args.timeout
        lingering = False
        while not stop["now"] and time.monotonic() < deadline and link.engine_alive:
            for f in armed:
                for shot in f.fired[reported.get(f.id, 0):]:
                    _say(args, _fired_text(f, shot), kind="fired", **shot.to_json())
                reported[f.id] = len(f.fired)
                for v in f.verified[reported.get(-f.id, 0):]:
                    _say(args, f"  #{f.id} reset {'taken' if v.taken else 'NOT taken'}: {v.detail}",
                         kind="verified", **v.to_json())
                reported[-f.id] = len(f.verified)
            if not lingering and all(f.fired for f in armed) and all(_verified(f) for f in armed):
                lingering = True
                deadline = min(deadline, time.monotonic() + args.linger)
                _say(args, f"all faults fired; their effects last {args.linger:g}s more (Ctrl-C ends now)",
                     kind="lingering")
            time.sleep(0.05)
        unfired = [f for f in armed if not f.fired]
        for f in unfired:
            _say(args, f.never_fired_message(), kind="never_fired", id=f.id)
            f.required = False
        bad_resets = [f for f in armed if f.spec.action == "rst" and any(not v.taken for v in f.verified)]
        link.clear()
        return 1 if unfired or bad_resets else 0
    except (LinkError, FaultError, FaultNotFired, ResetNotTaken, OSError) as exc:
        print(f"posrig link: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, previous)
        try:
            link.close()
        except Exception as exc:  # noqa: BLE001 - reported; evidence is already written
            print(f"posrig link: closing: {exc}", file=sys.stderr)
        _say(args, f"evidence: {link.pcap_path} and {link.fault_log_path}", kind="evidence",
             pcap=str(link.pcap_path), fault_log=str(link.fault_log_path))


def _session(args) -> int:
    """`posrig link up|down [LINK ...]`: make or remove the session-long bridges the rig names."""
    from harness.link.bench import SESSION_ALIAS, up_bridge
    from harness.link.netfilter import local_run

    try:
        rig = load_rig(args.rig)
    except RigError as exc:
        print(f"posrig link: {exc}", file=sys.stderr)
        return 2
    names = args.faults or [n for n, s in rig.links.items() if s.driver == "bench"]
    run = _namespace(args.netns).run if args.netns else local_run
    code = 0
    for name in names:
        spec = rig.links.get(name)
        if spec is None or spec.driver != "bench":
            print(f"posrig link: {rig.path}: links.{name}: not a bench link of this rig "
                  f"(bench links: {', '.join(n for n, s in rig.links.items() if s.driver == 'bench') or 'none'})",
                  file=sys.stderr)
            code = 2
            continue
        if not spec.bridge:
            print(f"posrig link: {rig.path}: links.{name}.bridge: not set; name the session bridge there, e.g. "
                  f"'bridge: br-{name[:11]}'", file=sys.stderr)
            code = 2
            continue
        try:
            if args.link == "up":
                did = up_bridge(run, spec.bridge, tuple(spec.interfaces), name)
                _say(args, f"link {name}: bridge {spec.bridge} up over {', '.join(spec.interfaces)}"
                           + (f" ({'; '.join(did)})" if did else " (already there)"), kind="up", link=name,
                     bridge=spec.bridge)
            else:
                try:
                    shown = run(["ip", "-d", "-o", "link", "show", "dev", spec.bridge])
                except (RuntimeError, OSError):
                    _say(args, f"link {name}: no bridge {spec.bridge}", kind="down", link=name)
                    continue
                if SESSION_ALIAS not in shown:
                    _say(args, f"link {name}: bridge {spec.bridge} was not made by `posrig link up`: left alone",
                         kind="kept", link=name)
                    continue
                run(["ip", "link", "del", spec.bridge])
                _say(args, f"link {name}: bridge {spec.bridge} removed (the till is cut off from the terminal "
                           "until it is up again)", kind="down", link=name)
        except (LinkError, RuntimeError, OSError) as exc:
            print(f"posrig link: {exc}", file=sys.stderr)
            code = 1
    return code


def _verified(fault: Fault) -> bool:
    if fault.spec.action != "rst" or not fault.fired:
        return True
    return len(fault.verified) >= fault.resets_to_verify()


def _fired_text(fault: Fault, shot: FaultFired) -> str:
    bits = [f"FIRED #{fault.id} {fault.spec.action}"]
    if shot.stage:
        bits.append(f"on {shot.stage} #{shot.ordinal} {shot.direction}")
    if shot.stan:
        bits.append(f"STAN {shot.stan}")
    if shot.packet:
        bits.append(f"packet {shot.packet}")
    bits.append(time.strftime("%H:%M:%S", time.localtime(shot.t)) + f".{int(shot.t % 1 * 1000):03d}")
    return " ".join(bits)


def _namespace(name: str | None):
    if name is None:
        return None
    from harness.topology import Namespace

    return Namespace(node="link", label=name, holder=None, named=True)

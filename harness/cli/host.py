"""`posrig host`: run the emulated acquirer host, and read its ledger.

    posrig host serve --listen 0.0.0.0:5000 --ledger host.sqlite [--rules rules.yaml]
    posrig host ledger host.sqlite [--json]

`serve` says it is ready in posrig's one readiness dialect (`harness.core.process.announce_ready`: one JSON line
{"event": "ready", "pid": ..., "listen": "IP:PORT", "ledger": ..., "spec": ..., "framing": ...}; or
{"event": "failed", "error": ...} and exit code 2) and runs until SIGTERM or Ctrl-C. Behaviours: magic amounts
and test cards (see harness/host/behaviour.py), the rules file, and rules added to the ledger while it runs
(`EmulatedHost.behave`).
"""

from __future__ import annotations

import json
import socket
import sys
from datetime import UTC, datetime

from harness.core.address import parse_hostport
from harness.protocols.iso8583 import SPECS


def register(sub) -> None:
    p = sub.add_parser("host", help="the emulated acquirer host (ISO 8583) and its ledger")
    hsub = p.add_subparsers(dest="host_command", metavar="SUBCOMMAND")
    s = hsub.add_parser("serve", help="run the acquirer host until SIGTERM / Ctrl-C")
    s.add_argument(
        "--listen", required=True, metavar="HOST:PORT", help="address to listen on (port 0 = any free)"
    )
    s.add_argument("--ledger", required=True, metavar="FILE", help="SQLite ledger file (created if missing)")
    s.add_argument("--rules", metavar="FILE", help="behaviour rules, YAML or JSON")
    s.add_argument("--spec", default="ascii", choices=sorted(SPECS), help="ISO 8583 spec (default ascii)")
    s.add_argument("--framing", default="2byte", choices=("2byte", "4ascii", "none"), help="length framing")
    s.add_argument("--transcript", metavar="FILE", help="JSON-lines transcript of every message (PAN masked)")
    s.add_argument(
        "--timing-scale",
        type=float,
        default=1.0,
        metavar="X",
        help="scale for nominal delays (the rig's timing scale)",
    )
    s.add_argument(
        "--window",
        type=float,
        default=600.0,
        metavar="S",
        help="seconds a repeated request (same terminal and STAN) is recognised (default 600)",
    )
    s.add_argument(
        "--synchronous",
        default="FULL",
        type=str.upper,
        choices=("FULL", "NORMAL"),
        help="SQLite synchronous mode of the WAL ledger (default FULL: survives power loss)",
    )
    s.set_defaults(func=serve)
    led = hsub.add_parser("ledger", help="show the payments, totals and batches of a ledger file")
    led.add_argument("file", metavar="FILE")
    led.add_argument("--json", action="store_true", help="one JSON document instead of a table")
    led.add_argument("--messages", action="store_true", help="also list every message (masked)")
    led.set_defaults(func=show_ledger)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def serve(args) -> int:
    from pathlib import Path

    from harness.core.evidence import Transcript
    from harness.core.process import StopRequest, announce_failed, announce_ready
    from harness.host.behaviour import load_rules
    from harness.host.ledger import LedgerError
    from harness.host.server import HostServer

    def fail(error: str) -> int:
        print(f"posrig host serve: {error}", file=sys.stderr)
        announce_failed(error)
        return 2

    try:
        bind = parse_hostport(args.listen, what="--listen")
        rules = load_rules(args.rules) if args.rules else []
    except ValueError as exc:  # a bad --listen, or a bad rules file (RuleError)
        return fail(str(exc))
    try:
        listener = socket.create_server(bind, backlog=64, reuse_port=False)
    except OSError as exc:
        return fail(f"cannot listen on {args.listen}: {exc.strerror}")
    transcript = None
    if args.transcript:
        Path(args.transcript).parent.mkdir(parents=True, exist_ok=True)
        transcript = Transcript(Path(args.transcript))
    server = HostServer(
        listener,
        args.ledger,
        spec=args.spec,
        framing=args.framing,
        rules=rules,
        window=args.window,
        timing_scale=args.timing_scale,
        transcript=transcript,
        synchronous=args.synchronous,
    )
    try:
        server.start()
    except LedgerError as exc:
        listener.close()
        if transcript is not None:
            transcript.close()
        return fail(str(exc))
    stop = StopRequest()
    host, port = server.address
    announce_ready(listen=f"{host}:{port}", ledger=str(args.ledger), spec=args.spec, framing=args.framing)
    try:
        stop.wait()
    finally:
        server.close()
        if transcript is not None:
            transcript.close()
    return 0


def _money(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


def show_ledger(args) -> int:
    from harness.host.ledger import Ledger, LedgerError

    try:
        with Ledger(args.file) as ledger:
            summary = ledger.summary()
            if args.messages:
                summary["messages"] = ledger.messages()
    except LedgerError as exc:
        print(f"posrig host ledger: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
        return 0
    print(f"ledger {args.file}: {len(summary['payments'])} payment(s)")
    print(
        f"{'id':>4} {'when (UTC)':19} {'terminal':8} {'stan':6} {'rrn':12} {'kind':13} {'amount':>10} "
        f"{'rc':2} {'state':9} pan"
    )
    for p in summary["payments"]:
        when = datetime.fromtimestamp(p["created"], UTC).strftime("%Y-%m-%d %H:%M:%S")
        print(
            f"{p['id']:>4} {when:19} {p['terminal']:8} {p['stan']:6} {p['rrn']:12} {p['kind']:13} "
            f"{_money(p['amount']):>10} {p['code']:2} {p['state']:9} {p['pan'] or ''}"
        )
    print(
        "totals: "
        + ", ".join(f"{state} {t['count']} / {_money(t['amount'])}" for state, t in summary["totals"].items())
    )
    for b in summary["batches"]:
        print(
            f"batch {b['id']} terminal {b['terminal']} rc {b['code']}: host {b['host_totals']} "
            f"terminal {b['terminal_totals']}"
        )
    if args.messages:
        for m in summary["messages"]:
            when = datetime.fromtimestamp(m["at"], UTC).strftime("%H:%M:%S.%f")[:-3]
            print(
                f"{m['id']:>5} {when} {m['direction']} conn {m['connection']} {m['mti'] or '????'} "
                f"stan {m['stan'] or '-'} rc {m['code'] or '-'} {m['delivery'] or ''} {m['note'] or ''}"
            )
    return 0

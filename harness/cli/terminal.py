"""`posrig terminal serve|status|receipt`: run the emulated ZVT terminal, or query a ZVT terminal (real or
emulated).

    posrig terminal serve --ecr 0.0.0.0:20007 --host 127.0.0.1:5000 --journal FILE [--evidence DIR]
                          [--scale 1.0] [--card approve] [--no-auto-present] [--offline --floor-limit 2500]
                          [--ecr-receipts | --no-ecr-receipts] [--unconfirmed book|reverse] [--timer host=10]
                          [--password 123456] [--display chip-pin] [--merchant-copy 20]

The journal is the terminal's memory (every payment, its receipt number, the reversals it owes): `--journal` is
required, as `posrig host serve --ledger` is, so a terminal never leaves a database in whatever folder it was
started from; give the same FILE again to continue where a stopped terminal left off.
    posrig terminal status  --ecr 192.0.2.40:20007
    posrig terminal receipt --ecr 192.0.2.40:20007

`serve` announces itself in posrig's one readiness line ({"event": "ready", "pid": ..., "ecr": "IP:PORT" or the
pty path, "host", "journal", "card", "scale"}; {"event": "failed", "error": ...} when it cannot start) and runs
until SIGTERM/SIGINT. Standalone, every payment gets the default card (approve) unless --card names another
test card.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import sys
from pathlib import Path

from harness.core.evidence import Evidence
from harness.core.process import StopRequest, announce_failed, announce_ready
from harness.core.rig import Timing
from harness.terminal.display import DISPLAYS


def register(sub) -> None:
    p = sub.add_parser("terminal", help="run the emulated ZVT payment terminal, or query a ZVT terminal")
    tsub = p.add_subparsers(dest="terminal_command", metavar="ACTION")
    serve = tsub.add_parser(
        "serve",
        help="run the emulated terminal (ZVT to the till, ISO 8583 to the host)",
        description="Run the emulated ZVT terminal until SIGTERM/SIGINT. --journal is required: the journal is the "
        "terminal's memory (payments, receipt numbers, reversals it owes) and is never put in the current folder "
        "unasked; give the same FILE again to continue after a restart. Its path is in the ready line.",
    )
    serve.add_argument(
        "--ecr",
        default="127.0.0.1:20007",
        metavar="HOST:PORT",
        help="ZVT listen address, or 'pty' for RS-232",
    )
    serve.add_argument("--host", required=True, metavar="HOST:PORT", help="the acquirer host (ISO 8583)")
    serve.add_argument(
        "--journal",
        required=True,
        metavar="FILE",
        help="the terminal's SQLite journal (created if missing; reused to continue after a restart), "
        "e.g. state/terminal-journal.sqlite",
    )
    serve.add_argument(
        "--password",
        default=None,
        metavar="DIGITS",
        help="terminal password (6 digits): commands carrying another one are refused with 84 83 "
        "(default: any password is accepted)",
    )
    serve.add_argument("--evidence", default=None, metavar="DIR", help="write the transcript here")
    serve.add_argument("--scale", type=float, default=1.0, help="timing scale for every protocol timer")
    serve.add_argument(
        "--card", default="approve", help="test card presented automatically (default approve)"
    )
    serve.add_argument("--no-auto-present", action="store_true", help="never present a card by itself")
    serve.add_argument("--card-slot", default=None, metavar="FIFO",
                       help="a FIFO (made if missing) where a person presents cards: one test card name a line, "
                            "for the running or next payment (a simulated physical bench)")
    serve.add_argument("--offline", action="store_true", help="approve offline within the floor limit")
    serve.add_argument("--floor-limit", type=int, default=0, metavar="MINOR", help="offline floor limit")
    serve.add_argument("--display", choices=tuple(DISPLAYS), default="classic",
                       help="the intermediate statuses (04 FF) it shows during a payment (default classic)")
    serve.add_argument("--merchant-copy", type=float, default=0.0, metavar="SECONDS",
                       help="nominal seconds it prints its own merchant copy after each payment, busy meanwhile "
                            "(commands then are refused with 84 A0); default 0: none")
    serve.add_argument(
        "--ecr-receipts",
        dest="ecr_receipts",
        action="store_true",
        default=None,
        help="always send receipt lines (06 D1) to the till (default: as the till registered: config byte "
        "02/04 = the till prints, 80 = as print lines, else the till compiles the receipt itself)",
    )
    serve.add_argument(
        "--no-ecr-receipts", dest="ecr_receipts", action="store_false", help="never send receipt lines"
    )
    serve.add_argument(
        "--unconfirmed",
        choices=("book", "reverse"),
        default="book",
        help="what to do with an approval the till never confirms",
    )
    serve.add_argument(
        "--terminal-id", default="29001234", help="8-digit terminal id (ZVT 29, ISO 8583 field 41)"
    )
    serve.add_argument(
        "--timer",
        action="append",
        default=[],
        metavar="NAME=SECONDS",
        help="nominal timer, e.g. host=10 (t3, t4, goods_retry, card, host, host_connect, reversal_retry)",
    )
    serve.set_defaults(func=run_serve)
    for name, helptext in (("status", "05 01 Status Enquiry"), ("receipt", "06 20 Repeat Receipt")):
        q = tsub.add_parser(name, help=helptext + " on a ZVT terminal")
        q.add_argument("--ecr", required=True, metavar="HOST:PORT", help="the terminal's ZVT address")
        q.add_argument("--password", default="000000", help="terminal password (6 digits)")
        q.set_defaults(func=run_query, query=name)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def _timers(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            out[name] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise SystemExit(
                f"posrig terminal serve: bad --timer {item!r}; expected NAME=SECONDS, e.g. host=10"
            )
    return out


def _resolvable(address: tuple[str, int], what: str) -> tuple[str, int]:
    """`address` if its host name resolves; a ValueError naming it otherwise (before serve says it is ready)."""
    try:
        socket.getaddrinfo(address[0], address[1], type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ValueError(f"{what} '{address[0]}:{address[1]}': cannot resolve {address[0]!r} "
                         f"({getattr(exc, 'strerror', None) or exc}); give an IP or a resolvable name, "
                         "e.g. 127.0.0.1:5000") from None
    return address


def _refuse(message: str, code: int) -> int:
    """Say why serve cannot start: on stderr for a person, as the failed line for a supervisor."""
    print(f"posrig terminal serve: {message}", file=sys.stderr)
    announce_failed(message)
    return code


def run_serve(args) -> int:
    from harness.core.cards import card
    from harness.terminal.core import TerminalCore
    from harness.terminal.ecr import EcrServer, parse_password
    from harness.terminal.emulated import DEFAULT_ECR_PORT, parse_address
    from harness.terminal.journal import Journal
    from harness.terminal.serial_link import PtyPort, SerialLink

    try:
        ecr = None if args.ecr == "pty" else parse_address(args.ecr, DEFAULT_ECR_PORT)
        host = parse_address(args.host, 5000)
        default_card = card(args.card)
        timers = _timers(args.timer)
        password = parse_password(args.password)
        _resolvable(host, "--host")                 # named now, not at the first payment
    except ValueError as exc:
        return _refuse(str(exc), 2)
    listener, pty = None, None
    if ecr is None:
        pty = PtyPort()
    else:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(ecr)
        except OSError as exc:
            listener.close()
            return _refuse(f"cannot listen on {args.ecr}: {exc}", 1)
        listener.listen(16)
    evidence = Evidence(Path(args.evidence)) if args.evidence else None
    transcript = evidence.transcript("terminal") if evidence else None
    try:
        journal = Journal(args.journal)
    except (OSError, sqlite3.Error) as exc:
        for opened in (listener, pty):
            if opened is not None:
                opened.close()
        return _refuse(f"cannot open the journal {args.journal}: {exc}; give a writable --journal FILE", 1)
    try:
        core = TerminalCore(
            journal=journal,
            host_address=host,
            timing=Timing(args.scale),
            transcript=transcript,
            terminal_id=args.terminal_id,
            auto_present=not args.no_auto_present,
            offline=args.offline,
            floor_limit=args.floor_limit,
            timers=timers,
            unconfirmed=args.unconfirmed,
            default_card=default_card,
            display_name=args.display,
            merchant_copy=args.merchant_copy,
        )
    except (KeyError, ValueError) as exc:
        return _refuse(str(exc), 2)
    server = EcrServer(core, listener, transcript=transcript, ecr_receipts=args.ecr_receipts, password=password)
    server.start()
    if pty is not None:
        server.attach(SerialLink(pty.master, core.seconds("t3"), transcript), pty.path)
    if args.card_slot:
        _card_slot(args.card_slot, core)
    stop = StopRequest()
    where = pty.path if pty is not None else "{}:{}".format(*server.address)
    announce_ready(
        ecr=where,
        host=f"{host[0]}:{host[1]}",
        journal=str(Path(args.journal).resolve()),
        card=default_card.name,
        scale=args.scale,
    )
    stop.wait()
    core.close()
    server.close()
    if pty is not None:
        pty.close()
    journal.close()
    if transcript:
        transcript.close()
    return 0


def _card_slot(path: str, core) -> None:
    """Read test card names from the FIFO at `path` in a daemon thread and present each to the terminal."""
    import os
    import threading

    if not os.path.exists(path):
        os.mkfifo(path, 0o600)
    fd = os.open(path, os.O_RDWR)                  # never EOF: the person may write, close and write again

    def read() -> None:
        with os.fdopen(fd, encoding="utf-8") as slot:
            for line in slot:
                if line.strip():
                    try:
                        core.clear_cards()             # a new card replaces one still waiting to be asked for
                        core.present_card(line.strip())
                    except (KeyError, ValueError) as exc:
                        print(f"posrig terminal serve: card slot: {exc}", file=sys.stderr, flush=True)

    threading.Thread(target=read, name="card-slot", daemon=True).start()


def run_query(args) -> int:
    from harness.core.device import DeviceContext
    from harness.core.rig import DeviceSpec
    from harness.terminal.real import RealTerminal, TerminalError

    spec = DeviceSpec(
        name="terminal",
        kind="terminal",
        mode="real",
        driver="real",
        transport="tcp",
        address=args.ecr,
        node="terminal",
        options={"password": int(args.password)},
    )
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        ctx = DeviceContext(rig=None, evidence=Evidence(Path(tmp)), timing=Timing(1.0))
        term = RealTerminal(spec, ctx)
        try:
            term.start()
            result = term.status() if args.query == "status" else term.repeat_last_receipt()
        except TerminalError as exc:
            print(f"posrig terminal {args.query}: {exc}", file=sys.stderr)
            return 1
        finally:
            term.close()
    print(json.dumps(result, default=lambda b: b.hex() if isinstance(b, bytes) else str(b)))
    return 0 if result.get("ok") else 1

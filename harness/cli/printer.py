"""`posrig printer serve|fault|status|tap` and `posrig receipt render`.

    posrig printer serve --tcp 127.0.0.1:9100 --serial --usbip 127.0.0.1:3240 --journal receipts/
    {"event": "ready", "pid": 4242, "profile": "tm-t88", "tcp": "127.0.0.1:9100", "serial": "/dev/pts/4",
     "usb": "04b8:0202", "usbip": "127.0.0.1:3240", "control": "127.0.0.1:40123", "journal": "/abs/receipts"}
    posrig printer fault --control 127.0.0.1:PORT paper_out
    posrig printer status --tcp 192.0.2.30:9100
    posrig printer tap --listen 0.0.0.0:9100 --to-tcp 192.0.2.30:9100 --journal receipts/
    {"event": "ready", "pid": 4243, "tap": "0.0.0.0:9100", "printer": "tcp 192.0.2.30:9100"}
    posrig receipt render receipts/receipt-0001.bin --format png -o r.png
"""

from __future__ import annotations

import errno
import json
import socket
import sys
from pathlib import Path

from harness.core.address import AddressError, parse_hostport
from harness.core.process import StopRequest, announce_failed, announce_ready


def _hostport(text: str) -> tuple[str, int]:
    try:
        return parse_hostport(text, default_host="127.0.0.1")
    except AddressError as exc:
        raise SystemExit(f"posrig: {exc}") from None


def register(sub) -> None:
    p = sub.add_parser("printer", help="emulated ESC/POS printer, real-printer tap and status")
    psub = p.add_subparsers(dest="printer_command", metavar="ACTION")

    s = psub.add_parser("serve", help="run an emulated printer until Ctrl-C / SIGTERM")
    s.add_argument("--tcp", metavar="HOST:PORT", help="raw TCP (9100 style) address (default 127.0.0.1:9100 "
                   "when no transport is given; port 0 = any free port)")
    s.add_argument("--serial", nargs="?", const="", metavar="LINK",
                   help="serve on a pty; optional LINK path made a symlink to the pty's slave")
    s.add_argument("--usbip", metavar="HOST:PORT", help="serve a USB printer over USB/IP (usually port 3240)")
    s.add_argument("--profile", default="tm-t88", help="tm-t88 (default) or gb18030-clone")
    s.add_argument("--journal", metavar="DIR", help="write each finished receipt as JSON, text, PNG and .bin")
    s.add_argument("--fault",
                   help="start in this fault mode (paper_out, cover_open, offline, silent, slow...)")
    s.add_argument("--slow-delay", type=float, default=2.0, help="seconds a 'slow' printer waits to answer")
    s.add_argument("--control", default="127.0.0.1:0", metavar="HOST:PORT",
                   help="control socket for `posrig printer fault` (default: a free port on 127.0.0.1)")
    s.set_defaults(func=serve)

    f = psub.add_parser("fault", help="set the fault mode of a running `printer serve`")
    f.add_argument("--control", required=True, metavar="HOST:PORT", help="the control address it printed")
    f.add_argument("fault", help="fault name(s) joined by commas, or none")
    f.set_defaults(func=fault)

    st = psub.add_parser("status", help="read a (physical) printer's status: DLE EOT 1-4, USB port status")
    g = st.add_mutually_exclusive_group(required=True)
    g.add_argument("--tcp", metavar="HOST:PORT")
    g.add_argument("--serial", metavar="PATH")
    g.add_argument("--usb", metavar="VENDOR:PRODUCT")
    st.add_argument("--usbip", metavar="HOST:PORT",
                    help="reach the USB printer over USB/IP instead of libusb")
    st.add_argument("--timeout", type=float, default=2.0)
    st.set_defaults(func=status)

    t = psub.add_parser("tap", help="pass a till's bytes to a physical printer while decoding them")
    t.add_argument("--listen", required=True, metavar="HOST:PORT", help="where the till prints to")
    g = t.add_mutually_exclusive_group(required=True)
    g.add_argument("--to-tcp", metavar="HOST:PORT", help="the physical printer on the network")
    g.add_argument("--to-serial", metavar="PATH", help="the physical printer on a serial port")
    t.add_argument("--profile", default="tm-t88")
    t.add_argument("--journal", metavar="DIR")
    t.set_defaults(func=tap)

    r = sub.add_parser("receipt", help="render receipts from raw ESC/POS bytes")
    rsub = r.add_subparsers(dest="receipt_command", metavar="ACTION")
    rr = rsub.add_parser("render", help="render FILE (raw bytes, e.g. a journal .bin) as text, HTML or PNG")
    rr.add_argument("file")
    rr.add_argument("--format", choices=("text", "html", "png"), default="text")
    rr.add_argument("--profile", default="tm-t88")
    rr.add_argument("-o", "--output", help="output file (default: stdout; required for png)")
    rr.set_defaults(func=render)


def serve(args) -> int:
    from harness.printer.control import ControlServer
    from harness.printer.core import PrinterCore
    from harness.printer.journal import ReceiptJournal
    from harness.printer.transports.serial_pty import PtyPrinterServer
    from harness.printer.transports.tcp import TcpPrinterServer
    from harness.printer.transports.usbip_device import UsbipPrinterServer

    try:
        core = PrinterCore(args.profile, slow_delay=args.slow_delay)
        if args.fault:
            core.set_fault(args.fault)
    except ValueError as exc:
        print(f"posrig printer serve: {exc}", file=sys.stderr)
        announce_failed(str(exc))
        return 2
    servers: list = []
    ready: dict = {"profile": core.profile.name}
    journal = None
    if args.journal:
        journal = ReceiptJournal(args.journal, background=True)
        core.add_receipt_listener(journal.write)
        ready["journal"] = str(Path(args.journal).resolve())
    try:
        if args.tcp or not (args.serial is not None or args.usbip):
            srv = TcpPrinterServer(core, socket.create_server(_hostport(args.tcp or "127.0.0.1:9100")))
            servers.append(srv)
            ready["tcp"] = srv.address
        if args.serial is not None:
            srv = PtyPrinterServer(core, link=args.serial or None)
            servers.append(srv)
            ready["serial"] = srv.address
        if args.usbip:
            srv = UsbipPrinterServer(core, socket.create_server(_hostport(args.usbip)))
            servers.append(srv)
            ready["usb"] = f"{core.profile.usb_vendor:04x}:{core.profile.usb_product:04x}"
            ready["usbip"] = srv.address
        control = ControlServer(core, socket.create_server(_hostport(args.control)),
                                settle=journal.settle if journal else None)
        servers.append(control)
        ready["control"] = control.address
    except OSError as exc:
        for srv in servers:
            srv.close()
        why = f"cannot listen: {exc}" + (" (port in use? try port 0)" if exc.errno == errno.EADDRINUSE else "")
        print(f"posrig printer serve: {why}", file=sys.stderr)
        announce_failed(why)
        return 1
    for srv in servers:
        srv.start()
    stop = StopRequest()
    announce_ready(**ready)
    try:
        stop.wait()
    finally:
        for srv in servers:
            srv.close()
        core.close()
        if journal:
            journal.close()
    return 0


def fault(args) -> int:
    from harness.printer.control import send_control

    try:
        answer = send_control(args.control, f"fault {args.fault}")
    except OSError as exc:
        print(f"posrig printer fault: no printer control socket at {args.control}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(answer))
    return 0 if answer.get("ok") else 2


def status(args) -> int:
    from harness.printer.real import StatusError, read_status

    backend = None
    if args.usb and args.usbip:
        from harness.printer.pyusb_usbip import get_backend

        backend = get_backend(*_hostport(args.usbip))
    transport, address = ("tcp", args.tcp) if args.tcp else ("serial", args.serial) if args.serial else \
        ("usb", args.usb)
    try:
        result = read_status(transport, address, args.timeout, backend)
    except (StatusError, OSError) as exc:
        print(f"posrig printer status: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


def tap(args) -> int:
    from harness.printer.journal import ReceiptJournal
    from harness.printer.real import PrinterTap, SerialUpstream, TcpUpstream

    upstream = TcpUpstream(args.to_tcp) if args.to_tcp else SerialUpstream(args.to_serial)
    try:
        t = PrinterTap(socket.create_server(_hostport(args.listen)), upstream, args.profile)
    except OSError as exc:
        why = f"cannot listen on {args.listen}: {exc}"
        print(f"posrig printer tap: {why}", file=sys.stderr)
        announce_failed(why)
        return 1
    journal = ReceiptJournal(args.journal, background=True) if args.journal else None
    if journal:
        t.log.add_receipt_listener(journal.write)
    t.start()
    stop = StopRequest()
    announce_ready(tap=t.address, printer=upstream.describe())
    try:
        stop.wait()
    finally:
        t.close()
        if journal:
            journal.close()
    return 0


def render(args) -> int:
    """Render a file of raw ESC/POS bytes: the output, or a one-line error (never a traceback). A receipt's codec
    notes and decode faults are reported on stderr, one line each."""
    try:
        return _render(args)
    except Exception as exc:  # noqa: BLE001 - a bad file gets a one-line answer, not a traceback
        print(f"posrig receipt render: cannot render {args.file}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def _render(args) -> int:
    from harness.printer.core import ReceiptLog
    from harness.printer.render import FontMissingError, render_html_page, render_image, render_text

    try:
        data = Path(args.file).read_bytes()
        log = ReceiptLog(args.profile)
    except (OSError, ValueError) as exc:
        print(f"posrig receipt render: {exc}", file=sys.stderr)
        return 1
    log.feed(data)
    log.flush()
    receipts = log.receipts
    if not receipts:
        print(f"posrig receipt render: {args.file} holds no printable bytes", file=sys.stderr)
        return 1
    for r in receipts:
        for note in [*r.codec_notes, *r.decode_faults]:
            print(f"posrig receipt render: receipt {r.index + 1}: {note}", file=sys.stderr)
    try:
        if args.format == "png":
            if not args.output:
                print("posrig receipt render: --format png needs -o FILE.png", file=sys.stderr)
                return 2
            from PIL import Image

            images = [render_image(r) for r in receipts]
            out = Image.new("L", (max(i.width for i in images), sum(i.height for i in images)), 255)
            y = 0
            for im in images:
                out.paste(im, (0, y))
                y += im.height
            out.save(args.output, format="PNG")
            return 0
        text = "".join(render_text(r) for r in receipts) if args.format == "text" else \
            render_html_page(receipts)
    except FontMissingError as exc:
        print(f"posrig receipt render: {exc}", file=sys.stderr)
        return 1
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0

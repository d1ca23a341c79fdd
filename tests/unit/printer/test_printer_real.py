"""Real-printer tools, tested against the emulator standing in as the physical printer."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from escpos.printer import Network

from harness.printer.pyusb_usbip import get_backend
from harness.printer.real import (
    PrinterTap,
    SerialUpstream,
    StatusError,
    TcpUpstream,
    parse_status,
    read_status,
)


def physical_address(served) -> str:
    return served.server.address


@pytest.mark.parametrize("upstream_kind", ["tcp", "serial"])
def test_tap_passes_bytes_through_and_decodes_them(serve, upstream_kind):
    physical = serve(upstream_kind)
    upstream = TcpUpstream(physical.server.address) if upstream_kind == "tcp" else \
        SerialUpstream(physical.server.address)
    tap = PrinterTap(socket.create_server(("127.0.0.1", 0)), upstream, "tm-t88")
    tap.start()
    try:
        host, port = tap.address.split(":")
        till = Network(host, int(port), timeout=5)
        till.open()
        assert till.is_online() and till.paper_status() == 2          # answered by the physical printer
        till.text("Tapped sale   7.35\n")
        till.qr("receipt:42", native=True)
        till.cut()
        seen = tap.log.wait_for_receipt(5)
        printed = physical.core.wait_for_receipt(5)
        assert seen.lines == printed.lines == ["Tapped sale   7.35"]
        assert seen.qr_codes == printed.qr_codes == ["receipt:42"]
        assert bytes(tap.log.stream) == bytes(physical.core.stream)   # byte for byte
        physical.core.set_fault("paper_out")
        assert not till.is_online() and till.paper_status() == 0
        till.close()
    finally:
        tap.close()


def test_tap_reports_an_unreachable_printer(serve):
    dead = socket.create_server(("127.0.0.1", 0))
    address = f"127.0.0.1:{dead.getsockname()[1]}"
    dead.close()
    tap = PrinterTap(socket.create_server(("127.0.0.1", 0)), TcpUpstream(address, timeout=1))
    tap.start()
    try:
        host, port = tap.address.split(":")
        with socket.create_connection((host, int(port)), timeout=2) as s:
            s.settimeout(2)
            assert s.recv(1) == b""                                   # closed by the tap
        assert "cannot reach the printer" in tap.errors[0]
    finally:
        tap.close()


class PrinterGoneOnce:
    """An upstream whose first connection reaches a printer that hangs up at once; later ones reach `then`."""

    def __init__(self, then: TcpUpstream):
        self.then = then
        self.calls = 0

    def connect(self):
        self.calls += 1
        if self.calls > 1:
            return self.then.connect()
        with socket.create_server(("127.0.0.1", 0)) as gone:
            sock = socket.create_connection(gone.getsockname()[:2], timeout=2)
            conn, _ = gone.accept()
            conn.close()
        sock.settimeout(None)
        return sock

    def describe(self) -> str:
        return "tcp printer-that-hangs-up"


def test_tap_survives_a_printer_that_stops_taking_bytes(serve):
    physical = serve("tcp")
    tap = PrinterTap(socket.create_server(("127.0.0.1", 0)), PrinterGoneOnce(TcpUpstream(physical.server.address)))
    tap.start()
    try:
        host, port = tap.address.split(":")
        with socket.create_connection((host, int(port)), timeout=2) as till:
            deadline = time.monotonic() + 10
            while not tap.errors and time.monotonic() < deadline:   # until the tap gives up on the printer
                try:
                    till.sendall(b"never printed\n" * 300)
                except OSError:                                  # the tap hung up on us
                    time.sleep(0.01)
        assert any("stopped taking bytes" in e for e in tap.errors), tap.errors
        till = Network(host, int(port), timeout=5)      # the next till prints through to the live printer
        till.open()
        till.text("after 1.00\n")
        till.cut()
        # the tap's log is the tills' one byte stream: the first till's bytes end wherever the tap hung up
        assert tap.log.wait_for_receipt(5).lines[-1].endswith("after 1.00")
        assert physical.core.wait_for_receipt(5).lines == ["after 1.00"]
        till.close()
    finally:
        tap.close()


@pytest.mark.parametrize("transport", ["tcp", "serial", "usb"])
@pytest.mark.parametrize(("fault", "expect"), [
    (None, {"online": True, "paper": "ok", "cover_open": False}),
    ("paper_out", {"online": False, "paper": "end", "stopped_by_paper_end": True}),
    ("cover_open", {"online": False, "paper": "ok", "cover_open": True}),
])
def test_status_reader(serve, transport, fault, expect):
    physical = serve(transport)
    physical.core.set_fault(fault)
    if transport == "usb":
        host, port = physical.server.address.split(":")
        status = read_status("usb", "04b8:0202", timeout=1, usb_backend=get_backend(host, int(port)))
        assert "MDL:TM-T88V" in status["device_id"]
        assert status["usb_port_status"] == ("0x18" if fault is None else "0x28" if fault == "paper_out"
                                             else "0x00")
    else:
        status = read_status(transport, physical.server.address, timeout=1)
    for key, value in expect.items():
        assert status[key] == value, (key, status)


def test_status_reader_rejects_a_printer_that_is_silent(serve):
    physical = serve("tcp")
    physical.core.set_fault("silent")
    with pytest.raises(StatusError, match="did not answer DLE EOT 1"):
        read_status("tcp", physical.server.address, timeout=0.2)


def test_status_reader_rejects_bytes_that_are_not_status():
    """A server answering like escpos-netprinter's 'All done!' is not a status byte."""
    srv = socket.create_server(("127.0.0.1", 0))

    def answer():
        conn, _ = srv.accept()
        with conn:
            conn.recv(16)
            conn.sendall(b"All done!")

    t = threading.Thread(target=answer, daemon=True)
    t.start()
    try:
        with pytest.raises(StatusError, match="not a status byte"):
            read_status("tcp", f"127.0.0.1:{srv.getsockname()[1]}", timeout=1)
    finally:
        t.join(2)
        srv.close()


def test_parse_status_all_groups():
    s = parse_status({1: 0x16, 2: 0x52, 3: 0x1A, 4: 0x1E})
    assert s["online"] and s["drawer_pin3_high"] and s["error"] and s["autocutter_error"]
    assert s["paper"] == "near_end"


def test_real_printer_driver_taps_and_reads_status(serve, tmp_path):
    from escpos.printer import Network as Till

    from harness.core.device import DeviceContext
    from harness.core.evidence import Evidence
    from harness.core.rig import DeviceSpec, Timing
    from harness.printer.real import RealPrinter

    physical = serve("tcp")
    spec = DeviceSpec(name="printer", kind="printer", mode="real", driver="real", transport="tcp",
                      address=physical.server.address, node="till", profile="tm-t88",
                      options={"tap": "till:0"})
    ev = Evidence(tmp_path / "ev")
    with RealPrinter(spec, DeviceContext(rig=None, evidence=ev, timing=Timing(1.0))) as printer:
        assert printer.read_status()["online"] is True
        host, port = printer.address["tap"].split(":")
        till = Till(host, int(port), timeout=5)
        till.open()
        till.text("through the tap 1.00\n")
        till.cut()
        seen = printer.wait_for_receipt(5)
        assert seen.lines == ["through the tap 1.00"]
        assert seen.files["png"] == ev.path / "printer" / "receipt-0001.png"
        till.close()
        with pytest.raises(RuntimeError, match="take the paper roll out"):
            printer.set_fault("paper_out")
    assert (ev.path / "printer" / "receipt-0001.png").exists()
    assert b"through the tap" in (ev.path / "printer-stream.bin").read_bytes()


def test_untapped_real_printer_says_how_to_see_receipts(tmp_path):
    from harness.core.device import DeviceContext
    from harness.core.evidence import Evidence
    from harness.core.rig import DeviceSpec, Timing
    from harness.printer.real import RealPrinter

    spec = DeviceSpec(name="printer", kind="printer", mode="real", driver="real", transport="usb",
                      address="04b8:0202", node="till", profile="tm-t88")
    with RealPrinter(spec, DeviceContext(rig=None, evidence=Evidence(tmp_path), timing=Timing(1.0))) as p:
        assert p.receipts == []
        with pytest.raises(RuntimeError, match="options.tap"):
            p.wait_for_receipt(0.1)

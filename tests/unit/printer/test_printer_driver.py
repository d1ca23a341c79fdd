"""EmulatedPrinter as a bench device: the `printer` fixture from the rig, evidence, and each transport."""

from __future__ import annotations

from decimal import Decimal

from escpos.printer import Network, Serial, Usb

from harness.core.device import DeviceContext
from harness.core.evidence import Evidence
from harness.core.rig import DeviceSpec, Timing
from harness.printer.emulated import EmulatedPrinter
from harness.printer.pyusb_usbip import get_backend


def sale(p, total: str = "4.20") -> None:
    p.text("Coffee        " + total + "\n")
    p.text(f"TOTAL         {total}\n")
    p.cut()


def make(tmp_path, transport: str, address: str | None, profile: str = "tm-t88") -> EmulatedPrinter:
    spec = DeviceSpec(name="printer", kind="printer", mode="emulated", driver="emulated", transport=transport,
                      address=address, node="till", profile=profile, options={"slow_delay": 0.1})
    ctx = DeviceContext(rig=None, evidence=Evidence(tmp_path / "ev"), timing=Timing(0.05))
    return EmulatedPrinter(spec, ctx)


def test_without_namespace_tcp_binds_loopback_ephemeral(tmp_path):
    with make(tmp_path, "tcp", "till:9100") as printer:
        host, port = printer.address["tcp"].split(":")
        assert host == "127.0.0.1" and int(port) != 9100
        p = Network(host, int(port), timeout=5)
        p.open()
        sale(p)
        r = printer.wait_for_receipt(5)
        assert r.cut == "full"
        assert r.files["png"] == printer.ctx.evidence.path / "printer" / "receipt-0001.png"   # no file search
        assert r.files["png"].exists() and r.line_amounts()[-1] == ("TOTAL", Decimal("4.20"))
        p.close()
    printer.close()                                       # idempotent


def test_serial_transport(tmp_path):
    with make(tmp_path, "serial", "pty", "gb18030-clone") as printer:
        p = Serial(devfile=printer.address["serial"], timeout=0.3)
        p.open()
        p.text("收银台 1\n")
        p.cut()
        assert printer.wait_for_receipt(5).lines == ["收银台 1"]
        p.close()


def test_usb_transport(tmp_path):
    with make(tmp_path, "usb", "04b8:0202") as printer:
        assert printer.address["usb"] == "04b8:0202"
        host, port = printer.address["usbip"].split(":")
        p = Usb(0x04B8, 0x0202, usb_args={"backend": get_backend(host, int(port))})
        sale(p)
        assert printer.wait_for_receipt(5).lines[-1] == "TOTAL         4.20"
        p.close()


def test_drawer_pulses_in_the_printers_records_and_its_summary_evidence(tmp_path):
    import json

    from harness.core.events import wait_until

    with make(tmp_path, "tcp", "till:9100") as printer:
        host, port = printer.address["tcp"].split(":")
        p = Network(host, int(port), timeout=5)
        p.open()
        p.text("TOTAL         4.20\n")
        p.cashdraw(2)                                     # with the receipt
        p.cut()
        p.cashdraw(5)                                     # on its own, after the cut
        assert wait_until(lambda: len(printer.drawer_events) == 2, timeout=5)
        p.close()
        inside, alone = printer.drawer_events
        assert (inside.receipt, inside.cut, inside.pin) == (0, "full", 2)
        assert (alone.receipt, alone.inside_receipt, alone.pin) == (None, False, 5) and inside.t <= alone.t
    summary = json.loads((printer.ctx.evidence.path / "printer-summary.json").read_text())
    assert [(d["receipt"], d["inside_receipt"], d["pin"]) for d in summary["drawer_events"]] == [
        (0, True, 2), (1, False, 5)]                      # closed: the uncut tail is receipt 1, never cut
    assert summary["drawer_events"][1]["t"] == alone.t


def test_status_is_answered_while_the_receipt_image_is_still_drawing(tmp_path, monkeypatch):
    """DLE EOT is real-time: the till's status query right after the cut is answered at once, not after the PNG
    (tens of ms, far more on a loaded machine, where a 0.1 s status timeout made the till reprint in a loop)."""
    import threading

    import harness.printer.journal as journal

    drawing, draw = threading.Event(), journal.render_png

    def held_render(receipt):
        drawing.wait(10)                                  # the image takes as long as the test says
        return draw(receipt)

    monkeypatch.setattr(journal, "render_png", held_render)
    with make(tmp_path, "tcp", "till:9100") as printer:
        host, port = printer.address["tcp"].split(":")
        p = Network(host, int(port), timeout=1)           # python-escpos: a status reply later than 1 s raises
        p.open()
        sale(p)
        assert p.is_online() and p.paper_status() == 2    # answered while the receipt's PNG is still held
        assert not drawing.is_set()
        drawing.set()
        [r] = printer.receipts                            # handed out with its files on disk
        assert r.files["png"].read_bytes()[:4] == b"\x89PNG"
        p.close()

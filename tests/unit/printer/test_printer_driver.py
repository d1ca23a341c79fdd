"""EmulatedPrinter as a bench device: the `printer` fixture from the rig, evidence, and each transport."""

from __future__ import annotations

import contextlib
import json
import time
from decimal import Decimal

import pytest
from escpos.printer import Network, Serial, Usb

from harness.core.device import DeviceContext
from harness.core.evidence import Evidence
from harness.core.rig import DeviceSpec, Timing
from harness.printer import ReceiptPrinter
from harness.printer.emulated import EmulatedPrinter
from harness.printer.pyusb_usbip import get_backend


def sale(p, total: str = "4.20") -> None:
    p.text("Coffee        " + total + "\n")
    p.text(f"TOTAL         {total}\n")
    p.cut()


def test_rig_printer_fixture_serves_the_till_node(printer, bench, evidence):
    assert isinstance(printer, ReceiptPrinter)
    host, port = printer.address["tcp"].split(":")
    ns = printer.ctx.namespace
    with ns.entered() if ns is not None else contextlib.nullcontext():
        p = Network(host, int(port), timeout=5)
        p.open()
    try:
        assert p.is_online()
        sale(p)
        r = printer.wait_for_receipt(5)
        assert r.lines == ["Coffee        4.20", "TOTAL         4.20"] and r.cut == "full"
        printer.set_fault("paper_out")
        assert not p.is_online() and p.paper_status() == 0
        sale(p, "9.99")
        deadline = time.monotonic() + 5
        while b"9.99" not in printer.core.held and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(TimeoutError, match="held unprinted"):
            printer.wait_for_receipt(0.1)
        printer.set_fault(None)
        assert printer.wait_for_receipt(5).amounts[-1].to_eng_string() == "9.99"
        assert len(printer.receipts) == 2
    finally:
        p.close()
    bench.close()
    folder = evidence.path / printer.name
    assert sorted(f.name for f in folder.iterdir()) == [
        f"receipt-000{i}.{ext}" for i in (1, 2) for ext in ("bin", "json", "png", "txt")]
    assert json.loads((folder / "receipt-0001.json").read_text())["lines"][0].startswith("Coffee")
    stream = (evidence.path / f"{printer.name}-stream.bin").read_bytes()
    assert stream.count(b"\x10\x04\x01") == 2 and b"TOTAL         9.99" in stream
    summary = json.loads((evidence.path / f"{printer.name}-summary.json").read_text())
    assert len(summary["receipts"]) == 2
    assert any(a.name == f"{printer.name}/receipt-0001.png" for a in evidence.attachments)


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

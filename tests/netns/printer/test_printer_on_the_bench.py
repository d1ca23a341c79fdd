"""The rig's emulated printer as the `printer` fixture on the emulated bench: it serves the till's node."""

from __future__ import annotations

import contextlib
import json
import time

import pytest
from escpos.printer import Network

from harness.printer import ReceiptPrinter


def sale(p: Network, total: str = "4.20") -> None:
    """A two-line sale, printed by python-escpos."""
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

"""Bad input never blinds the printer: every ESC t page decodes, a failure inside a receipt is recorded as a
decode fault of that receipt, and the receipts after it are still decoded and journaled."""

from __future__ import annotations

import json
import socket

import pytest

from harness.core.device import DeviceContext
from harness.core.evidence import Evidence
from harness.core.rig import DeviceSpec, Timing
from harness.printer.core import PrinterCore
from harness.printer.emulated import EmulatedPrinter
from harness.protocols.escpos import commands as C
from harness.protocols.escpos import decoder as D
from harness.protocols.escpos.codepages import NO_TABLE, UPPER_HALVES, decode_text
from harness.protocols.escpos.decoder import decode
from harness.protocols.escpos.receipt import ReceiptBuilder

NORMAL = C.INITIALIZE + b"Coffee   4.20\nTOTAL    4.20\n" + C.CUT_FULL


def _page(n: int) -> bytes:
    return C.INITIALIZE + b"\x1bt" + bytes([n]) + b"Sum \x80\x9a\xe0 12,50\n" + C.CUT_FULL


@pytest.mark.parametrize("n", sorted(C.CODE_PAGES))
def test_every_code_page_decodes_a_receipt(n):
    (receipt,) = ReceiptBuilder().add(decode(_page(n)))
    assert receipt.lines[0].startswith("Sum ") and receipt.lines[0].endswith(" 12,50")
    assert not receipt.decode_faults


def test_shipped_tables_decode_their_letters():
    assert decode_text(b"\x80\xa0", "cp1119") == "\u0410\u0430"          # Cyrillic A, a (IBM 772)
    assert decode_text(b"\xb5\xd0", "cp1118") == "\u0104\u0105"          # Lithuanian A/a ogonek (IBM 774)
    assert decode_text(b"\xa4\xd6", "cp851") == "\u0391\u03b1"           # Greek Alpha, alpha
    assert decode_text(b"\x91", "cp851") == "\ufffd"                     # undefined in cp851
    assert all(len(upper) == 128 for upper in UPPER_HALVES.values())


def test_pages_without_a_table_keep_ascii_and_say_so():
    (receipt,) = ReceiptBuilder().add(decode(_page(41)))                  # ESC t 41: cp1098 (Farsi)
    assert "cp1098" in NO_TABLE
    assert receipt.lines == ["Sum \ufffd\ufffd\ufffd 12,50"]
    assert receipt.codec_notes and "cp1098" in receipt.codec_notes[0]
    assert _page(41) == receipt.raw                                        # the exact bytes are kept
    plain = ReceiptBuilder().add(decode(C.INITIALIZE + b"\x1bt\x29Hi\n" + C.CUT_FULL))[0]
    assert plain.lines == ["Hi"] and not plain.codec_notes                 # ASCII only: nothing to note


def test_a_layout_failure_is_a_decode_fault_of_that_receipt(monkeypatch):
    def broken(self, e):
        raise RuntimeError("cannot lay out")

    monkeypatch.setattr(ReceiptBuilder, "_image", broken)
    image = C.RASTER_IMAGE + bytes([0, 1, 0, 1, 0]) + b"\xff"
    builder = ReceiptBuilder()
    first, second = builder.add(decode(b"A 1.00\n" + image + b"B 2.00\n" + C.CUT_FULL + NORMAL))
    assert first.lines == ["A 1.00", "B 2.00"] and first.cut == "full"
    assert len(first.decode_faults) == 1 and "RuntimeError: cannot lay out" in first.decode_faults[0]
    assert first.to_dict()["decode_faults"] == first.decode_faults
    assert second.lines[-1] == "TOTAL    4.20" and not second.decode_faults


def test_a_decoder_failure_keeps_the_bytes_and_the_printer_recording(monkeypatch):
    def broken(self, raw, p, offset):
        raise ValueError("decoder bug")

    monkeypatch.setitem(D._HANDLERS, "barcode", broken)
    core = PrinterCore()
    bad = C.INITIALIZE + b"X 1.00\n" + C.BARCODE + b"\x02" + b"4006381333931\x00" + b"tail\n"
    core.receive(bad)
    monkeypatch.undo()
    core.receive(C.CUT_FULL + NORMAL)
    first, second = core.receipts
    assert any("decoder failed: ValueError: decoder bug" in f for f in first.decode_faults)
    assert first.raw == bad + C.CUT_FULL                                   # nothing lost, nothing doubled
    assert second.lines == ["Coffee   4.20", "TOTAL    4.20"] and not second.decode_faults


def test_live_printer_journals_the_receipt_after_an_odd_one(tmp_path):
    """Through the emulated printer on TCP: a receipt in code page 41 (no Python codec) and garbage, then a
    normal receipt; both are journaled (before: the first raised inside the printer and nothing was journaled
    again)."""
    spec = DeviceSpec(name="printer", kind="printer", mode="emulated", driver="emulated", transport="tcp",
                      address="till:9100", node="till", profile="tm-t88", options={"slow_delay": 0.1})
    ctx = DeviceContext(rig=None, evidence=Evidence(tmp_path / "ev"), timing=Timing(0.05))
    with EmulatedPrinter(spec, ctx) as printer:
        host, port = printer.address["tcp"].split(":")
        with socket.create_connection((host, int(port)), timeout=5) as till:
            till.sendall(_page(41)[:-len(C.CUT_FULL)] + b"\x1b\x00\xfe\x1c\x01\x1dZ\x07\x1b\x00" + C.CUT_FULL)
            till.sendall(NORMAL)
            odd = printer.wait_for_receipt(5)
            normal = printer.wait_for_receipt(5)
        assert odd.codec_notes and odd.files["bin"].exists()
        assert normal.lines == ["Coffee   4.20", "TOTAL    4.20"]
        record = json.loads(normal.files["json"].read_text())
        assert record["index"] == 1 and record["amounts"] == ["4.20", "4.20"]

"""Fuzz: the ESC/POS decoder, the receipt builder and the emulated printer never fail on any bytes; a receipt
after garbage is still decoded and journaled."""

from __future__ import annotations

import json
import socket

from hypothesis import example, given
from hypothesis import strategies as st

from harness.core.device import DeviceContext
from harness.core.evidence import Evidence
from harness.core.rig import DeviceSpec, Timing
from harness.printer.core import PrinterCore
from harness.printer.emulated import EmulatedPrinter
from harness.printer.render import render_html, render_png, render_text
from harness.protocols.escpos import commands as C
from harness.protocols.escpos.decoder import Decoder
from harness.protocols.escpos.receipt import ReceiptBuilder
from tests.fuzz.budget import fuzz
from tests.fuzz.targets import ESCPOS_PREFIXES, ESCPOS_SAMPLES, EscposTarget

NORMAL = C.INITIALIZE + b"Coffee   4.20\nTOTAL    4.20\n" + C.CUT_FULL

commands = st.tuples(st.sampled_from(ESCPOS_PREFIXES), st.binary(max_size=10)).map(b"".join)
printable = st.binary(min_size=1, max_size=12).map(lambda b: bytes(0x20 | x for x in b))
escpos = st.one_of(
    st.binary(max_size=300),
    st.lists(st.one_of(commands, printable, st.sampled_from([C.LF, C.CUT_FULL, b"\x1bt\x29", C.CHINESE_ON])),
             max_size=20).map(b"".join),
    st.tuples(st.sampled_from(ESCPOS_SAMPLES), st.integers(0, 400), st.binary(max_size=6))
    .map(lambda t: t[0][: t[1]] + t[2] + t[0][t[1]:]),
)


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@fuzz(400)
@given(escpos, st.lists(st.integers(0, 10_000), max_size=6))
@example(b"\x1b@\x1bt\x29Hi\n\x1dV\x00", [])                      # ESC t 41: no Python codec (was LookupError)
@example(b"\x1d(L\x0b\x000p0\x01\x01\x31\xff\xff\xff\xff\x1d(L\x02\x0002\x1dV\x00", [])   # huge stored graphic
def test_decoder_and_builder_take_any_bytes_in_any_chunks(data, cuts):
    """Never an exception, never a decode fault; joining the events' bytes gives the input back exactly."""
    d = Decoder()
    events = [e for chunk in _chunks(data, cuts) for e in d.feed(chunk)] + d.finish()
    assert b"".join(e.raw for e in events) == data
    assert [e.offset for e in events] == sorted(e.offset for e in events)
    builder = ReceiptBuilder()
    receipts = builder.add(events)
    tail = builder.flush()
    for r in [*receipts, *([tail] if tail else [])]:
        assert not r.decode_faults, r.decode_faults
        render_text(r)
        json.dumps(r.to_dict(), default=str)


QR_TOO_LONG = (b"\x1d(k" + (8003).to_bytes(2, "little") + b"1P0" + b"A" * 8000 + b"\x1d(k\x03\x001Q0" + C.CUT_FULL)
GRAPHIC_BOMB = b"\x1d(L\x0a\x000p0\x01\x011\xff\x7f\xff\x7f\x1d(L\x02\x0002" + C.CUT_FULL   # 32767 x 32767, no data


@fuzz(150)
@given(escpos)
@example(QR_TOO_LONG)                     # more than a QR code holds: was ValueError, the receipt not journaled
@example(GRAPHIC_BOMB)                    # declared 32767 x 32767 from 14 bytes: was 22 s and 3 GB to draw
@example(b"\x1dk\x00\r\x00" + C.CUT_FULL)  # a barcode of a control character: its label failed to lay out
def test_every_receipt_draws(data):
    """PNG and HTML of any receipt: no exception, and no image larger than the bytes that describe it."""
    builder = ReceiptBuilder()
    receipts = builder.add(Decoder().feed(data) + [])
    tail = builder.flush()
    for r in [*receipts, *([tail] if tail else [])]:
        for image in r.images:
            assert image.row_bytes * image.height <= max(len(image.bits), image.row_bytes * 24)
        assert render_png(r)[:4] == b"\x89PNG"
        assert render_html(r).startswith("<!doctype html>")


@fuzz(200)
@given(st.lists(escpos, min_size=1, max_size=4))
def test_the_shared_target_survives_a_stream(frames):
    target = EscposTarget()
    for frame in frames:
        target.feed(frame)
    target.finish()


@fuzz(200)
@given(escpos)
@example(b"\x1bu")                               # ESC u takes the DLE as its n: two answers, DLE EOT's first
def test_printer_core_answers_real_time_status_after_any_bytes(data):
    """Whatever came before, DLE EOT 1 is answered with one status byte, and nothing raises."""
    core = PrinterCore()
    answers: list[bytes] = []
    core.receive(data, answers.append)
    answers.clear()
    core.receive(C.DLE_EOT_PRINTER, answers.append)
    # answered first, on arrival (a command the garbage left open may take DLE as its parameter and answer too)
    assert len(answers[0]) == 1 and answers[0][0] & C.STATUS_FIXED_MASK == C.STATUS_FIXED
    core.flush()
    assert all(not r.decode_faults for r in core.receipts)
    core.close()


def _leaves_no_command_open(data: bytes) -> bool:
    d = Decoder()
    d.feed(data)
    return d.pending == 0 or all(b >= 0x20 for b in data[-d.pending:])


@fuzz(25)
@given(escpos.filter(_leaves_no_command_open))
@example(b"\x1b@\x1bt\x29Sum \xe0 12,50\n\x1dV\x00")
def test_live_printer_journals_a_normal_receipt_after_garbage(tmp_path_factory, data):
    """Over a real socket to the emulated printer (journal on): garbage, then a normal receipt on a new
    connection, which must be journaled with its amounts."""
    folder = tmp_path_factory.mktemp("printer")
    spec = DeviceSpec(name="printer", kind="printer", mode="emulated", driver="emulated", transport="tcp",
                      address="till:9100", node="till", profile="tm-t88", options={"slow_delay": 0.05})
    ctx = DeviceContext(rig=None, evidence=Evidence(folder / "ev"), timing=Timing(0.05))
    with EmulatedPrinter(spec, ctx) as printer:
        host, port = printer.address["tcp"].split(":")
        with socket.create_connection((host, int(port)), timeout=5) as till:
            till.sendall(data)
        with socket.create_connection((host, int(port)), timeout=5) as till:
            till.sendall(NORMAL)
            deadline = 50
            while deadline and not any(r.raw.endswith(NORMAL) for r in printer.receipts):
                printer.wait_for_receipt(5)
                deadline -= 1
        last = printer.receipts[-1]
        assert last.lines[-2:] == ["Coffee   4.20", "TOTAL    4.20"]
        assert json.loads(last.files["json"].read_text())["amounts"][-2:] == ["4.20", "4.20"]
        assert all(not r.decode_faults for r in printer.receipts)


def test_style_changes_from_garbage_stay_bounded():
    """Found by bench_fuzz (slow RSS growth): each new (style, change) pair was remembered for the printer's
    life; garbage reaches about a million of them."""
    from harness.protocols.escpos.receipt import STYLE_CACHE_MAX

    builder = ReceiptBuilder()
    stream = b"".join(b"\x1b-" + bytes([u]) + b"\x1d!" + bytes([s]) + b"\x1bE" + bytes([b & 1]) + b"x"
                      for u in range(0, 256, 3) for s in range(0, 0x78, 7) for b in range(2))
    builder.add(Decoder().feed(stream + C.CUT_FULL))
    assert 0 < len(builder._style_cache) <= STYLE_CACHE_MAX

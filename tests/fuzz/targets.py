"""Fuzz targets shared by the fuzz tier (tests/fuzz, hypothesis) and the long runs (tests/benchmarks/bench_fuzz.py).

A target is one device's in-process core, fed one frame (a chunk of bytes as one read from the wire) at a time,
through the same code the device runs after `recv()`. The protocol's own refusals (FramingError, MessageError,
ZvtError, an Unknown ESC/POS event) are handled inside, as the device handles them; anything that escapes
`feed()` is a bug, and so is an answer the peer could not decode.

Each target also makes frames (`frames(rng)`): valid messages, mutations of them (bytes flipped, cut,
inserted, repeated, lengths lied about) and plain random bytes, so a run reaches past the framing.
"""

from __future__ import annotations

import json
import random
import socket
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path

from harness.protocols import iso8583 as iso
from harness.protocols import zvt
from harness.protocols.escpos import commands as C

# -- mutations ------------------------------------------------------------------------------------------------


def mutate(rng: random.Random, data: bytes, rounds: int | None = None) -> bytes:
    """`data` with a few random edits: flip, set, insert, delete, repeat, cut, splice in random bytes."""
    buf = bytearray(data)
    for _ in range(rounds if rounds is not None else rng.randint(1, 4)):
        op = rng.randrange(7)
        at = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            buf[min(at, len(buf) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:
            buf[min(at, len(buf) - 1)] = rng.choice((0x00, 0xFF, 0x7F, 0x80, 0x1B, 0x1D, 0x10, rng.randrange(256)))
        elif op == 2:
            buf[at:at] = rng.randbytes(rng.randint(1, 8))
        elif op == 3 and buf:
            del buf[at:at + rng.randint(1, 8)]
        elif op == 4 and buf:
            piece = buf[at:at + rng.randint(1, 16)]
            buf[at:at] = piece * rng.randint(1, 4)
        elif op == 5:
            del buf[at:]
        else:
            buf[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
    return bytes(buf)


# -- ESC/POS --------------------------------------------------------------------------------------------------
ESCPOS_PREFIXES = sorted({c.prefix for c in C.COMMANDS})
ESCPOS_SAMPLES = [
    C.INITIALIZE + b"Coffee   4.20\nTOTAL    4.20\n" + C.CUT_FULL,
    C.INITIALIZE + b"\x1ba\x01\x1bE\x01SHOP\n\x1bE\x00\x1d!\x11BIG\n\x1d!\x00" + C.CUT_PARTIAL,
    C.INITIALIZE + b"\x1d(k\x04\x001A2\x00\x1d(k\x08\x001P0abcde\x1d(k\x03\x001Q0" + C.CUT_FULL,
    C.INITIALIZE + C.BARCODE + b"\x02" + b"4006381333931\x00" + C.BARCODE + b"\x49\x05{B123" + C.CUT_FULL,
    C.INITIALIZE + C.RASTER_IMAGE + b"\x00\x02\x00\x02\x00\xff\x00\x0f\xf0" + b"\x1b*\x00\x02\x00\xaa\x55\n"
    + C.CUT_FULL,
    C.INITIALIZE + b"\x1d(L\x0b\x000p0\x01\x01\x31\x08\x00\x02\x00\xff\x00\x1d(L\x02\x0002" + C.CUT_FULL,
    C.CHINESE_ON + "收银台 合计 12.50".encode("gb18030") + C.LF + C.CHINESE_OFF + C.CUT_FULL,
    b"\x1bt\x29Hi \xe0\x1bt\x11\xe0\xa0\x1bt\x0b\xa4\n\x10\x04\x01\x1dr\x01\x1dI\x43\x1da\x0f\x1bp\x00\x19\xfa"
    + C.CUT_FULL,
]


def escpos_frame(rng: random.Random) -> bytes:
    kind = rng.random()
    if kind < 0.15:
        return rng.randbytes(rng.randint(0, 256))
    if kind < 0.55:
        return mutate(rng, rng.choice(ESCPOS_SAMPLES))
    parts = []
    for _ in range(rng.randint(1, 12)):
        r = rng.random()
        if r < 0.5:
            parts.append(rng.choice(ESCPOS_PREFIXES) + rng.randbytes(rng.randint(0, 8)))
        elif r < 0.8:
            parts.append(bytes(rng.randint(0x20, 0xFF) for _ in range(rng.randint(1, 12))))
        else:
            parts.append(rng.choice((C.LF, C.CUT_FULL, b"\x1bt" + bytes([rng.randrange(256)]), C.CHINESE_ON)))
    return b"".join(parts)


STREAM_WAIT_LIMIT = 4096     # bytes of one unfinished command after which the target starts a new stream


class EscposTarget:
    """The printer's decoder and receipt builder as the emulated printer runs them (state kept across frames, as
    on one till connection), each finished receipt rendered as text and JSON. A decode fault is a bug here.
    Garbage often declares a long command (up to 4 MiB) that would swallow every later frame: past
    STREAM_WAIT_LIMIT bytes waiting, the stream is finished and a new one begins, so runs keep reaching receipts."""

    name = "escpos"

    def __init__(self, profile: str | None = None) -> None:
        from harness.printer.profiles import get_profile
        from harness.protocols.escpos.decoder import Decoder
        from harness.protocols.escpos.receipt import ReceiptBuilder

        p = get_profile(profile)
        self.decoder = Decoder(p.codepage, p.chinese, p.chinese_codec)
        self.builder = ReceiptBuilder(p.name)
        self.receipts = 0
        self.streams = 1

    def feed(self, frame: bytes) -> None:
        self._take(self.decoder.feed(frame))
        if self.decoder.pending > STREAM_WAIT_LIMIT:
            self.finish()                              # the till hung up inside a long command: a new stream
            self.decoder = type(self.decoder)(self.decoder.default_codepage, self.decoder.default_chinese,
                                              self.decoder.chinese_codec)
            self.streams += 1

    def finish(self) -> None:
        self._take(self.decoder.finish())
        tail = self.builder.flush()
        if tail is not None:
            self._show(tail)

    def _take(self, events) -> None:
        for receipt in self.builder.add(events):
            self._show(receipt)
        if self.builder.faults:
            raise AssertionError(f"decode fault: {self.builder.faults}")

    def _show(self, receipt) -> None:
        from harness.printer.render import render_text

        if receipt.decode_faults:
            raise AssertionError(f"decode fault: {receipt.decode_faults}")
        render_text(receipt)
        json.dumps(receipt.to_dict(), default=str)
        self.receipts += 1

    def frames(self, rng: random.Random) -> Iterator[bytes]:
        while True:
            yield escpos_frame(rng)

    def close(self) -> None:
        pass


# -- ISO 8583 -------------------------------------------------------------------------------------------------
PAN = "4111111111111111"


def iso_sample(rng: random.Random) -> dict:
    stan = f"{rng.randrange(1_000_000):06d}"
    mti = rng.choice(("0200", "0201", "0100", "0220", "0400", "0420", "0421", "0500", "0800", "0210", "0999"))
    fields = {"t": mti, "2": PAN, "3": "000000", "4": f"{rng.randrange(10**6):012d}", "7": "1122030405",
              "11": stan, "41": "TERM0001", "42": "MERCHANT0000001", "49": "978"}
    if mti.startswith("04"):
        fields["90"] = iso.original_data("0200", f"{rng.randrange(1_000_000):06d}")
    if mti == "0800":
        fields = {"t": mti, "7": "1122030405", "11": stan, "70": rng.choice(("301", "001", "999"))}
    if mti == "0500":
        fields.update({"74": "0000000001", "86": "0000000000001000", "97": "C0000000000001000"})
    return fields


def iso_frame(rng: random.Random) -> bytes:
    kind = rng.random()
    if kind < 0.1:
        return rng.randbytes(rng.randint(0, 64))
    body = iso.encode(iso_sample(rng))
    if kind < 0.3:
        return struct.pack(">H", len(body)) + body                 # valid
    if kind < 0.8:
        body = mutate(rng, body)
        return struct.pack(">H", len(body)) + body                 # mutated body, honest length
    return mutate(rng, struct.pack(">H", len(body)) + body)        # anything may be off, the length too


class HostTarget:
    """The acquirer host's connection handling in process: framing, decoding, booking in a real SQLite ledger
    and answering (`HostServer._handle_frame`, as its connection thread runs it). Every answer must decode as
    ISO 8583. A frame that cannot be framed ends the connection (a new one starts), as on TCP."""

    name = "iso8583-host"

    def __init__(self, folder: Path | None = None, rotate: int = 100_000) -> None:
        from harness.host.ledger import Bookkeeper
        from harness.host.server import HostServer

        self._tmp = None if folder is not None else tempfile.TemporaryDirectory(prefix="posrig-fuzz-host-")
        self.folder = Path(folder if folder is not None else self._tmp.name)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.server = HostServer(self._listener, self.folder / "ledger-0.sqlite", synchronous="OFF")
        self._bookkeeper_class = Bookkeeper
        self.rotate, self.booked, self.ledgers = rotate, 0, 0
        self.server.bookkeeper = Bookkeeper(self.server.ledger_path, "OFF",
                                            before_batch=self.server.acquirer.refresh_rules)
        self.answers = 0
        self._connect()

    def _connect(self) -> None:
        from harness.host.acquirer import Connection
        from harness.host.server import _Peer

        self._ours, self._theirs = socket.socketpair()
        self._theirs.setblocking(False)
        self.peer = _Peer(Connection(self.ledgers * 1_000_000 + self.booked, "fuzz"), self._ours)
        self.reader = iso.FrameReader(self.server.framing, self.server.max_message)
        self._back = iso.FrameReader(self.server.framing, 1 << 16)

    def _hang_up(self) -> None:
        self.peer.shut()
        self._theirs.close()
        self._connect()

    def feed(self, frame: bytes) -> None:
        import time

        try:
            frames, bad = self.reader.feed(frame), None
        except iso.FramingError as exc:
            frames, bad = exc.frames, exc
        for raw in frames:
            self.booked += 1
            if not self.server._handle_frame(self.peer, raw, time.time()):
                self._hang_up()
                return
            self._check_answers()
        if bad is not None:
            self.server._book_error(self.peer, frame, f"cannot frame the stream: {bad}; connection closed")
            self._hang_up()
        if self.booked >= self.rotate:
            self._new_ledger()

    def _check_answers(self) -> None:
        while True:
            try:
                data = self._theirs.recv(65536)
            except BlockingIOError:
                return
            for raw in self._back.feed(data):
                iso.decode(raw, self.server.spec)        # an answer the terminal cannot read is a bug
                self.answers += 1

    def _new_ledger(self) -> None:
        self.server.bookkeeper.close()
        self.server.ledger_path.unlink(missing_ok=True)
        self.ledgers += 1
        self.booked = 0
        self.server.ledger_path = self.folder / f"ledger-{self.ledgers}.sqlite"
        self.server.bookkeeper = self._bookkeeper_class(self.server.ledger_path, "OFF",
                                                        before_batch=self.server.acquirer.refresh_rules)

    def frames(self, rng: random.Random) -> Iterator[bytes]:
        while True:
            yield iso_frame(rng)

    def close(self) -> None:
        self.peer.shut()
        self._theirs.close()
        self.server.bookkeeper.close()
        self._listener.close()
        if self._tmp is not None:
            self._tmp.cleanup()


# -- ZVT ------------------------------------------------------------------------------------------------------
def zvt_samples() -> list[bytes]:
    return [
        zvt.encode("authorization", amount=1999, currency=978),
        zvt.encode("registration", password=0, config_byte=0x08, currency=978),
        zvt.encode("status_enquiry"),
        zvt.encode("ack"),
        zvt.encode("nack", result_code=0x9A),
        zvt.encode("ecr_abort"),
        zvt.encode("end_of_day", password=0),
        zvt.encode("reversal", password=0, receipt_no=12),
        zvt.encode("repeat_receipt"),
        zvt.encode("log_off"),
        bytes.fromhex("06 d3 ff 05 00") + b"\x06\x03\x01\x01\x00",
        bytes.fromhex("06 01 0f 04 00 00 00 00 10 00 49 09 78 06 04 1f 02 01 01"),
        bytes.fromhex("06 d1 05 00") + b"Test",
        bytes.fromhex("04 ff 02 0a 05"),
    ]


def zvt_frame(rng: random.Random, samples: list[bytes]) -> bytes:
    kind = rng.random()
    if kind < 0.1:
        return rng.randbytes(rng.randint(0, 64))
    if kind < 0.25:
        return rng.choice(samples)
    if kind < 0.75:
        cls_ins = rng.choice(samples)[:2]
        data = mutate(rng, rng.choice(samples)[3:])
        return zvt.frame(cls_ins[0], cls_ins[1], data[: zvt.MAX_APDU_DATA])     # mutated data, honest length
    return mutate(rng, rng.choice(samples))


class _Sink:
    """The ECR's end of the connection as the session sees it: sendall only, what is sent is checked."""

    def __init__(self) -> None:
        self.reader = zvt.ApduReader(classes=None)
        self.sent = 0

    def sendall(self, raw: bytes) -> None:
        for apdu in self.reader.feed(raw):
            zvt.decode_apdu(apdu)                       # an answer the till cannot read is a bug
            self.sent += 1

    def close(self) -> None:
        pass

    def shutdown(self, how: int) -> None:
        pass


class ZvtTarget:
    """The terminal's ECR side in process: APDU framing (`ApduReader`), decoding and dispatch (`EcrSession`), as
    its connection thread runs them; commands that would start a payment flow are counted, not run (the
    socket tests run them). Every APDU the terminal sends must decode."""

    name = "zvt-ecr"

    def __init__(self, folder: Path | None = None) -> None:
        from harness.terminal.ecr import EcrServer, EcrSession

        class _Counting(EcrServer):
            def submit(self, session, msg) -> None:
                self.submitted += 1
                zvt.describe(msg)

        from harness.terminal.core import TerminalCore
        from harness.terminal.journal import Journal

        self._tmp = None if folder is not None else tempfile.TemporaryDirectory(prefix="posrig-fuzz-zvt-")
        self.folder = Path(folder if folder is not None else self._tmp.name)
        self.core = TerminalCore(journal=Journal(self.folder / "journal.sqlite"), host_address=("127.0.0.1", 9))
        self.server = _Counting(self.core, None)
        self.server.submitted = 0
        self.sink = _Sink()
        self.session = EcrSession(self.server, self.sink, "fuzz")
        self.reader = zvt.ApduReader()
        self.samples = zvt_samples()

    def feed(self, frame: bytes) -> None:
        try:
            apdus = self.reader.feed(frame)
        except zvt.ZvtError as exc:
            self.session.send(zvt.encode("nack", result_code=exc.code))
            return
        for apdu in apdus:
            self.session._dispatch(apdu)

    def frames(self, rng: random.Random) -> Iterator[bytes]:
        while True:
            yield zvt_frame(rng, self.samples)

    def close(self) -> None:
        self.core.close()
        if self._tmp is not None:
            self._tmp.cleanup()


# -- the link's framing -----------------------------------------------------------------------------------------
class LinkTarget:
    """The link engine's view of a byte stream: stage detection on each direction (`tracker.HalfStream` over the
    ISO 8583 and ZVT layers, with card-number masking), the ISO 8583 `FrameReader` (2-byte and 4-ASCII
    framing), and scapy dissection of a segment with the message's `stage` and STAN."""

    name = "link-framing"

    def __init__(self) -> None:
        self.messages = 0
        self.staged = 0          # dissected messages with a stage
        self._fresh()
        self.samples = zvt_samples()

    def _fresh(self) -> None:
        from harness.link.layers import ISO8583, ZVT
        from harness.link.tracker import HalfStream

        self.layers = (ISO8583, ZVT)
        self.halves = [HalfStream(direction="terminal->host", layer=layer, isn=0) for layer in self.layers]
        self.readers = [iso.FrameReader("2byte"), iso.FrameReader("4ascii")]
        self.packet = 0

    def feed(self, frame: bytes) -> None:
        from harness.link.layers import messages

        self.packet += 1
        for i, half in enumerate(self.halves):
            rel = half.next
            self.messages += len(half.feed(rel, frame, self.packet))
            half.mask(rel, frame)
            if half.garbage:                           # the engine stops parsing that stream: a new one
                from harness.link.tracker import HalfStream

                self.halves[i] = HalfStream(direction=half.direction, layer=half.layer, isn=0)
        for i, reader in enumerate(self.readers):
            try:
                reader.feed(frame)
            except iso.FramingError:
                self.readers[i] = iso.FrameReader(reader.framing)
        for layer in self.layers:
            whole = layer.tcp_reassemble(frame, {}, None)
            if whole is not None:
                for msg in messages(whole):
                    self.staged += msg.stage is not None
                    if hasattr(msg, "stan"):
                        msg.stan()
            layer.pan_span(frame[: layer.pan_head])

    def frames(self, rng: random.Random) -> Iterator[bytes]:
        while True:
            if rng.random() < 0.5:
                data = iso_frame(rng)
            else:
                data = zvt_frame(rng, self.samples)
            if rng.random() < 0.3 and len(data) > 1:          # a message split over two segments
                cut = rng.randrange(1, len(data))
                yield data[:cut]
                yield data[cut:]
            else:
                yield data

    def close(self) -> None:
        pass


TARGETS = {t.name: t for t in (EscposTarget, HostTarget, ZvtTarget, LinkTarget)}

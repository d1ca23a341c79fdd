"""Fuzz: ISO 8583 framing and decoding refuse bad bytes only in their own words (FramingError, MessageError),
the host books and answers anything in process, and over a real socket it keeps serving after garbage."""

from __future__ import annotations

import itertools
import random
import struct

from hypothesis import example, given
from hypothesis import strategies as st

from harness.protocols import iso8583 as iso
from tests.fuzz.budget import fuzz
from tests.fuzz.targets import HostTarget, iso_sample
from tests.support.iso_client import sale

BODIES = [iso.encode(iso_sample(random.Random(seed))) for seed in range(12)]
TERTIARY = b"0200" + b"8" + b"0" * 15 + b"8" + b"0" * 15 + b"0080000000000000"   # announces field 137


def _edit(body: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    buf = bytearray(body)
    for op, at, value in edits:
        at %= len(buf) + 1
        if op == 0 and buf:
            buf[min(at, len(buf) - 1)] = value
        elif op == 1:
            buf[at:at] = bytes([value])
        else:
            del buf[at:at + value % 8 + 1]
    return bytes(buf)


edits = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 400), st.integers(0, 255)), max_size=6)
bodies = st.one_of(st.binary(max_size=200), st.sampled_from([*BODIES, TERTIARY]),
                   st.tuples(st.sampled_from(BODIES), edits).map(lambda t: _edit(*t)))
framed = bodies.filter(len).map(lambda b: struct.pack(">H", len(b)) + b)     # an honest, possible length
streams = st.one_of(st.lists(framed, max_size=5).map(b"".join), st.binary(max_size=300),
                    st.tuples(st.lists(framed, max_size=5).map(b"".join), edits).map(lambda t: _edit(*t)))


@fuzz(300)
@given(streams, st.sampled_from(["2byte", "4ascii"]), st.lists(st.integers(1, 64), max_size=8))
def test_frame_reader_only_ever_refuses_with_framing_error(stream, framing, sizes):
    reader = iso.FrameReader(framing)
    at = 0
    for size in itertools.chain(sizes, [len(stream)]):
        chunk, at = stream[at:at + size], at + size
        try:
            for frame in reader.feed(chunk):
                assert 1 <= len(frame) <= iso.MAX_MESSAGE
        except iso.FramingError as exc:
            assert all(1 <= len(f) <= iso.MAX_MESSAGE for f in exc.frames)
            reader = iso.FrameReader(framing)


@fuzz(400)
@given(bodies, st.sampled_from(sorted(iso.SPECS)))
@example(TERTIARY, "ascii")                    # pyiso8583 raised KeyError '137', which escaped decode()
def test_decode_raises_only_message_error(body, spec):
    try:
        fields = iso.decode(body, spec)
    except iso.MessageError as exc:
        assert exc.raw == body
        return
    iso.describe(fields)
    iso.mask_fields(fields)


@fuzz(80)
@given(st.lists(streams, min_size=1, max_size=4))
@example([struct.pack(">H", len(TERTIARY)) + TERTIARY])
def test_host_books_and_answers_any_stream_in_process(tmp_path_factory, frames):
    """Framing, decoding, booking in a real ledger and answering: nothing escapes, every answer decodes."""
    target = HostTarget(tmp_path_factory.mktemp("host"))
    try:
        for frame in frames:
            target.feed(frame)
    finally:
        target.close()


_stans = itertools.count(100_000)


@fuzz(40)
@given(st.lists(framed, min_size=1, max_size=4), st.binary(max_size=200))
def test_host_keeps_serving_after_garbage_on_a_socket(srv, frames, raw_garbage):
    """Framed garbage on one connection, then a sale on the same connection: answered 00. Unframeable
    garbage on another connection (the host may close it), then a sale on a new connection: answered 00."""
    stan = next(_stans)
    c = srv.client(framing="none")
    c.sock.sendall(b"".join(frames))
    c.framing = "2byte"
    c.send(sale(stan))
    while True:
        answer = c.recv(timeout=5)
        assert answer is not None, f"no answer to the sale STAN {stan} after {frames!r}"
        if answer.get("11") == f"{stan:06d}" and answer["t"] == "0210":
            break
    assert answer["39"] == "00"
    bad = srv.client(framing="none")
    bad.sock.sendall(raw_garbage)
    bad.close()
    assert srv.client().exchange(sale(stan + 500_000))["39"] == "00"

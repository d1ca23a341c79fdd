"""Property tests: chunking never changes the events; random bytes never crash or hang the decoder."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.protocols.escpos import commands as C
from harness.protocols.escpos.decoder import Decoder, decode

FIXED = [C.INITIALIZE, C.CUT_FULL, C.CUT_PARTIAL, b"\x1dVA\x03", b"\x1bE\x01", b"\x1bE\x00", b"\x1b-\x01",
         b"\x1ba\x01", b"\x1d!\x11", b"\x1bt\x10", b"\x1bt\x00", C.CHINESE_ON, C.CHINESE_OFF, b"\x1c!\x08",
         b"\x1bp\x00\x19\xfa", b"\x10\x04\x01", b"\x10\x04\x04", b"\x1dr\x01", b"\x1dI\x43", b"\x1da\x0f",
         b"\x1bd\x03", b"\n", b"\r", b"\t", b"\x1b3\x10", b"\x1b2", b"\x1dh\x50", b"\x1b\xf0", b"\x07"]

texts = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=20)
    .map(lambda s: s.encode()),
    st.text(alphabet=st.sampled_from("中文收据牛奶¥€超市𠀀"), min_size=1, max_size=6)
    .map(lambda s: s.encode("gb18030")),
)


@st.composite
def images(draw):
    payload_bytes = st.binary(min_size=0, max_size=64)
    kind = draw(st.sampled_from(["raster", "column", "graphics", "barcode_a", "barcode_b", "qr", "unknown"]))
    if kind == "raster":
        xb, h = draw(st.integers(1, 4)), draw(st.integers(1, 8))
        data = draw(st.binary(min_size=xb * h, max_size=xb * h)) if xb * h <= 64 else bytes(xb * h)
        return C.GS + b"v0\x00" + xb.to_bytes(2, "little") + h.to_bytes(2, "little") + data
    if kind == "column":
        n = draw(st.integers(1, 10))
        return C.ESC + b"*\x21" + n.to_bytes(2, "little") + draw(st.binary(min_size=3 * n, max_size=3 * n))
    if kind == "graphics":
        w, h = 8 * draw(st.integers(1, 3)), draw(st.integers(1, 4))
        bits = draw(st.binary(min_size=w // 8 * h, max_size=w // 8 * h))
        body = b"0p0\x01\x011" + w.to_bytes(2, "little") + h.to_bytes(2, "little") + bits
        return C.GS + b"(L" + len(body).to_bytes(2, "little") + body + C.GS + b"(L\x02\x0002"
    if kind == "barcode_a":
        return C.GS + b"k\x04" + draw(st.binary(max_size=12).filter(lambda b: 0 not in b)) + b"\x00"
    if kind == "barcode_b":
        data = draw(st.binary(max_size=20))
        return C.GS + b"kI" + bytes([len(data)]) + data
    if kind == "qr":
        data = draw(payload_bytes)
        body = b"1P0" + data
        return (C.GS + b"(k" + len(body).to_bytes(2, "little") + body + C.GS + b"(k\x03\x001Q0")
    body = draw(payload_bytes)
    return C.GS + b"(z" + len(body).to_bytes(2, "little") + body


streams = st.lists(st.one_of(st.sampled_from(FIXED), texts, images(), st.binary(max_size=8)), max_size=25) \
    .map(b"".join)


def chunked(data: bytes, cuts: list[int]) -> list:
    d = Decoder()
    events = []
    last = 0
    for cut in sorted({c % (len(data) + 1) for c in cuts}) + [len(data)]:
        events += d.feed(data[last:cut])
        last = cut
    return events + d.finish()


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(streams, st.lists(st.integers(0, 10_000), max_size=12))
def test_any_chunking_gives_the_same_events(data, cuts):
    whole = decode(data)
    assert chunked(data, cuts) == whole
    assert b"".join(e.raw for e in whole) == data


@settings(max_examples=40, deadline=None)
@given(streams)
def test_one_byte_at_a_time_gives_the_same_events(data):
    d = Decoder()
    events = []
    for i in range(len(data)):
        events += d.feed(data[i:i + 1])
    assert events + d.finish() == decode(data)


@settings(max_examples=300, deadline=2000)
@given(st.binary(max_size=2048), st.booleans())
def test_random_bytes_never_crash_or_hang(data, chinese):
    events = decode(data, chinese=chinese)
    assert b"".join(e.raw for e in events) == data
    for e in events:
        e.to_dict()
        if e.kind == "Text":
            assert isinstance(e.text, str)

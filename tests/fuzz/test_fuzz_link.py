"""Fuzz: the link's framing. Stage detection on a byte stream (`tracker.HalfStream` over the ISO 8583 and ZVT
layers), the layers' `frame`/`pan_span`, scapy dissection of any segment with its `stage`, and the engine's view
of a whole stream (`targets.LinkTarget`): only FramingError ever refuses, and nothing else escapes."""

from __future__ import annotations

import random

from hypothesis import example, given
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP

from harness.link.layers import ISO8583, NEED_MORE, ZVT, FramingError, bind_ports, messages
from harness.link.tracker import HalfStream
from harness.protocols import iso8583 as iso
from tests.fuzz.budget import fuzz
from tests.fuzz.targets import LinkTarget, iso_frame, zvt_frame, zvt_samples

_rng = random.Random(7)
SAMPLES = [iso_frame(_rng) for _ in range(20)] + [zvt_frame(_rng, zvt_samples()) for _ in range(20)]
segments = st.one_of(st.binary(max_size=120), st.sampled_from(SAMPLES),
                     st.tuples(st.sampled_from(SAMPLES), st.integers(0, 200), st.binary(max_size=4))
                     .map(lambda t: t[0][: t[1]] + t[2] + t[0][t[1]:]))
PORTS = {"iso8583": 5000, "zvt": 20007}


@fuzz(300)
@given(segments)
@example(b"\x00\x2a")                                      # a 2-byte segment: stage raised TypeError
def test_layers_frame_and_stage_any_segment(segment):
    for layer in (ISO8583, ZVT):
        try:
            whole = layer.frame(segment[: layer.head_size])
        except FramingError:
            whole = None
        if whole is not None:
            assert whole[0] >= layer.head_size - 2 and isinstance(whole[1], str)
        span = layer.pan_span(segment[: layer.pan_head])
        assert span is None or span is NEED_MORE or (isinstance(span, tuple) and span[0] <= span[1])
    bind_ports(PORTS)
    for port in PORTS.values():
        pkt = IP(bytes(IP() / TCP(sport=port, dport=40000) / segment))
        for msg in messages(pkt):
            assert msg.stage is None or isinstance(msg.stage, str)
            if isinstance(msg, ISO8583):
                msg.stan()


@fuzz(300)
@given(st.lists(segments, min_size=1, max_size=6), st.sampled_from([ISO8583, ZVT]))
def test_half_stream_finds_stages_or_stops_at_garbage(chunks, layer):
    """Messages found lie inside the bytes seen, in order; a stream that is not the protocol stops with a
    reason instead of raising."""
    half = HalfStream(direction="terminal->host", layer=layer, isn=0)
    seen = 0
    last_start = -1
    for chunk in chunks:
        for msg in half.feed(half.next, chunk, packet=1):
            assert last_start < msg.start < seen + len(chunk) and msg.end > msg.start
            last_start = msg.start
        half.mask(seen, chunk)
        seen += len(chunk)
        if half.garbage:
            assert isinstance(half.garbage, str)
            break
    assert half.next == seen


@fuzz(200)
@given(st.lists(segments, min_size=1, max_size=6))
def test_the_engines_view_of_a_stream_never_fails(chunks):
    target = LinkTarget()
    for chunk in chunks:
        target.feed(chunk)


@fuzz(200)
@given(st.lists(segments, max_size=6), st.sampled_from(["2byte", "4ascii"]))
def test_frame_reader_frames_are_the_stream(chunks, framing):
    """Whatever FrameReader returns is exactly the bytes between the length prefixes it read."""
    reader = iso.FrameReader(framing)
    wire = iso.Framing(framing)
    got = b""
    stream = b""
    try:
        for chunk in chunks:
            stream += chunk
            got += b"".join(wire.wrap(f) for f in reader.feed(chunk))
    except FramingError as exc:
        got += b"".join(wire.wrap(f) for f in exc.frames)
        assert stream.startswith(got)
        return
    assert got + reader.pending == stream

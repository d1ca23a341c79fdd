"""The stream tracker: messages found in TCP segments however they are cut, retransmitted or reordered, and card
numbers masked in the capture."""

from __future__ import annotations

import random
import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP

from harness.core.masking import mask_pan
from harness.link.engine.forge import build_tcp
from harness.link.layers import ISO8583, ZVT
from harness.link.tracker import ACK, SYN, Tracker, parse
from harness.protocols import iso8583
from tests.support.link_peers import iso_frame, iso_message, zvt_apdu


def seg(src, sport, dst, dport, seq, payload=b"", flags="PA", ack=1):
    tcp = TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags)
    return bytes(IP(src=src, dst=dst) / tcp / payload)


def track(tracker, raw, n=[0]):  # noqa: B006 - a packet counter shared by the calls of one test
    n[0] += 1
    s = parse(raw)
    return tracker.observe(s, raw, n[0])


def test_tracker_split_coalesced_and_retransmission():
    t = Tracker(("terminal", "host"), {5000: ISO8583}, {"10.0.0.1": "terminal", "10.0.0.2": "host"})
    up = ("10.0.0.1", 40000, "10.0.0.2", 5000)
    _, new, _ = track(t, seg(*up, 1000, flags="S"))
    assert [m.stage for m in new] == ["connect"]
    a, b = iso_message("0800", "000001"), iso_message("0200", "000002")
    stream = a + b
    _, new, re = track(t, seg(*up, 1001, stream[:1]))                  # one byte of the length prefix
    assert new == [] and not re
    _, new, _ = track(t, seg(*up, 1002, stream[1:len(a) + 3]))         # rest of a, start of b
    assert [m.stage for m in new] == ["0800"]
    _, new, _ = track(t, seg(*up, 1001 + len(a) + 3, stream[len(a) + 3:]))
    assert [(m.stage, m.start, m.end, m.direction) for m in new] == [("0200", len(a), len(stream),
                                                                        "terminal->host")]
    conn, new, re = track(t, seg(*up, 1002, stream[1:len(a) + 3]))     # a retransmission: nothing new
    assert new == [] and re
    assert [m.stage for m in conn.up.messages_in(1, len(a) + 3)] == ["0800", "0200"]
    assert t.counts[("terminal->host", "0200")] == 1


def test_tracker_out_of_order_and_garbage():
    t = Tracker(("terminal", "host"), {5000: ISO8583})
    up = ("10.0.0.1", 40000, "10.0.0.2", 5000)
    track(t, seg(*up, 5000, flags="S"))
    a, b = iso_message("0200", "000001"), iso_message("0200", "000002")
    _, new, _ = track(t, seg(*up, 5001 + len(a), b))                   # arrives before a
    assert new == []
    _, new, _ = track(t, seg(*up, 5001, a))
    assert [m.start for m in new] == [0, len(a)]
    conn, new, _ = track(t, seg(*up, 5001 + len(a) + len(b), b"GET / HTTP/1.1\r\n"))
    assert new == [] and "MTI expected" in conn.up.garbage            # parsing stops, traffic still flows
    assert t.direction(parse(seg(*up, 1))) == "terminal->host"        # by port when addresses are unknown


PAN = "4111111111111111"


def test_tracker_masks_a_card_number_split_across_segments():
    t = Tracker(("terminal", "host"), {5000: ISO8583})
    up = ("10.0.0.1", 40000, "10.0.0.2", 5000)
    track(t, seg(*up, 0, flags="S"))
    frame = iso8583.encode_frame({"t": "0200", "2": PAN, "11": "000001"})
    cut = frame.index(PAN.encode()) + 8                                 # the PAN itself split in two
    conn, _, _ = track(t, seg(*up, 1, frame[:cut]))
    track(t, seg(*up, 1 + cut, frame[cut:]))
    first, second = conn.up.mask(0, frame[:cut]), conn.up.mask(cut, frame[cut:])
    assert first.endswith(b"41111111"[:6] + b"**") and second is not None
    shown = first + second
    assert PAN.encode() not in shown and mask_pan(PAN).encode() in shown


def test_short_card_number_is_hidden_whole():
    t = Tracker(("terminal", "host"), {5000: ISO8583})
    up = ("10.0.0.1", 40000, "10.0.0.2", 5000)
    track(t, seg(*up, 0, flags="S"))
    frame = iso_frame({"t": "0200", "2": "12345678", "11": "000001"})
    conn, _, _ = track(t, seg(*up, 1, frame))
    assert b"12345678" not in conn.up.mask(0, frame) and b"********" in conn.up.mask(0, frame)


# -- property: however a stream is cut and delivered, the same messages at the same offsets -----------------
@st.composite
def iso_messages(draw) -> bytes:
    mti = draw(st.text("0123456789", min_size=4, max_size=4))
    body = draw(st.binary(max_size=300))
    return struct.pack(">H", 4 + len(body)) + mti.encode() + body


@st.composite
def zvt_messages(draw) -> bytes:
    cls, ins = draw(st.integers(0, 255)), draw(st.integers(0, 255))
    return zvt_apdu(cls, ins, draw(st.binary(max_size=300) | st.binary(min_size=255, max_size=600)))


@st.composite
def deliveries(draw):
    """(protocol layer, port, messages, the segments in the order they cross the link)."""
    layer, port, gen = draw(st.sampled_from([(ISO8583, 5000, iso_messages()), (ZVT, 20007, zvt_messages())]))
    msgs = draw(st.lists(gen, min_size=1, max_size=12))
    stream = b"".join(msgs)
    cuts = sorted(draw(st.sets(st.integers(1, len(stream) - 1), max_size=min(40, len(stream) - 1))))
    bounds = list(zip([0, *cuts], [*cuts, len(stream)], strict=True))
    # Reordering within a window the tracker buffers, and retransmissions of segments already sent.
    rnd = random.Random(draw(st.integers(0, 2**32 - 1)))
    window = draw(st.integers(1, 6))
    resend = draw(st.sampled_from([0.0, 0.2, 0.5]))
    order = sorted(range(len(bounds)), key=lambda i: i + rnd.uniform(0, window))
    sent: list[tuple[int, int]] = []
    for i in order:
        sent.append(bounds[i])
        if rnd.random() < resend:
            sent.append(rnd.choice(sent))
    return layer, port, msgs, stream, sent


def feed(layer, port: int, stream: bytes, segments: list[tuple[int, int]], isn: int) -> list[tuple]:
    t = Tracker(("till", "host"), {port: layer}, {"10.0.0.1": "till", "10.0.0.2": "host"})
    src, dst = ("10.0.0.1", 40000), ("10.0.0.2", port)
    found = []
    syn = build_tcp(*src, *dst, isn, 0, SYN)
    t.observe(parse(syn), syn, 1)
    for n, (a, b) in enumerate(segments, start=2):
        raw = build_tcp(*src, *dst, isn + 1 + a, 1, ACK, stream[a:b])
        _, new, _ = t.observe(parse(raw), raw, n)
        found += [(m.stage, m.start, m.end, m.direction) for m in new]
    return found


@settings(max_examples=150, deadline=None)
@given(deliveries(), st.integers(0, 2**32 - 1))
def test_segmentation_does_not_change_the_messages(case, isn):
    layer, port, msgs, stream, segments = case
    whole = feed(layer, port, stream, [(0, len(stream))], isn)
    cut = feed(layer, port, stream, segments, isn)
    expected, at = [], 0
    for m in msgs:
        stage = m[2:6].decode() if layer is ISO8583 else f"zvt:{m[0]:02X} {m[1]:02X}"
        expected.append((stage, at, at + len(m), "till->host"))
        at += len(m)
    assert whole == expected
    assert cut == expected

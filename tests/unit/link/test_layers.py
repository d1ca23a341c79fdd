"""The scapy protocol layers: building, dissecting, framing from the protocols' own length rules, card spans."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP

from harness.link.layers import ISO8583, NEED_MORE, ZVT, FramingError, bind_ports, messages
from harness.protocols import iso8583, zvt
from tests.support.link_peers import AUTHORIZE, STATUS_INFO, iso_frame, iso_message, zvt_apdu


def test_iso8583_layer_builds_and_dissects():
    frame = iso_message("0200", "000123")
    msg = ISO8583(frame)
    assert msg.mti == b"0200" and msg.length == len(frame) - 2 and msg.stan() == "000123"
    built = bytes(ISO8583(mti=b"0800", data=msg.data))
    assert built == b"\x00" + bytes([len(frame) - 2]) + b"0800" + msg.data
    assert ISO8583.frame(frame[:6]) == (len(frame), "0200")
    assert ISO8583.frame(frame[:5]) is None                      # MTI incomplete: wait for more
    assert ISO8583.frame(frame[:1]) is None                      # length incomplete
    with pytest.raises(FramingError, match="MTI expected"):
        ISO8583.frame(b"\x00\x10GET /")
    with pytest.raises(FramingError, match="shorter than an MTI"):
        ISO8583.frame(b"\x00\x03021")
    with pytest.raises(FramingError):
        ISO8583.frame(b"\x00\x00")                              # no message is empty


def test_iso8583_frame_length_is_the_protocols():
    frame = iso_message("0210", "000001")
    assert ISO8583.frame(frame[:6])[0] == iso8583.frame_length(frame[:6]) == len(frame)


def test_zvt_layer_lengths():
    assert ZVT.frame(AUTHORIZE[:3]) == (len(AUTHORIZE), "zvt:06 01")
    big = zvt_apdu(0x06, 0xD3, b"x" * 300)
    assert big[2] == 0xFF and ZVT.frame(big[:5]) == (305, "zvt:06 D3")
    assert ZVT.frame(big[:4]) is None
    assert ZVT.frame(big[:5])[0] == zvt.apdu_length(big[:5])
    assert bytes(ZVT(apdu_class=0x06, instr=0xD3, data=b"x" * 300)) == big
    assert bytes(ZVT(apdu_class=0x04, instr=0x0F, data=STATUS_INFO[3:])) == STATUS_INFO
    assert ZVT(big).data == b"x" * 300


def test_scapy_dissects_coalesced_and_bound_ports():
    bind_ports({"iso8583": 5000, "zvt": 20007})
    two = iso_message("0800", "000001") + iso_message("0200", "000002")
    pkt = IP(bytes(IP() / TCP(sport=40000, dport=5000) / (two + b"\x00")))
    assert [m.mti for m in messages(pkt)] == [b"0800", b"0200"]   # a trailing half message stays Raw
    zpkt = IP(bytes(IP() / TCP(sport=20007, dport=40000) / (STATUS_INFO + AUTHORIZE)))
    assert [m.stage for m in messages(zpkt)] == ["zvt:04 0F", "zvt:06 01"]


def test_tcp_reassemble_waits_for_the_whole_message():
    frame = iso_message("0210", "000004")
    assert ISO8583.tcp_reassemble(frame[:10], {}, None) is None
    assert ISO8583.tcp_reassemble(frame, {}, None).mti == b"0210"


def test_unknown_protocol_is_refused():
    with pytest.raises(ValueError, match="unknown link protocol 'http'"):
        bind_ports({"http": 80})


PAN = "4111111111111111"


@pytest.mark.parametrize("spec", ["ascii", "binary"])
def test_card_number_span_in_iso8583(spec):
    with_pan = iso8583.encode_frame({"t": "0200", "2": PAN, "3": "000000", "11": "000001"}, spec=spec)
    a, b = ISO8583.pan_span(with_pan[:ISO8583.pan_head])
    assert with_pan[a:b] == PAN.encode()
    second = iso8583.encode_frame({"t": "0200", "2": PAN, "11": "000001", "70": "301"}, spec=spec)
    a, b = ISO8583.pan_span(second[:ISO8583.pan_head])          # secondary bitmap present
    assert second[a:b] == PAN.encode()
    assert ISO8583.pan_span(iso_message("0200", "000001")[:40]) is None
    assert ISO8583.pan_span(with_pan[:10]) is NEED_MORE


def test_short_card_number_span():
    frame = iso_frame({"t": "0200", "2": "12345678", "11": "000001"})
    a, b = ISO8583.pan_span(frame[:ISO8583.pan_head])
    assert frame[a:b] == b"12345678"


@pytest.mark.parametrize("segment", [b"\x00\x2a", b"\x00\x2a02", b"\xff\xffABCD", b"\x00\x00\x00\x00\x00\x00"])
def test_stage_of_a_short_or_garbage_iso8583_segment_is_none(segment):
    """A 2-byte segment dissected from a capture has no MTI yet: no stage (before: TypeError), and not the
    default MTI scapy fills in for the missing field."""
    assert ISO8583(segment).stage is None
    bind_ports({"iso8583": 5000})
    pkt = IP(bytes(IP() / TCP(sport=5000) / segment))
    assert [m.stage for m in messages(pkt)] in ([], [None])


def test_stage_of_short_zvt_segments():
    assert ZVT(b"\x06\x01\x0a\x04").stage == "zvt:06 01"  # cut short inside the data
    bind_ports({"zvt": 20007})
    pkt = IP(bytes(IP() / TCP(dport=20007) / b"\x06\x01"))
    assert [m.stage for m in messages(pkt)] == []          # two bytes: scapy leaves them Raw
    assert ISO8583(iso_message("0210", "000001")).stage == "0210"
    assert ISO8583(mti=b"0430", data=b"x").stage == "0430"                 # built, not dissected

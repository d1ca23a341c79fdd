"""The protocol layers, the fault specs and the stream tracker, without any network."""

from __future__ import annotations

import struct

import pytest
from scapy.layers.inet import IP, TCP

from harness.link.faults import FaultError, FaultSpec
from harness.link.layers import ISO8583, ZVT, FramingError, bind_ports, is_stage, messages
from harness.link.pcapng import PcapNgWriter
from harness.link.tracker import Tracker, parse
from tests.support.link_peers import AUTHORIZE, STATUS_INFO, iso_message, zvt_apdu


def test_iso8583_layer_builds_and_dissects():
    frame = iso_message("0200", "000123")
    msg = ISO8583(frame)
    assert msg.mti == b"0200" and msg.length == len(frame) - 2 and msg.stan() == "000123"
    built = bytes(ISO8583(mti=b"0800", data=msg.data))
    assert built == b"\x00" + bytes([len(frame) - 2]) + b"0800" + msg.data
    assert ISO8583.frame(frame[:6]) == (len(frame), "0200")
    assert ISO8583.frame(frame[:5]) is None                      # MTI incomplete: wait for more
    with pytest.raises(FramingError, match="MTI expected"):
        ISO8583.frame(b"\x00\x10GET /")


def test_zvt_layer_lengths():
    assert ZVT.frame(AUTHORIZE[:3]) == (len(AUTHORIZE), "zvt:06 01")
    big = zvt_apdu(0x06, 0xD3, b"x" * 300)
    assert big[2] == 0xFF and ZVT.frame(big[:5]) == (305, "zvt:06 D3")
    assert ZVT.frame(big[:4]) is None
    assert bytes(ZVT(apdu_class=0x06, instr=0xD3, data=b"x" * 300)) == big
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


def test_stage_names():
    assert is_stage("0210") and is_stage("zvt:04 0F") and is_stage("connect")
    assert not is_stage("210") and not is_stage("zvt:4 0F") and not is_stage("zvt:04 0f")


def test_fault_spec_parse_and_errors():
    s = FaultSpec.parse("hold 0210 host->terminal nth=2 ms=1500")
    assert (s.action, s.stage, s.direction, s.occurrence, s.params) == ("hold", "0210", "host->terminal", 2,
                                                                         {"ms": 1500.0})
    assert FaultSpec.parse("rst zvt:04 0F terminal->till every to=both").stage == "zvt:04 0F"
    assert FaultSpec.parse("drop zvt:06_01").stage == "zvt:06 01"
    assert FaultSpec.parse("flap count=3 down_ms=200 every_ms=1000").stage is None
    for bad, why in [("explode 0210", "unknown fault"), ("drop", "needs a stage"), ("hold 0210", "needs ms"),
                     ("drop 210", "not an ISO 8583 MTI"), ("drop 0210 nth=0", "occurrence"),
                     ("drop 0210 ms=3", "has no parameter 'ms'"), ("hold 0210 ms=abc", "expected a float")]:
        with pytest.raises(FaultError, match=why):
            FaultSpec.parse(bad)
    assert FaultSpec.from_json(s.to_json()) == s


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


def test_pcapng_writer_comments(tmp_path):
    from scapy.utils import rdpcap

    path = tmp_path / "x.pcapng"
    with open(path, "wb") as fh:
        w = PcapNgWriter(fh)
        w.packet(seg("10.0.0.1", 1, "10.0.0.2", 2, 7), 1.5)
        w.packet(seg("10.0.0.2", 2, "10.0.0.1", 1, 9, b"abc"), 1.75, "posrig: marked")
    pkts = rdpcap(str(path))
    assert [p[TCP].seq for p in pkts] == [7, 9]
    assert pkts[0].comments in (None, []) and pkts[1].comments == [b"posrig: marked"]
    assert float(pkts[1].time) == pytest.approx(1.75)
    assert struct.unpack("<I", path.read_bytes()[:4])[0] == 0x0A0D0D0A


PAN = "4111111111111111"


@pytest.mark.parametrize("spec", ["ascii", "binary"])
def test_card_number_span_in_iso8583(spec):
    from harness.protocols import iso8583 as iso

    with_pan = iso.encode_frame({"t": "0200", "2": PAN, "3": "000000", "11": "000001"}, spec=spec)
    a, b = ISO8583.secret_span(with_pan[:ISO8583.secret_head])
    assert with_pan[a - 6:b + 4] == PAN.encode() and b - a == 6
    second = iso.encode_frame({"t": "0200", "2": PAN, "11": "000001", "70": "301"}, spec=spec)
    a, b = ISO8583.secret_span(second[:ISO8583.secret_head])    # secondary bitmap present
    assert second[a - 6:b + 4] == PAN.encode()
    assert ISO8583.secret_span(iso_message("0200", "000001")[:40]) is None
    assert ISO8583.secret_span(with_pan[:10]) is ...


def test_tracker_masks_a_card_number_split_across_segments():
    from harness.protocols import iso8583 as iso

    t = Tracker(("terminal", "host"), {5000: ISO8583})
    up = ("10.0.0.1", 40000, "10.0.0.2", 5000)
    track(t, seg(*up, 0, flags="S"))
    frame = iso.encode_frame({"t": "0200", "2": PAN, "11": "000001"})
    cut = frame.index(PAN.encode()) + 8                                 # the PAN itself split in two
    conn, _, _ = track(t, seg(*up, 1, frame[:cut]))
    track(t, seg(*up, 1 + cut, frame[cut:]))
    first, second = conn.up.mask(0, frame[:cut]), conn.up.mask(cut, frame[cut:])
    assert first.endswith(b"41111111"[:6] + b"**") and second is not None
    shown = first + second
    assert PAN.encode() not in shown and b"411111******1111" in shown


def test_fault_spec_stan():
    s = FaultSpec.parse("drop 0210 host->terminal stan=000123")
    assert s.stan == "000123" and "STAN 000123" in s.describe()
    with pytest.raises(FaultError, match="for an ISO 8583 stage"):
        FaultSpec.parse("drop zvt:04_0F stan=000123")

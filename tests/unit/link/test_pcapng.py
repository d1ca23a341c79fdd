"""The capture writer: pcapng that scapy (and so Wireshark) reads, with packet comments."""

from __future__ import annotations

import struct

import pytest
from scapy.layers.inet import IP, TCP
from scapy.utils import rdpcap

from harness.link.pcapng import PcapNgWriter


def seg(src, sport, dst, dport, seq, payload=b""):
    return bytes(IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, seq=seq, flags="PA") / payload)


def test_pcapng_writer_comments(tmp_path):
    path = tmp_path / "x.pcapng"
    with open(path, "wb") as fh:
        w = PcapNgWriter(fh)
        assert w.packet(seg("10.0.0.1", 1, "10.0.0.2", 2, 7), 1.5) == 1
        assert w.packet(seg("10.0.0.2", 2, "10.0.0.1", 1, 9, b"abc"), 1.75, "posrig: marked") == 2
    pkts = rdpcap(str(path))
    assert [p[TCP].seq for p in pkts] == [7, 9]
    assert pkts[0].comments in (None, []) and pkts[1].comments == [b"posrig: marked"]
    assert float(pkts[1].time) == pytest.approx(1.75)
    assert struct.unpack("<I", path.read_bytes()[:4])[0] == 0x0A0D0D0A

"""Forged packets: checksums as the kernel (and scapy, an independent implementation) computes them."""

from __future__ import annotations

from scapy.layers.inet import IP, TCP

from harness.link.engine.forge import build_tcp, checksum, refresh_tcp_checksum, tcp_checksum
from harness.link.tracker import ACK, RST, parse


def scapy_checksums(raw: bytes) -> tuple[int, int]:
    """(IP, TCP) checksums scapy computes for the same packet."""
    pkt = IP(raw)
    del pkt.chksum
    del pkt[TCP].chksum
    again = IP(bytes(pkt))
    return again.chksum, again[TCP].chksum


def test_forged_reset_has_the_checksums_scapy_computes():
    raw = build_tcp("10.0.0.1", 40000, "10.0.0.2", 5000, seq=2**32 + 5, ack=7, flags=RST | ACK)
    pkt = IP(raw)
    assert (pkt.chksum, pkt[TCP].chksum) == scapy_checksums(raw)
    assert pkt[TCP].seq == 5 and pkt[TCP].flags == "RA" and pkt.src == "10.0.0.1" and pkt[TCP].dport == 5000


def test_probe_with_payload_and_window():
    raw = build_tcp("192.168.1.9", 1, "192.168.1.10", 2, 1, 2, ACK, payload=b"odd", window=502)
    pkt = IP(raw)
    assert bytes(pkt[TCP].payload) == b"odd" and pkt[TCP].window == 502
    assert (pkt.chksum, pkt[TCP].chksum) == scapy_checksums(raw)


def test_checksum_of_a_valid_header_is_zero():
    raw = build_tcp("10.0.0.1", 1, "10.0.0.2", 2, 0, 0, ACK)
    assert checksum(raw[:20]) == 0
    assert tcp_checksum("10.0.0.1", "10.0.0.2", raw[20:]) == 0


def test_refresh_after_a_changed_byte():
    raw = bytearray(build_tcp("10.0.0.1", 1, "10.0.0.2", 2, 0, 0, ACK, payload=b"0200abcdef"))
    raw[-1] ^= 0xFF
    fixed = refresh_tcp_checksum(bytes(raw), parse(bytes(raw)))
    assert IP(fixed)[TCP].chksum == scapy_checksums(fixed)[1]
    assert fixed[:36] == bytes(raw[:36]) and fixed[38:] == bytes(raw[38:])     # only the TCP checksum moved

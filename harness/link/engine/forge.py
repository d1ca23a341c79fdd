"""Forged packets: IPv4+TCP built with correct checksums (resets, liveness probes), and the Injector that sends
them where the link's traffic is (a raw IP socket on a routed link, Ethernet frames on a bridge).

>>> pkt = build_tcp("10.0.0.1", 40000, "10.0.0.2", 5000, seq=1, ack=2, flags=0x14)     # RST+ACK
>>> len(pkt), checksum(pkt[:20])                  # 20 bytes IPv4 + 20 bytes TCP; a valid header sums to 0
(40, 0)
"""

from __future__ import annotations

import os
import socket
import struct
from typing import Any

from harness.link.netfilter import INJECTED_MARK
from harness.link.tracker import Segment


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of `data`."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def tcp_checksum(src: str, dst: str, tcp: bytes) -> int:
    """The TCP checksum of segment `tcp` (checksum field zeroed) between IPv4 addresses `src` and `dst`."""
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    return checksum(pseudo + tcp)


def build_tcp(src: str, sport: int, dst: str, dport: int, seq: int, ack: int, flags: int,
              payload: bytes = b"", window: int = 0) -> bytes:
    """A complete IPv4+TCP packet with correct checksums (forged resets and probes)."""
    tcp = struct.pack("!HHIIHHHH", sport, dport, seq % (1 << 32), ack % (1 << 32), (5 << 12) | flags, window,
                      0, 0) + payload
    tcp = tcp[:16] + struct.pack("!H", tcp_checksum(src, dst, tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), os.getpid() & 0xFFFF, 0x4000, 64, 6, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return ip + tcp


def refresh_tcp_checksum(raw: bytes, seg: Segment) -> bytes:
    """`raw` (the packet `seg` was parsed from, payload changed) with its TCP checksum made right again."""
    tcp = bytearray(raw[seg.ihl:])
    tcp[16:18] = b"\0\0"
    tcp[16:18] = struct.pack("!H", tcp_checksum(seg.src, seg.dst, bytes(tcp)))
    return raw[:seg.ihl] + bytes(tcp)


class Injector:
    """Sends forged packets. Routed links use a raw IP socket; bridged links (no IP) send Ethernet frames out
    of the bridge port the destination was last seen on, with the MAC addresses learned from the traffic."""

    def __init__(self, bridged: bool):
        self.bridged = bridged
        self.seen: dict[str, tuple[bytes, int]] = {}      # ip -> (mac, bridge port ifindex)
        self._raw: socket.socket | None = None
        self._ports: dict[int, socket.socket] = {}
        if not bridged:
            self._raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
            # Marked, so rules on a chain our own packets pass (OUTPUT: a terminating link's hop) can skip them:
            # a forged packet queued back to the engine would be taken for the traffic it forges.
            self._raw.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, INJECTED_MARK)

    def learn(self, ip: str, pkt: Any) -> None:
        """Remember where `ip` sits on the bridge, from a queued packet it sent."""
        if self.bridged and ip not in self.seen:
            hw = pkt.get_hw()
            if hw and pkt.physindev:
                self.seen[ip] = (bytes(hw[:6]), pkt.physindev)

    def send(self, packet: bytes, src: str, dst: str) -> None:
        if self._raw is not None:
            self._raw.sendto(packet, (dst, 0))
            return
        if dst not in self.seen or src not in self.seen:
            raise RuntimeError(f"cannot inject {src} -> {dst} on the bridge: no frame from both seen yet")
        dst_mac, port = self.seen[dst]
        src_mac = self.seen[src][0]
        sock = self._ports.get(port)
        if sock is None:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            sock.bind((socket.if_indextoname(port), 0))
            self._ports[port] = sock
        sock.send(dst_mac + src_mac + b"\x08\x00" + packet)

    def close(self) -> None:
        for s in [self._raw, *self._ports.values()]:
            if s is not None:
                s.close()

"""A small pcapng writer for the link's capture: raw IPv4 packets (a routed link) or Ethernet frames (a bench
bridge), microsecond timestamps, packet comments.

Fault markers are pcapng packet comments (`opt_comment`), shown by Wireshark (`pkt_comment` column / filter
`frame.comment contains "posrig"`) and by scapy (`rdpcap(path)[i].comments`). Written by hand because the
engine writes every packet on its hot path and scapy's writer costs far more per packet.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

LINKTYPE_IPV4 = 228
LINKTYPE_ETHERNET = 1
_SHB, _IDB, _EPB = 0x0A0D0D0A, 0x00000001, 0x00000006


def _pad(n: int) -> int:
    return (4 - n % 4) % 4


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * _pad(len(value))


class PcapNgWriter:
    """Append packets to an open binary file. `packet(...)` returns the packet's number (1-based)."""

    def __init__(self, fh: BinaryIO, interface: str = "link", application: str = "posrig link engine",
                 linktype: int = LINKTYPE_IPV4):
        self.fh = fh
        self.linktype = linktype
        self.count = 0
        shb_opts = _option(4, application.encode()) + _option(0, b"")
        body = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + shb_opts
        self._block(_SHB, body)
        idb_opts = _option(2, interface.encode()) + _option(9, b"\x06") + _option(0, b"")
        self._block(_IDB, struct.pack("<HHI", linktype, 0, 0) + idb_opts)

    def _block(self, kind: int, body: bytes) -> None:
        n = 12 + len(body)
        self.fh.write(struct.pack("<II", kind, n) + body + struct.pack("<I", n))

    def packet(self, data: bytes, t: float, comment: str | None = None) -> int:
        usec = int(t * 1_000_000)
        head = struct.pack("<IIIII", 0, usec >> 32, usec & 0xFFFFFFFF, len(data), len(data))
        opts = _option(1, comment.encode()) + _option(0, b"") if comment else b""
        self._block(_EPB, head + data + b"\0" * _pad(len(data)) + opts)
        self.count += 1
        return self.count

    def flush(self) -> None:
        self.fh.flush()

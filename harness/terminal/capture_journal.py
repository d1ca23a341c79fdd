"""A physical terminal's record, decoded from the till-terminal capture: posrig needs no ECR session of its own.

Every ZVT message between the till and the terminal crosses posrig's bench link and is in its pcapng. This
module reads that capture (raw IPv4 or Ethernet frames), reassembles each TCP stream (retransmissions counted
once, a dropped-by-fault packet still counted: the terminal did send it), decodes the ZVT APDUs and rebuilds the
terminal's payments: 06 01 opens one (amount), 04 0F says how it ended (result, amount, trace, receipt number,
approval code in BMP 3B), 06 0F completes it, 06 1E aborts it (after an approval: the terminal reversed it).

>>> j = CaptureJournal("evidence/t/link-till-terminal.pcapng", zvt_port=20007)      # doctest: +SKIP
>>> [(t["trace"], t["amount"], t["state"]) for t in j.transactions(kind="sale")]   # doctest: +SKIP
[('000001', 488, 'approved')]

`ExportJournal` reads the terminal's own journal export where the rig names one (`options.journal_export`): a
JSON list of {trace, amount, state|result, auth_code, receipt_no, offline}, or a posrig terminal's SQLite journal.
"""

from __future__ import annotations

import json
import sqlite3
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.protocols import zvt

LINKTYPE_ETHERNET, LINKTYPE_IPV4, LINKTYPE_RAW = 1, 228, 101
_SHB, _IDB, _EPB = 0x0A0D0D0A, 0x00000001, 0x00000006
PAYMENT = "authorization"


def pcapng_packets(data: bytes) -> Iterator[tuple[float, int, bytes]]:
    """(time, linktype, frame) for every Enhanced Packet Block; a truncated last block (a capture still being
    written) is ignored."""
    pos, linktypes, endian = 0, [], "<"
    while pos + 12 <= len(data):
        kind, length = struct.unpack_from(endian + "II", data, pos)
        if kind == _SHB:
            endian = "<" if data[pos + 8:pos + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            length = struct.unpack_from(endian + "I", data, pos + 4)[0]
            linktypes = []
        if length < 12 or pos + length > len(data):
            return
        body = data[pos + 8:pos + length - 4]
        if kind == _IDB:
            linktypes.append(struct.unpack_from(endian + "H", body, 0)[0])
        elif kind == _EPB and len(body) >= 20:
            iface, hi, lo, caplen, _ = struct.unpack_from(endian + "IIIII", body, 0)
            linktype = linktypes[iface] if iface < len(linktypes) else LINKTYPE_IPV4
            yield ((hi << 32 | lo) / 1_000_000, linktype, body[20:20 + caplen])
        pos += length


def ip_packet(linktype: int, frame: bytes) -> bytes | None:
    """The IPv4 packet in a captured frame (Ethernet with or without a VLAN tag, or raw IP), else None."""
    if linktype == LINKTYPE_ETHERNET:
        ethertype, off = struct.unpack_from("!H", frame, 12)[0] if len(frame) >= 14 else 0, 14
        if ethertype == 0x8100 and len(frame) >= 18:
            ethertype, off = struct.unpack_from("!H", frame, 16)[0], 18
        return frame[off:] if ethertype == 0x0800 else None
    return frame if frame[:1] and frame[0] >> 4 == 4 else None


def tcp_segment(ip: bytes) -> tuple[tuple[str, int, str, int], int, int, bytes] | None:
    """((src, sport, dst, dport), seq, tcp flags, payload) of an IPv4 TCP packet, else None."""
    if len(ip) < 20 or ip[9] != 6:
        return None
    ihl = (ip[0] & 0x0F) * 4
    total = struct.unpack_from("!H", ip, 2)[0] or len(ip)
    tcp = ip[ihl:total]
    if len(tcp) < 20:
        return None
    sport, dport, seq = struct.unpack_from("!HHI", tcp, 0)
    off = (tcp[12] >> 4) * 4
    src, dst = ".".join(map(str, ip[12:16])), ".".join(map(str, ip[16:20]))
    return (src, sport, dst, dport), seq, tcp[13], tcp[off:]


class _Stream:
    """One direction of one TCP connection: bytes in sequence order, each byte once."""

    def __init__(self) -> None:
        self.next: int | None = None
        self.pending: dict[int, tuple[float, bytes]] = {}
        self.reader = zvt.ApduReader()

    def feed(self, t: float, seq: int, flags: int, payload: bytes) -> list[tuple[float, zvt.Apdu]]:
        if flags & 0x02:                                  # SYN: the data starts after it
            self.next, self.pending, self.reader = (seq + 1) & 0xFFFFFFFF, {}, zvt.ApduReader()
            return []
        if not payload:
            return []
        if self.next is None:                             # capture began mid-connection
            self.next = seq
        self.pending.setdefault(seq, (t, payload))
        out = []
        while True:
            hit = next(((s, v) for s, v in self.pending.items() if _le(s, self.next) and
                        _lt(self.next, (s + len(v[1])) & 0xFFFFFFFF)), None)
            for s in [s for s, v in self.pending.items() if not _lt(self.next, (s + len(v[1])) & 0xFFFFFFFF)]:
                del self.pending[s]                       # wholly old: a retransmission
            if hit is None:
                return out
            s, (ts, data) = hit
            del self.pending[s]
            fresh = data[(self.next - s) & 0xFFFFFFFF:]
            self.next = (self.next + len(fresh)) & 0xFFFFFFFF
            try:
                out += [(ts, a) for a in self.reader.feed(fresh)]
            except zvt.ZvtError:
                self.reader = zvt.ApduReader()            # garbage (a corrupt fault): resynchronise


def _lt(a: int, b: int) -> bool:
    return 0 < (b - a) & 0xFFFFFFFF < 0x80000000


def _le(a: int, b: int) -> bool:
    return a == b or _lt(a, b)


def zvt_messages(capture: bytes, zvt_port: int) -> list[dict[str, Any]]:
    """Every ZVT message in a capture, in time order: {t, conn, direction ('till->terminal' or
    'terminal->till'), name, fields}."""
    streams: dict[tuple[str, int, str, int], _Stream] = {}
    out: list[dict[str, Any]] = []
    for t, linktype, frame in pcapng_packets(capture):
        ip = ip_packet(linktype, frame)
        seg = tcp_segment(ip) if ip is not None else None
        if seg is None:
            continue
        key, seq, flags, payload = seg
        if zvt_port not in (key[1], key[3]):
            continue
        direction = "terminal->till" if key[1] == zvt_port else "till->terminal"
        conn = key if direction == "till->terminal" else (key[2], key[3], key[0], key[1])
        for ts, apdu in streams.setdefault(key, _Stream()).feed(t, seq, flags, payload):
            try:
                msg = zvt.decode_apdu(apdu)
            except zvt.ZvtError:
                continue
            out.append({"t": ts, "conn": f"{conn[0]}:{conn[1]}", "direction": direction, "name": msg.name,
                        "fields": msg.fields})
    return sorted(out, key=lambda m: m["t"])


def payments_from(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The terminal's payments, rebuilt from its ZVT conversation (see the module docstring)."""
    sales: list[dict[str, Any]] = []
    running: dict[str, dict[str, Any] | None] = {}        # per connection: the payment in progress, if any
    for m in messages:
        conn, name, f = m["conn"], m["name"], m["fields"]
        if m["direction"] == "till->terminal":
            if name == PAYMENT:
                sale = {"kind": "sale", "amount": int(f.get("amount") or 0), "state": "started", "t": m["t"],
                        "updated": m["t"], "trace": "", "receipt_no": None, "auth_code": "", "result_code": None,
                        "offline": False, "source": "capture"}
                sales.append(sale)
                running[conn] = sale
            elif name not in ("ack", "nack", "ecr_abort"):
                running[conn] = None                    # another command (05 01, 06 20, ...): not this payment
            continue
        sale = running.get(conn)
        if sale is None:
            continue
        sale["updated"] = m["t"]
        if name == "status_information":
            code = f.get("result_code", zvt.RESULT_SUCCESS)
            sale["result_code"] = code
            sale["state"] = "approved" if code == zvt.RESULT_SUCCESS else "declined"
            for key in ("trace", "receipt_no"):
                if f.get(key) is not None:
                    sale[key] = str(f[key]).zfill(6) if key == "trace" else f[key]
            if f.get("amount") is not None:
                sale["amount"] = int(f["amount"])
            sale["auth_code"] = str(f.get("aid") or "").strip()
        elif name == "completion":
            sale["completed"] = True
            running[conn] = None
        elif name == "abort":
            sale["result_code"] = f.get("result_code")
            sale["state"] = "reversed" if sale["state"] == "approved" else (
                "declined" if sale["state"] == "declined" else "aborted")
            running[conn] = None
    return sales


class CaptureJournal:
    """The terminal's journal as read from the till-terminal capture, re-read on every question (the capture
    grows while the link runs). Offers what the oracle and the matrix ask of a journal: `transactions(kind)`,
    `last(kind)` and len()."""

    def __init__(self, pcap: str | Path, zvt_port: int = zvt.DEFAULT_PORT):
        self.pcap = Path(pcap)
        self.zvt_port = zvt_port

    def messages(self) -> list[dict[str, Any]]:
        try:
            data = self.pcap.read_bytes()
        except OSError:
            return []
        return zvt_messages(data, self.zvt_port)

    def transactions(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [t for t in payments_from(self.messages()) if kind in (None, t["kind"])]

    def last(self, kind: str | None = None) -> dict[str, Any] | None:
        rows = self.transactions(kind)
        return rows[-1] if rows else None

    def __len__(self) -> int:
        return len(self.transactions())


class ExportJournal:
    """The terminal's own journal export (`options.journal_export`): JSON rows, or a posrig terminal's SQLite."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def transactions(self, kind: str | None = None) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        if self.path.suffix in (".sqlite", ".db", ".sqlite3"):
            with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True) as db:
                db.row_factory = sqlite3.Row
                rows = [dict(r) for r in db.execute("SELECT * FROM transactions ORDER BY id")]
        else:
            rows = json.loads(self.path.read_text(encoding="utf-8"))
            if isinstance(rows, dict):
                rows = rows.get("transactions", [])
        out = []
        for r in rows:
            row = {**r, "kind": r.get("kind", "sale"), "state": r.get("state") or r.get("result") or "",
                   "trace": str(r.get("trace") or ""), "amount": int(r.get("amount") or 0), "source": "export"}
            if kind in (None, row["kind"]):
                out.append(row)
        return out

    def last(self, kind: str | None = None) -> dict[str, Any] | None:
        rows = self.transactions(kind)
        return rows[-1] if rows else None

    def __len__(self) -> int:
        return len(self.transactions())

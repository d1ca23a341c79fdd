"""The terminal's record decoded from the till-terminal capture: a physical terminal needs no ECR session."""

from __future__ import annotations

import io
import json
import struct

from harness.link.pcapng import PcapNgWriter
from harness.protocols import zvt
from harness.terminal.capture_journal import LINKTYPE_ETHERNET, CaptureJournal, ExportJournal, zvt_messages

TILL, TERMINAL = ("10.18.1.2", 40000), ("10.18.1.3", 20007)


def packet(src, dst, seq: int, payload: bytes = b"", flags: int = 0x18) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", src[1], dst[1], seq, 0, 5 << 4, flags, 65535, 0, 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0,
                     bytes(map(int, src[0].split("."))), bytes(map(int, dst[0].split("."))))
    return ip + tcp


class Conversation:
    """A till-terminal TCP conversation written into a pcapng, as the link engine writes it."""

    def __init__(self, ethernet: bool = False):
        self.buf = io.BytesIO()
        self.pcap = PcapNgWriter(self.buf)
        self.ethernet = ethernet
        self.seq = {"till": 1000, "terminal": 5000}
        self.t = 1_700_000_000.0
        if ethernet:                                  # rewrite the interface block's link type to Ethernet
            raw = bytearray(self.buf.getvalue())
            pos = struct.unpack_from("<I", raw, 4)[0]
            struct.pack_into("<H", raw, pos + 8, LINKTYPE_ETHERNET)
            self.buf = io.BytesIO()
            self.buf.write(bytes(raw))
            self.pcap.fh = self.buf
        self.frame("till", b"", flags=0x02)
        self.frame("terminal", b"", flags=0x12)

    def frame(self, side: str, payload: bytes, flags: int = 0x18, again: bool = False) -> None:
        src, dst = (TILL, TERMINAL) if side == "till" else (TERMINAL, TILL)
        seq = self.seq[side] - (len(payload) if again else 0)
        ip = packet(src, dst, seq, payload, flags)
        if self.ethernet:
            ip = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip
        self.t += 0.01
        self.pcap.packet(ip, self.t)
        if not again:
            self.seq[side] += len(payload) + (1 if flags & 0x02 else 0)

    def bytes(self) -> bytes:
        return self.buf.getvalue()


def approved_sale(conv: Conversation, amount: int = 488) -> None:
    conv.frame("till", zvt.encode("authorization", amount=amount, currency=978))
    conv.frame("terminal", zvt.encode("ack"))
    status = zvt.encode("status_information", result_code=0, amount=amount, trace=17, receipt_no=9, aid="A1B2C3")
    conv.frame("terminal", status)
    conv.frame("terminal", status, again=True)                 # a retransmission: counted once
    conv.frame("till", zvt.encode("ack"))
    conv.frame("terminal", zvt.encode("completion"))


def test_approved_sale_with_trace_receipt_and_approval_code(tmp_path):
    conv = Conversation()
    approved_sale(conv)
    path = tmp_path / "link-till-terminal.pcapng"
    path.write_bytes(conv.bytes())
    journal = CaptureJournal(path, 20007)
    [sale] = journal.transactions(kind="sale")
    assert (sale["amount"], sale["state"], sale["trace"], sale["receipt_no"], sale["auth_code"]) == \
        (488, "approved", "000017", 9, "A1B2C3")
    assert sale["completed"] and len(journal) == 1 and journal.last("sale") is not None


def test_declined_aborted_and_reversed(tmp_path):
    conv = Conversation(ethernet=True)
    conv.frame("till", zvt.encode("authorization", amount=100, currency=978))
    conv.frame("terminal", zvt.encode("status_information", result_code=zvt.RESULT_DO_NOT_HONOUR, amount=100))
    conv.frame("terminal", zvt.encode("abort", result_code=zvt.RESULT_DO_NOT_HONOUR))
    conv.frame("till", zvt.encode("authorization", amount=200, currency=978))
    conv.frame("terminal", zvt.encode("abort", result_code=zvt.RESULT_ABORTED))
    conv.frame("till", zvt.encode("authorization", amount=300, currency=978))
    conv.frame("terminal", zvt.encode("status_information", result_code=0, amount=300, trace=3))
    conv.frame("terminal", zvt.encode("abort", result_code=zvt.RESULT_ABORTED))
    conv.frame("till", zvt.encode("authorization", amount=400, currency=978))     # still running
    path = tmp_path / "c.pcapng"
    path.write_bytes(conv.bytes())
    states = [(t["amount"], t["state"]) for t in CaptureJournal(path).transactions("sale")]
    assert states == [(100, "declined"), (200, "aborted"), (300, "reversed"), (400, "started")]


def test_repeat_receipt_status_is_not_a_new_payment_and_a_cut_capture_is_read(tmp_path):
    conv = Conversation()
    approved_sale(conv)
    conv.frame("till", zvt.encode("repeat_receipt", password=0))
    conv.frame("terminal", zvt.encode("status_information", result_code=0, amount=488, trace=17))
    data = conv.bytes()
    msgs = zvt_messages(data, 20007)
    assert [m["name"] for m in msgs][:2] == ["authorization", "ack"]
    path = tmp_path / "c.pcapng"
    path.write_bytes(data[:-7])                              # the engine is still writing its last block
    assert len(CaptureJournal(path).transactions("sale")) == 1


def test_missing_capture_is_an_empty_journal(tmp_path):
    assert CaptureJournal(tmp_path / "none.pcapng").transactions() == []


def test_export_json(tmp_path):
    path = tmp_path / "export.json"
    path.write_text(json.dumps([{"trace": "000005", "amount": 488, "result": "approved", "auth_code": "X"}]))
    [row] = ExportJournal(path).transactions("sale")
    assert (row["trace"], row["state"], row["source"]) == ("000005", "approved", "export")

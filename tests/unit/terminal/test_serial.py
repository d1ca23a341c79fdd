"""ZVT over RS-232 on a pty: the till side opens the port with pyserial and frames by hand
(DLE STX ... DLE ETX CRC), independent of the terminal's codec.
"""

from __future__ import annotations

import time

import pytest
import serial

from harness.protocols import zvt

DLE, STX, ETX, ACK, NAK = 0x10, 0x02, 0x03, 0x06, 0x15
_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x8408 if _c & 1 else _c >> 1
    _TABLE.append(_c)


def crc(data: bytes) -> int:
    value = 0
    for b in data:
        value = _TABLE[(value ^ b) & 0xFF] ^ (value >> 8)
    return value


def frame(apdu: bytes) -> bytes:
    c = crc(apdu + bytes([ETX]))
    body = apdu.replace(b"\x10", b"\x10\x10")
    return bytes([DLE, STX]) + body + bytes([DLE, ETX, c & 0xFF, c >> 8])


class SerialEcr:
    def __init__(self, path: str):
        self.port = serial.Serial(path, 9600, timeout=2)
        self.buf = b""

    def read_byte(self) -> int:
        b = self.port.read(1)
        assert b, "serial read timed out"
        return b[0]

    def expect_link_ack(self) -> None:
        assert self.read_byte() == ACK

    def read_frame(self, answer: int | None = ACK) -> bytes:
        assert self.read_byte() == DLE and self.read_byte() == STX
        data = bytearray()
        while True:
            b = self.read_byte()
            if b == DLE:
                nxt = self.read_byte()
                if nxt == ETX:
                    break
                assert nxt == DLE
            data.append(b)
        lo, hi = self.read_byte(), self.read_byte()
        c = crc(bytes(data) + bytes([ETX]))
        assert (lo, hi) == (c & 0xFF, c >> 8), "bad CRC from the terminal"
        if answer is not None:
            self.port.write(bytes([answer]))
        return bytes(data)

    def send(self, apdu: bytes) -> None:
        self.port.write(frame(apdu))
        self.expect_link_ack()


@pytest.fixture
def serial_terminal(make_terminal):
    return make_terminal(name="serial-pt", transport="serial")


def test_crc_check_value():
    assert zvt.crc16(b"123456789") == 0x2189 == crc(b"123456789")


def test_payment_over_serial_with_a_corrupted_frame_and_a_nak(serial_terminal, acquirer):
    assert serial_terminal.ecr_device.startswith("/dev/")
    ecr = SerialEcr(serial_terminal.ecr_device)
    try:
        bad = bytearray(frame(bytes.fromhex("06010a04000000001999490978")))
        bad[-1] ^= 0xFF  # corrupt the CRC
        ecr.port.write(bytes(bad))
        assert ecr.read_byte() == NAK  # refused at the link level, nothing else
        ecr.send(bytes.fromhex("06010a04000000001999490978"))  # the repeat, correct this time
        assert ecr.read_frame() == b"\x80\x00\x00"
        first = ecr.read_frame(answer=NAK)  # 04 FF: we NAK it, the terminal repeats
        assert ecr.read_frame() == first and first[:2] == b"\x04\xff"
        ecr.send(b"\x80\x00\x00")
        seen = []
        while True:
            apdu = ecr.read_frame()
            seen.append(apdu[:2])
            ecr.send(b"\x80\x00\x00")
            if apdu[:2] in (b"\x06\x0f", b"\x06\x1e"):
                break
        assert b"\x04\x0f" in seen and seen[-1] == b"\x06\x0f"
        assert [r["state"] for r in acquirer.ledger()] == ["approved"]
        assert serial_terminal.journal.last("sale")["state"] == "approved"
        ecr.port.write(b"\x42\x42")  # line noise between frames: ignored
        time.sleep(0.05)
        ecr.send(bytes.fromhex("0501 03 000000".replace(" ", "")))
        assert ecr.read_frame() == b"\x80\x00\x00"
        assert ecr.read_frame()[:2] == b"\x06\x0f"
        ecr.send(b"\x80\x00\x00")
    finally:
        ecr.port.close()

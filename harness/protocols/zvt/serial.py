"""The ZVT serial (RS-232) data link. Every APDU travels as DLE STX <APDU, each DLE doubled> DLE ETX <CRC low>
<CRC high>; the receiver answers ACK (06) when the CRC is right, NAK (15) otherwise, and the sender repeats up to
3 times.

>>> serial_frame(bytes.fromhex("80 00 00")).hex(" ")
'10 02 80 00 00 10 03 f5 1f'
>>> [(e.kind, e.apdu.hex(" "), e.crc_ok) for e in SerialDecoder().feed(bytes.fromhex("06 10 02 80 00 00 10 03 f5 1f"))]
[('ack', '', True), ('frame', '80 00 00', True)]
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.protocols.zvt.apdu import MAX_APDU_DATA

DLE, STX, ETX = 0x10, 0x02, 0x03
LINK_ACK, LINK_NAK = 0x06, 0x15
SERIAL_RETRIES = 3


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    """CRC-CCITT as ZVT uses it on RS-232 (reflected polynomial 0x8408, start 0), over the APDU plus ETX.

    >>> hex(crc16(b"123456789"))
    '0x2189'
    """
    crc = 0
    for byte in data:
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


def serial_frame(apdu: bytes) -> bytes:
    """DLE STX, the APDU with DLE doubled, DLE ETX, CRC low byte, CRC high byte."""
    crc = crc16(bytes(apdu) + bytes([ETX]))
    stuffed = bytes(apdu).replace(bytes([DLE]), bytes([DLE, DLE]))
    return bytes([DLE, STX]) + stuffed + bytes([DLE, ETX, crc & 0xFF, crc >> 8])


@dataclass(frozen=True)
class LinkEvent:
    """What the serial decoder found: 'ack', 'nak', 'frame' (apdu, crc_ok) or 'noise' (bytes skipped)."""

    kind: str
    apdu: bytes = b""
    crc_ok: bool = True


class SerialDecoder:
    """Incremental decoder of the serial data link. Bytes outside a frame other than ACK/NAK are noise."""

    def __init__(self, max_frame: int = MAX_APDU_DATA + 8):
        self.max_frame = max_frame
        self._state = "idle"
        self._frame = bytearray()
        self._crc = bytearray()

    def feed(self, chunk: bytes) -> list[LinkEvent]:
        events: list[LinkEvent] = []
        noise = bytearray()
        for byte in chunk:
            state = self._state
            if state == "idle":
                if byte == LINK_ACK:
                    events.append(LinkEvent("ack"))
                elif byte == LINK_NAK:
                    events.append(LinkEvent("nak"))
                elif byte == DLE:
                    self._state = "start"
                else:
                    noise.append(byte)
            elif state == "start":
                if byte == STX:
                    self._state, self._frame = "data", bytearray()
                else:
                    noise += bytes([DLE, byte])
                    self._state = "idle"
            elif state == "data":
                if byte == DLE:
                    self._state = "escape"
                else:
                    self._frame.append(byte)
            elif state == "escape":
                if byte == DLE:
                    self._frame.append(DLE)
                    self._state = "data"
                elif byte == ETX:
                    self._state, self._crc = "crc", bytearray()
                else:  # DLE followed by anything else: broken frame
                    noise += bytes([DLE, STX]) + self._frame + bytes([DLE, byte])
                    self._state = "idle"
            elif state == "crc":
                self._crc.append(byte)
                if len(self._crc) == 2:
                    apdu = bytes(self._frame)
                    expected = crc16(apdu + bytes([ETX]))
                    ok = self._crc[0] == expected & 0xFF and self._crc[1] == expected >> 8
                    events.append(LinkEvent("frame", apdu, ok))
                    self._state = "idle"
            if self._state == "data" and len(self._frame) > self.max_frame:
                noise += bytes([DLE, STX]) + self._frame
                self._state = "idle"
        if noise:
            events.append(LinkEvent("noise", bytes(noise)))
        return events

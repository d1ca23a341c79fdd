"""ZVT APDU framing: CLASS, INSTR, LENGTH, DATA. LENGTH is one byte, or FF and two more bytes (low byte first)
when the data is 255 bytes or longer.

>>> frame(0x06, 0x0F).hex(" "), frame(0x06, 0xD1, bytes(300))[:5].hex(" ")
('06 0f 00', '06 d1 ff 2c 01')
>>> [a.name for a in ApduReader().feed(bytes.fromhex("80 00 00 06 1e 01 6c 04"))]
['ack', 'abort']
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.protocols.zvt.codes import ZvtError
from harness.protocols.zvt.commands import KNOWN_CLASSES, command_name

MAX_APDU_DATA = 4096         # incoming APDUs announcing more are treated as garbage, not waited for
MAX_EXTENDED_DATA = 0xFFFF   # the most the extended length can announce
EXTENDED = 0xFF              # LENGTH byte announcing the two-byte length


@dataclass(frozen=True)
class Apdu:
    """One APDU as it travels: control field and data."""

    cls: int
    ins: int
    data: bytes = b""

    @property
    def name(self) -> str:
        return command_name(self.cls, self.ins)

    @property
    def control(self) -> tuple[int, int]:
        return (self.cls, self.ins)

    def to_bytes(self) -> bytes:
        return frame(self.cls, self.ins, self.data)

    @classmethod
    def from_bytes(cls, raw: bytes) -> Apdu:
        """Exactly one APDU; ZvtError naming what is wrong when `raw` is cut short or carries more.

        >>> Apdu.from_bytes(bytes.fromhex("06 1e 01 6c"))
        Apdu(cls=6, ins=30, data=b'l')
        """
        raw = bytes(raw)
        total = apdu_length(raw)
        if total is None:
            raise ZvtError(f"truncated APDU header: {raw.hex(' ')}")
        head = 3 if raw[2] != EXTENDED else 5
        if len(raw) != total:
            raise ZvtError(f"APDU {raw[:2].hex(' ')} declares {total - head} data bytes but carries "
                           f"{len(raw) - head}: {raw[:24].hex(' ')}")
        return cls(raw[0], raw[1], raw[head:])


def frame(cls: int, ins: int, data: bytes = b"") -> bytes:
    """CLASS INSTR LENGTH DATA, with the extended length FF LL HH when the data is 255 bytes or more."""
    n = len(data)
    if n > MAX_EXTENDED_DATA:
        raise ZvtError(f"APDU data of {n} bytes exceeds {MAX_EXTENDED_DATA}")
    head = bytes([cls, ins]) + (bytes([n]) if n < EXTENDED else bytes([EXTENDED]) + n.to_bytes(2, "little"))
    return head + bytes(data)


def apdu_length(head: bytes) -> int | None:
    """Total length (header and data) of the APDU whose first bytes are `head`; None while too few are known.

    >>> apdu_length(bytes.fromhex("06 01 0a")), apdu_length(bytes.fromhex("06 d3 ff 00 01")), apdu_length(b"\\x06")
    (13, 261, None)
    """
    if len(head) < 3:
        return None
    if head[2] != EXTENDED:
        return 3 + head[2]
    if len(head) < 5:
        return None
    return 5 + int.from_bytes(head[3:5], "little")


class ApduReader:
    """Incremental APDU splitter for a byte stream. Half APDUs wait; garbage raises ZvtError and is dropped.

    `classes`: the APDU classes accepted (None: any); `max_data`: the longest data waited for.
    """

    def __init__(self, max_data: int = MAX_APDU_DATA, classes: frozenset[int] | None = KNOWN_CLASSES):
        self.max_data = max_data
        self.classes = classes
        self._buf = bytearray()

    @property
    def pending(self) -> bytes:
        return bytes(self._buf)

    def feed(self, chunk: bytes) -> list[Apdu]:
        self._buf += chunk
        out: list[Apdu] = []
        while len(self._buf) >= 3:
            cls, ins, n = self._buf[0], self._buf[1], self._buf[2]
            head = 3
            if self.classes is not None and cls not in self.classes:
                bad = self._drop()
                raise ZvtError(f"unknown APDU class {cls:02X}; {len(bad)} bytes dropped: {bad[:16].hex(' ')}")
            if n == EXTENDED:
                if len(self._buf) < 5:
                    break
                n = int.from_bytes(self._buf[3:5], "little")
                head = 5
            if n > self.max_data:
                bad = self._drop()
                raise ZvtError(f"APDU {cls:02X} {ins:02X} announces {n} data bytes (max {self.max_data}); "
                               f"{len(bad)} bytes dropped")
            if len(self._buf) < head + n:
                break
            out.append(Apdu(cls, ins, bytes(self._buf[head : head + n])))
            del self._buf[: head + n]
        return out

    def _drop(self) -> bytes:
        bad = bytes(self._buf)
        self._buf.clear()
        return bad


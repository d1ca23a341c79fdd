"""Payment stages: the one grammar for naming a message on a link, shared by fault specs, the link engine,
the fault matrix, scenario ids and reports.

A stage is a protocol message type: an ISO 8583 MTI ("0210"), a ZVT APDU class and instruction ("zvt:04 0F"),
or the TCP SYN that opens a connection ("connect"); "any" matches every message. Each has one canonical name
(in fault specs, evidence and the engine) and one label (in scenario ids, where spaces and colons do not belong):

>>> s = parse("zvt:04_0f")
>>> s.name, s.label
('zvt:04 0F', '04-0F')
>>> parse("04-0F") == s, parse("0210").label, str(parse("connect"))
(True, '0210', 'connect')

Accepted spellings of a ZVT stage: "zvt:04 0F", "zvt:040F", "zvt:04_0F", "zvt: 04 0F", "04-0F" (any case).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ISO8583, ZVT, TCP = "iso8583", "zvt", "tcp"
CONNECT_NAME, ANY_NAME = "connect", "any"

_MTI = re.compile(r"^\d{4}$")
_ZVT = re.compile(r"^(?:zvt:\s*)?([0-9A-Fa-f]{2})[\s_-]?([0-9A-Fa-f]{2})$", re.I)


class StageError(ValueError):
    """Text that is not a stage; the message lists the accepted forms."""


@dataclass(frozen=True)
class Stage:
    """One message type on a link."""

    protocol: str            # iso8583 | zvt | tcp | any
    code: str                # "0210" | "04 0F" | "connect" | "any"

    @property
    def name(self) -> str:
        """Canonical spelling: '0210', 'zvt:04 0F', 'connect', 'any'."""
        return f"zvt:{self.code}" if self.protocol == ZVT else self.code

    @property
    def label(self) -> str:
        """Spelling inside scenario ids: '0210', '04-0F', 'connect'."""
        return self.code.replace(" ", "-")

    def __str__(self) -> str:
        return self.name


CONNECT = Stage(TCP, CONNECT_NAME)
ANY = Stage("any", ANY_NAME)


def iso8583_stage(mti: str | bytes) -> Stage:
    """The stage of an ISO 8583 message type indicator."""
    text = mti.decode("ascii", "replace") if isinstance(mti, bytes) else str(mti)
    if not _MTI.match(text):
        raise StageError(f"ISO 8583 MTI {text!r} is not four digits")
    return Stage(ISO8583, text)


def zvt_stage(apdu_class: int, instruction: int) -> Stage:
    """The stage of a ZVT APDU from its class and instruction bytes."""
    return Stage(ZVT, f"{apdu_class:02X} {instruction:02X}")


def parse(text: str | Stage) -> Stage:
    """A stage from any accepted spelling (see the module docstring); raises StageError."""
    if isinstance(text, Stage):
        return text
    raw = str(text).strip()
    if raw.lower() == CONNECT_NAME:
        return CONNECT
    if raw.lower() == ANY_NAME:
        return ANY
    if _MTI.match(raw):
        return Stage(ISO8583, raw)
    m = _ZVT.match(raw)
    if m and (raw.lower().startswith("zvt:") or "-" in raw or "_" in raw):
        return Stage(ZVT, f"{m.group(1).upper()} {m.group(2).upper()}")
    raise StageError(f"stage {raw!r} is not an ISO 8583 MTI ('0210'), a ZVT APDU ('zvt:06 01' or '06-01'), "
                     f"'connect' or 'any'")


def canonical(text: str | Stage) -> str:
    """The canonical name of any accepted spelling: canonical('zvt:06_01') == 'zvt:06 01'."""
    return parse(text).name


def is_stage(text: str) -> bool:
    """True for any accepted spelling of a stage."""
    try:
        parse(text)
    except StageError:
        return False
    return True

"""Payment stages: the one grammar for naming a message on a link, shared by fault specs, the link engine,
the fault matrix, scenario ids and reports.

A stage is a protocol message type: an ISO 8583 MTI ("0210"), a ZVT APDU class and instruction ("zvt:04 0F"),
the TCP SYN that opens a connection ("connect"), or on a TLS link whose keys posrig does not hold
(`harness.protocols.tls`) the end of the handshake ("handshake") and the Nth request or response of a
connection ("request#1", "response#2"); "any" matches every message. Each has one canonical name
(in fault specs, evidence and the engine) and one label (in scenario ids, where spaces and colons do not belong):

>>> s = parse("zvt:04_0f")
>>> s.name, s.label
('zvt:04 0F', '04-0F')
>>> parse("04-0F") == s, parse("0210").label, str(parse("connect"))
(True, '0210', 'connect')

Accepted spellings of a ZVT stage: "zvt:04 0F", "zvt:040F", "zvt:04_0F", "zvt: 04 0F", "04-0F" (any case);
of a TLS stage: "response#1", "response-1", "tls:response#1", "handshake":

>>> t = parse("tls:response-1")
>>> t.name, t.label, t.protocol, over_tls("0420")
('response#1', 'response-1', 'tls', 'request#2')
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ISO8583, ZVT, TCP, TLS = "iso8583", "zvt", "tcp", "tls"
CONNECT_NAME, ANY_NAME, HANDSHAKE_NAME = "connect", "any", "handshake"

_MTI = re.compile(r"^\d{4}$")
_ZVT = re.compile(r"^(?:zvt:\s*)?([0-9A-Fa-f]{2})[\s_-]?([0-9A-Fa-f]{2})$", re.I)
_TLS = re.compile(r"^(?:tls:\s*)?(request|response)[#-]([1-9]\d{0,5})$", re.I)


class StageError(ValueError):
    """Text that is not a stage; the message lists the accepted forms."""


@dataclass(frozen=True)
class Stage:
    """One message type on a link."""

    protocol: str            # iso8583 | zvt | tcp | tls | any
    code: str                # "0210" | "04 0F" | "connect" | "request#1" | "handshake" | "any"

    @property
    def name(self) -> str:
        """Canonical spelling: '0210', 'zvt:04 0F', 'connect', 'any'."""
        return f"zvt:{self.code}" if self.protocol == ZVT else self.code

    @property
    def label(self) -> str:
        """Spelling inside scenario ids: '0210', '04-0F', 'connect'."""
        return self.code.replace(" ", "-").replace("#", "-")

    def __str__(self) -> str:
        return self.name


CONNECT = Stage(TCP, CONNECT_NAME)
ANY = Stage("any", ANY_NAME)
HANDSHAKE = Stage(TLS, HANDSHAKE_NAME)


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
    if raw.lower() in (HANDSHAKE_NAME, "tls:" + HANDSHAKE_NAME):
        return HANDSHAKE
    m = _TLS.match(raw)
    if m:
        return Stage(TLS, f"{m.group(1).lower()}#{int(m.group(2))}")
    if _MTI.match(raw):
        return Stage(ISO8583, raw)
    m = _ZVT.match(raw)
    if m and (raw.lower().startswith("zvt:") or "-" in raw or "_" in raw):
        return Stage(ZVT, f"{m.group(1).upper()} {m.group(2).upper()}")
    raise StageError(f"stage {raw!r} is not an ISO 8583 MTI ('0210'), a ZVT APDU ('zvt:06 01' or '06-01'), "
                     f"a TLS stage ('request#1', 'response#1', 'handshake'), 'connect' or 'any'")


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


# -- ISO 8583 stages on a TLS link (passthrough: posrig sees records, not messages) ------------------------------
# The terminal's requests and the host's answers alternate on its connection, so the matrix's messages are the
# bursts in that order: 0200 the first request, 0210 its answer, 0420 (the reversal) the second request, 0430 its
# answer. A message that is not in this table has no TLS stage.
TLS_ORDER = {"0200": "request#1", "0210": "response#1", "0420": "request#2", "0430": "response#2",
             "0100": "request#1", "0110": "response#1", "0400": "request#2", "0410": "response#2"}


def over_tls(stage: str | Stage) -> str:
    """The stage name of `stage` on a TLS passthrough link: an ISO 8583 message by its place in the exchange
    (`TLS_ORDER`); 'connect', 'any' and TLS stages stay as they are. Raises StageError for other messages."""
    s = parse(stage)
    if s.protocol != ISO8583:
        return s.name
    try:
        return TLS_ORDER[s.code]
    except KeyError:
        raise StageError(f"ISO 8583 {s.code} has no place on a TLS link whose keys posrig does not hold; name "
                         f"the TLS stage instead ('request#N', 'response#N') or use mode: terminate") from None

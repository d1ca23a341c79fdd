"""Code tables for the ESC t pages Python has no codec for, and one safe way to decode printed text.

`decode_text(raw, codec)` never raises. It decodes with Python's codec when there is one, with a table shipped
here otherwise (cp851 Greek; cp1118 = IBM 774 Lithuanian; cp1119 = IBM 772 Lithuanian/Russian: the upper halves
as GNU libc's charmaps give them), and for the pages with no table at all (cp853 Turkish/Maltese, cp1098 Farsi)
with the documented fallback: bytes below 0x80 as ASCII, every byte from 0x80 up as U+FFFD. The exact bytes are
never lost: each text event keeps them (`raw`), and the journal writes them to the receipt's .bin; the receipt
says which fallback was used (`Receipt.codec_notes`).

The euro sign where printers put it and Python's codec leaves the byte undefined (`EURO_UPDATES`): PC857 (ESC t
13) 0xD5 and PC864 (ESC t 37) 0xA7, as in IBM's euro-updated tables (IBM Db2 11.5 "Code page 857, Generic
(SYSTEM_857)": X'D5' -> U+20AC; "Code page 864": X'A7' -> U+20AC); issue 15 found Epson's PC857 table has it at
0xD5 too. Bytes Python's codec does define are never reassigned (IBM's 852 puts the euro at 0xAA over the '¬'
Python decodes there: not applied without Epson's own table to confirm it).

>>> decode_text(b"\\xd5 12,50", "cp857"), decode_text(b"\\xa7", "cp864")
('€ 12,50', '€')
>>> decode_text(b"\\x80\\xe0", "cp1119"), decode_text(b"Hi \\x80", "cp1098")
('Ар', 'Hi \ufffd')
>>> fallback_note("cp1098")
'cp1098 has no code table here: bytes 0x80-0xFF shown as U+FFFD (the exact bytes are in the receipt .bin)'
"""

from __future__ import annotations

import codecs

# Upper halves (0x80-0xFF); U+FFFE marks a byte the page leaves undefined (decoded as U+FFFD).
UPPER_HALVES: dict[str, str] = {
    "cp851": (
        "\xc7\xfc\xe9\xe2\xe4\xe0\u0386\xe7\xea\xeb\xe8\xef\xee\u0388\xc4\u0389"
        "\u038a\ufffe\u038c\xf4\xf6\u038e\xfb\xf9\u038f\xd6\xdc\u03ac\xa3\u03ad\u03ae\u03af"
        "\u03ca\u0390\u03cc\u03cd\u0391\u0392\u0393\u0394\u0395\u0396\u0397\xbd\u0398\u0399\xab\xbb"
        "\u2591\u2592\u2593\u2502\u2524\u039a\u039b\u039d\u039c\u2563\u2551\u2557\u255d\u039e\u039f\u2510"
        "\u2514\u2534\u252c\u251c\u2500\u253c\u03a0\u03a1\u255a\u2554\u2569\u2566\u2560\u2550\u256c\u03a3"
        "\u03a4\u03a5\u03a6\u03a7\u03a8\u03a9\u03b1\u03b2\u03b3\u2518\u250c\u2588\u2584\u03b4\u03b5\u2580"
        "\u03b6\u03b7\u03b8\u03b9\u03ba\u03bb\u03bc\u03bd\u03be\u03bf\u03c0\u03c1\u03c3\u03c2\u03c4\xb4"
        "\xad\xb1\u03c5\u03c6\u03c7\xa7\u03c8\u02db\xb0\xa8\u03c9\u03cb\u03b0\u03ce\u25a0\xa0"
    ),
    "cp1118": (
        "\xc7\xfc\xe9\xe2\xe4\xe0\xe5\xe7\xea\xeb\xe8\xef\xee\xec\xc4\xc5"
        "\xc9\xe6\xc6\xf4\xf6\xf2\xfb\xf9\xff\xd6\xdc\xa2\xa3\xa5\u20a7\u0192"
        "\xe1\xed\xf3\xfa\xf1\xd1\xaa\xba\xbf\u2310\xac\xbd\xbc\xa1\xab\xbb"
        "\u2591\u2592\u2593\u2502\u2524\u0104\u010c\u0118\u0116\u2563\u2551\u2557\u255d\u012e\u0160\u2510"
        "\u2514\u2534\u252c\u251c\u2500\u253c\u0172\u016a\u255a\u2554\u2569\u2566\u2560\u2550\u256c\u017d"
        "\u0105\u010d\u0119\u0117\u012f\u0161\u0173\u016b\u017e\u2518\u250c\u2588\u2584\u258c\u2590\u2580"
        "\u03b1\xdf\u0393\u03c0\u03a3\u03c3\xb5\u03c4\u03a6\u0398\u03a9\u03b4\u221e\u03c6\u03b5\u2229"
        "\u2261\xb1\u2265\u2264\u201e\u201c\xf7\u2248\xb0\u2219\xb7\u221a\u207f\xb2\u25a0\xa0"
    ),
    "cp1119": (
        "\u0410\u0411\u0412\u0413\u0414\u0415\u0416\u0417\u0418\u0419\u041a\u041b\u041c\u041d\u041e\u041f"
        "\u0420\u0421\u0422\u0423\u0424\u0425\u0426\u0427\u0428\u0429\u042a\u042b\u042c\u042d\u042e\u042f"
        "\u0430\u0431\u0432\u0433\u0434\u0435\u0436\u0437\u0438\u0439\u043a\u043b\u043c\u043d\u043e\u043f"
        "\u2591\u2592\u2593\u2502\u2524\u0104\u010c\u0118\u0116\u2563\u2551\u2557\u255d\u012e\u0160\u2510"
        "\u2514\u2534\u252c\u251c\u2500\u253c\u0172\u016a\u255a\u2554\u2569\u2566\u2560\u2550\u256c\u017d"
        "\u0105\u010d\u0119\u0117\u012f\u0161\u0173\u016b\u017e\u2518\u250c\u2588\u2584\u258c\u2590\u2580"
        "\u0440\u0441\u0442\u0443\u0444\u0445\u0446\u0447\u0448\u0449\u044a\u044b\u044c\u044d\u044e\u044f"
        "\u0401\u0451\u2265\u2264\u201e\u201c\xf7\u2248\xb0\u2219\xb7\u221a\u207f\xb2\u25a0\xa0"
    ),
}
# Python codecs completed with the euro sign at the byte a printer vendor gives it (see the module docstring).
EURO_UPDATES: dict[str, int] = {"cp857": 0xD5, "cp864": 0xA7}
NO_TABLE = frozenset({"cp853", "cp1098"})      # ESC t pages decoded by the fallback
REPLACEMENT = "\ufffd"

_ASCII = "".join(map(chr, range(0x80)))
_TABLES = {name: _ASCII + upper for name, upper in UPPER_HALVES.items()}


def _with_euro(codec: str, byte: int) -> str:
    table = list(bytes(range(256)).decode(codec, errors="replace"))
    if table[byte] != REPLACEMENT:
        raise ValueError(f"{codec} already defines 0x{byte:02X} as {table[byte]!r}; the euro would replace it")
    table[byte] = "\u20ac"
    return "".join(table)


_TABLES.update({codec: _with_euro(codec, byte) for codec, byte in EURO_UPDATES.items()})
_FALLBACK = _ASCII + REPLACEMENT * 0x80
_known: dict[str, bool] = {}


def has_codec(codec: str) -> bool:
    """True when `codec` decodes with a real table (Python's or one shipped here)."""
    if codec in _TABLES:
        return True
    if codec not in _known:
        try:
            codecs.lookup(codec)
            _known[codec] = True
        except LookupError:
            _known[codec] = False
    return _known[codec]


def decode_text(raw: bytes, codec: str) -> str:
    """`raw` as text in `codec`; undecodable bytes as U+FFFD; pages without a table by the fallback. Never
    raises."""
    table = _TABLES.get(codec)
    if table is None and not has_codec(codec):
        table = _FALLBACK
    if table is None:
        try:
            return raw.decode(codec, errors="replace")
        except LookupError:                        # a codec that is no text encoding (e.g. 'rot13')
            table = _FALLBACK
    return codecs.charmap_decode(raw, "replace", table)[0]


def fallback_note(codec: str) -> str | None:
    """What a receipt says when its text was decoded by the fallback; None for a page with a table."""
    if has_codec(codec):
        return None
    return f"{codec} has no code table here: bytes 0x80-0xFF shown as U+FFFD (the exact bytes are in the receipt .bin)"

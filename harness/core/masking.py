"""Card-number masking: every log, report and receipt posrig writes shows at most BIN (first 6) + last 4.

The one place that knows how: text (`mask_pans`), JSON-like data (`mask_obj`), raw message dumps (`mask_raw`),
bytes kept at their length (`mask_bytes`) and unprintable bytes shown as text (`printable`). Protocol code only
finds *where* a card number sits (ISO 8583 field 2, ZVT BMP 22, a stream span) and hands it here.

>>> mask_pans("card 4111111111111111 ok")
'card 411111******1111 ok'
>>> mask_bytes(b"PAN 4111111111111111")
b'PAN 411111******1111'
"""

from __future__ import annotations

import re

# 13-19 contiguous digits, or printed groups (4-4-4-4[-3], Amex 4-6-5), not glued to other digits.
_PAN = re.compile(r"(?<!\d)(?:\d{13,21}|\d{4}(?:[ -]\d{4}){3}(?:[ -]?\d{1,3})?|\d{4}[ -]\d{6}[ -]\d{5})(?!\d)")


def luhn_ok(digits: str) -> bool:
    """True when `digits` passes the Luhn check used by every card scheme."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def hidden_range(length: int) -> tuple[int, int]:
    """Which digits of a `length`-digit card number are hidden: all but the first 6 and last 4 (all of a number
    shorter than 11). Code that masks a number arriving in pieces (the link's capture) asks this.

    >>> hidden_range(16), hidden_range(8)
    ((6, 12), (0, 8))
    """
    return (0, length) if length < 11 else (6, length - 4)


def mask_pan(pan: str) -> str:
    """Mask one card number: first 6 and last 4 kept, the rest '*'."""
    digits = re.sub(r"\D", "", pan)
    a, b = hidden_range(len(digits))
    return digits[:a] + "*" * (b - a) + digits[b:]


def _candidates(text: str):
    """(start, end, digits) of every card number in `text`, also one glued to its ISO 8583 LLVAR length."""
    for m in _PAN.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            yield m.start(), m.end(), digits
        elif len(digits) >= 15 and m.group().isdigit() and int(digits[:2]) == len(digits) - 2 \
                and luhn_ok(digits[2:]):
            yield m.start() + 2, m.end(), digits[2:]


def mask_pans(text: str) -> str:
    """Mask every Luhn-valid 13-19 digit card number found in free text."""
    out, last = [], 0
    for start, end, digits in _candidates(text):
        out.append(text[last:start])
        out.append(mask_pan(digits))
        last = end
    out.append(text[last:])
    return "".join(out)


def find_unmasked_pans(text: str) -> list[str]:
    """Card numbers in `text` that are NOT masked (oracle invariant I4). Returned masked, never in clear."""
    return [mask_pan(d) for _, _, d in _candidates(text)]


def mask_obj(obj):
    """Mask card numbers in every string of a JSON-like structure (dicts, lists, strings)."""
    if isinstance(obj, str):
        return mask_pans(obj)
    if isinstance(obj, dict):
        return {k: mask_obj(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [mask_obj(v) for v in obj]
    return obj


_DIGIT_RUN = re.compile(r"\d{15,}")


def mask_raw(text: str) -> str:
    """Mask card numbers inside raw message dumps, where a PAN sits in a long run of digits behind its LLVAR
    length (ISO 8583 ascii: ...16 4111111111111111 000000...). Over-masks rather than leaks; for dumps only."""

    def run(m: re.Match[str]) -> str:
        digits = list(m.group())
        i = 0
        while i + 15 <= len(digits):
            ll = int(digits[i] + digits[i + 1])
            body = "".join(digits[i + 2 : i + 2 + ll])
            if 13 <= ll <= 19 and len(body) == ll and luhn_ok(body):
                digits[i + 2 : i + 2 + ll] = mask_pan(body)
                i += 2 + ll
            else:
                i += 1
        return "".join(digits)

    return _DIGIT_RUN.sub(run, mask_pans(text))


_PAN_BYTES = re.compile(rb"(?<![0-9])(?:[0-9][ -]?){12,18}[0-9](?![0-9])")   # as _PAN, on bytes


def mask_bytes(data: bytes) -> bytes:
    """`data` with every Luhn-valid 13-19 digit card number masked in place (same length)."""
    out = bytearray(data)
    for m in _PAN_BYTES.finditer(data):
        positions = [m.start() + i for i, b in enumerate(m.group()) if 0x30 <= b <= 0x39]
        digits = bytes(out[i] for i in positions).decode()
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            for i in positions[6:-4]:
                out[i] = 0x2A
    return bytes(out)


def printable(raw: bytes) -> str:
    """Raw bytes (a malformed frame, say) as printable text for evidence, card numbers masked."""
    text = raw.decode("latin-1")
    return mask_raw("".join(ch if 32 <= ord(ch) < 127 else f"\\x{ord(ch):02x}" for ch in text))

"""The receipt journal: each finished receipt written as JSON, text, PNG and its raw bytes.

    receipt-0001.json  receipt-0001.txt  receipt-0001.png  receipt-0001.bin

Card numbers are masked in the JSON and text (never in .bin: those are the bytes as printed, kept as
evidence of exactly what the till sent; a till that prints a full PAN is itself a finding).
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

from harness.core.masking import find_unmasked_pans, mask_bytes, mask_obj, mask_pans
from harness.printer.render import FontMissingError, render_png, render_text
from harness.protocols.escpos.receipt import Receipt, TextLine

log = logging.getLogger(__name__)


def masked_copy(receipt: Receipt) -> Receipt:
    """A copy of `receipt` whose text lines show card numbers masked (for PNG/HTML views)."""
    r = copy.copy(receipt)
    r.blocks = []
    for b in receipt.blocks:
        if isinstance(b, TextLine) and mask_pans(b.text) != b.text:
            style = b.segments[0][1]
            b = TextLine([(mask_pans(b.text), style)], b.align)
        r.blocks.append(b)
    return r


class ReceiptJournal:
    def __init__(self, folder: str | Path, png: bool = True):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.png = png
        self.written: list[Path] = []

    def stem(self, receipt: Receipt) -> str:
        return f"receipt-{receipt.index + 1:04d}"

    def write(self, receipt: Receipt) -> list[Path]:
        """Write the receipt's files; returns their paths. A rendering failure is logged in the JSON."""
        stem = self.folder / self.stem(receipt)
        record = receipt.to_dict()
        leaked = find_unmasked_pans(receipt.text)
        if leaked:
            record["unmasked_pans_printed"] = leaked
        shown = masked_copy(receipt) if leaked else receipt
        paths = []
        p = stem.with_suffix(".bin")
        p.write_bytes(mask_bytes(receipt.raw))
        paths.append(p)
        p = stem.with_suffix(".txt")
        p.write_text(mask_pans(render_text(shown)), encoding="utf-8")
        paths.append(p)
        if self.png:
            try:
                p = stem.with_suffix(".png")
                p.write_bytes(render_png(shown))
                paths.append(p)
            except FontMissingError as exc:
                record["render_error"] = str(exc)
        p = stem.with_suffix(".json")
        text = json.dumps(mask_obj(record), indent=2, ensure_ascii=False, default=str)
        p.write_text(text, encoding="utf-8")
        paths.append(p)
        self.written += paths
        return paths

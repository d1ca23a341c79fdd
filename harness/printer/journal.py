"""The receipt journal: each finished receipt written as JSON, text, PNG and its raw bytes.

    receipt-0001.json  receipt-0001.txt  receipt-0001.png  receipt-0001.bin

Card numbers are masked in the JSON and text (never in .bin: those are the bytes as printed, kept as evidence of
exactly what the till sent; a till that prints a full PAN is itself a finding).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from harness.masking import mask_obj, mask_pans
from harness.printer.escpos.receipt import Receipt
from harness.printer.render import FontMissingError, render_png, render_text

log = logging.getLogger(__name__)


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
        paths = []
        p = stem.with_suffix(".bin")
        p.write_bytes(receipt.raw)
        paths.append(p)
        p = stem.with_suffix(".txt")
        p.write_text(mask_pans(render_text(receipt)), encoding="utf-8")
        paths.append(p)
        if self.png:
            try:
                p = stem.with_suffix(".png")
                p.write_bytes(render_png(receipt))
                paths.append(p)
            except FontMissingError as exc:
                record["render_error"] = str(exc)
        p = stem.with_suffix(".json")
        p.write_text(json.dumps(mask_obj(record), indent=2, ensure_ascii=False, default=str), encoding="utf-8")
        paths.append(p)
        self.written += paths
        return paths

"""The receipt journal: each finished receipt written as JSON, text, PNG and its raw bytes.

    receipt-0001.json  receipt-0001.txt  receipt-0001.png  receipt-0001.bin

Card numbers are masked in every file, through `harness.core.masking`: in the JSON and text (`mask_obj`,
`mask_pans`), in the PNG (drawn from `masked_copy`) and in .bin in place, at the same length (`mask_bytes`), so the
bytes keep their offsets. A till that printed a full card number is itself a finding: the JSON lists it, masked,
under `unmasked_pans_printed`. The paths written are recorded in `receipt.files`.
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
    """Writes each receipt it is given into `folder` and records the paths in `receipt.files`."""

    def __init__(self, folder: str | Path, png: bool = True):
        self.folder = Path(folder).resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.png = png
        self.written: list[Path] = []

    def stem(self, receipt: Receipt) -> str:
        return f"receipt-{receipt.index + 1:04d}"

    def write(self, receipt: Receipt) -> list[Path]:
        """Write the receipt's files, record them in `receipt.files` by kind ("bin", "txt", "png", "json") and
        return their paths. A rendering failure leaves "png" out and is logged in the JSON (`render_error`)."""
        stem = self.folder / self.stem(receipt)
        record = receipt.to_dict()
        leaked = find_unmasked_pans(receipt.text)
        if leaked:
            record["unmasked_pans_printed"] = leaked
        shown = masked_copy(receipt) if leaked else receipt
        files: dict[str, Path] = {}
        files["bin"] = _write(stem, "bin", mask_bytes(receipt.raw))
        files["txt"] = _write(stem, "txt", mask_pans(render_text(shown)).encode("utf-8"))
        if self.png:
            try:
                files["png"] = _write(stem, "png", render_png(shown))
            except FontMissingError as exc:
                record["render_error"] = str(exc)
            except Exception as exc:  # noqa: BLE001 - a receipt that cannot be drawn still gets its other files
                log.exception("receipt %d could not be drawn", receipt.index + 1)
                record["render_error"] = f"{type(exc).__name__}: {exc}"
        text = json.dumps(mask_obj(record), indent=2, ensure_ascii=False, default=str)
        files["json"] = _write(stem, "json", text.encode("utf-8"))
        receipt.files = files
        paths = list(files.values())
        self.written += paths
        return paths


def _write(stem: Path, kind: str, data: bytes) -> Path:
    path = stem.with_suffix("." + kind)
    path.write_bytes(data)
    return path

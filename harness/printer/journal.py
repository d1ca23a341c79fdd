"""The receipt journal: each finished receipt written as JSON, text, PNG and its raw bytes.

    receipt-0001.json  receipt-0001.txt  receipt-0001.png  receipt-0001.bin

Card numbers are masked in every file, through `harness.core.masking`: in the JSON and text (`mask_obj`,
`mask_pans`), in the PNG (drawn from `masked_copy`) and in .bin in place, at the same length (`mask_bytes`), so the
bytes keep their offsets. A till that printed a full card number is itself a finding: the JSON lists it, masked,
under `unmasked_pans_printed`. The paths written are recorded in `receipt.files`.

Drawing the PNG takes tens of milliseconds (more on a loaded machine). A printer answers its real-time status
(DLE EOT) at once, even with a receipt in its buffer, so a printer device journals with `background=True`: the PNG
is drawn on the journal's own thread, `receipt.files["png"]` names it at once, and `settle()` waits until every
PNG queued so far is on disk (the devices call it before handing a receipt out, and at close).
"""

from __future__ import annotations

import copy
import json
import logging
from concurrent.futures import Future, ThreadPoolExecutor, wait
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

    def __init__(self, folder: str | Path, png: bool = True, background: bool = False):
        self.folder = Path(folder).resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.png = png
        self.written: list[Path] = []
        self._drawer = ThreadPoolExecutor(1, thread_name_prefix="receipt-png") if background else None
        self._drawing: list[Future] = []

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
            files["png"] = stem.with_suffix(".png")
        files["json"] = _write(stem, "json", _json(record))
        receipt.files = files
        if self.png and self._drawer is not None:
            self._drawing = [f for f in self._drawing if not f.done()]
            self._drawing.append(self._drawer.submit(self._draw, receipt, shown, record))
        elif self.png:
            self._draw(receipt, shown, record)
        paths = list(files.values())
        self.written += paths
        return paths

    def _draw(self, receipt: Receipt, shown: Receipt, record: dict) -> None:
        """Draw the PNG; if it cannot be drawn, take it out of `receipt.files` and say why in the JSON."""
        path = receipt.files["png"]
        try:
            path.write_bytes(render_png(shown))
            return
        except FontMissingError as exc:
            record["render_error"] = str(exc)
        except Exception as exc:  # noqa: BLE001 - a receipt that cannot be drawn still gets its other files
            log.exception("receipt %d could not be drawn", receipt.index + 1)
            record["render_error"] = f"{type(exc).__name__}: {exc}"
        receipt.files.pop("png", None)
        receipt.files["json"].write_bytes(_json(record))

    def settle(self, timeout: float = 30.0) -> bool:
        """Wait until every PNG queued so far is drawn (or failed); False if `timeout` ran out first."""
        pending = [f for f in self._drawing if not f.done()]
        return not pending or not wait(pending, timeout).not_done

    def close(self) -> None:
        """Draw what is queued, then stop the drawing thread."""
        if self._drawer is not None:
            self.settle()
            self._drawer.shutdown(wait=True)


def _json(record: dict) -> bytes:
    return json.dumps(mask_obj(record), indent=2, ensure_ascii=False, default=str).encode("utf-8")


def _write(stem: Path, kind: str, data: bytes) -> Path:
    path = stem.with_suffix("." + kind)
    path.write_bytes(data)
    return path

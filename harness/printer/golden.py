"""Golden receipt images: compare a rendered receipt with a committed PNG, within a tolerance.

A rendering is "the same" as its golden when the sizes match exactly (a receipt that grew a line is a different
receipt), the mean absolute grey-level difference is at most `mean` (0-255), at most `fraction` of the pixels
differ by more than `THRESHOLD` grey levels, and no character cell (12x24 dots, font A) holds more than `cell`
such pixels. Font hinting and anti-aliasing differ slightly between FreeType/Pillow builds: that moves a few
edge pixels spread over the receipt, which the tolerance absorbs; one changed character (an E become F moves
about 12 pixels in one cell) does not pass.

Regenerate goldens on purpose only (after a deliberate rendering change), then look at the PNGs before
committing them:

    POSRIG_REGENERATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/printer/test_golden_receipts.py

>>> from PIL import Image
>>> a = Image.new("L", (20, 20), 255); b = a.copy(); b.putpixel((0, 0), 0)
>>> d = difference(a, b); (round(d.mean, 2), d.fraction, d.worst_cell, d.within())
(0.64, 0.0025, 1, True)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REGENERATE_ENV = "POSRIG_REGENERATE_GOLDEN"
THRESHOLD = 64               # grey levels: a pixel differs when it moved more than this
MEAN = 2.0                   # default tolerance: mean absolute difference, grey levels
FRACTION = 0.01              # default tolerance: share of differing pixels
CELL = (12, 24)              # a font A character cell, in dots
CELL_PIXELS = 4              # default tolerance: differing pixels in any one cell


@dataclass(frozen=True)
class Difference:
    """How far a rendering is from its golden."""

    mean: float              # mean absolute grey-level difference (0-255)
    fraction: float          # share of pixels differing by more than THRESHOLD
    worst_cell: int          # most such pixels in one character cell (CELL)
    size: tuple[int, int]
    golden_size: tuple[int, int]

    def within(self, mean: float = MEAN, fraction: float = FRACTION, cell: int = CELL_PIXELS) -> bool:
        return (self.size == self.golden_size and self.mean <= mean and self.fraction <= fraction
                and self.worst_cell <= cell)

    def describe(self) -> str:
        if self.size != self.golden_size:
            return f"size {self.size[0]}x{self.size[1]}, golden {self.golden_size[0]}x{self.golden_size[1]}"
        return (f"mean difference {self.mean:.2f} grey levels, {self.fraction:.2%} of pixels differ, "
                f"up to {self.worst_cell} in one character cell")


def difference(image, golden) -> Difference:
    """Compare two Pillow images (converted to greyscale)."""
    from PIL import ImageChops

    a, b = image.convert("L"), golden.convert("L")
    if a.size != b.size:
        return Difference(255.0, 1.0, CELL[0] * CELL[1], a.size, b.size)
    diff = ImageChops.difference(a, b)
    hist = diff.histogram()
    pixels = a.width * a.height
    mean = sum(level * n for level, n in enumerate(hist)) / pixels
    differing = sum(hist[THRESHOLD + 1 :]) / pixels
    mask = diff.point(lambda v: 1 if v > THRESHOLD else 0)
    worst = 0
    cw, ch = CELL
    for ox, oy in ((0, 0), (cw // 2, 0), (0, ch // 2), (cw // 2, ch // 2)):   # grids offset by half a cell
        for y in range(-oy, a.height, ch):
            for x in range(-ox, a.width, cw):
                worst = max(worst, mask.crop((x, y, x + cw, y + ch)).histogram()[1])
    return Difference(mean, differing, worst, a.size, b.size)


def regenerating() -> bool:
    return os.environ.get(REGENERATE_ENV, "") not in ("", "0")


def check(image, golden_path: Path, actual_dir: Path, mean: float = MEAN, fraction: float = FRACTION,
          cell: int = CELL_PIXELS) -> Difference:
    """Compare `image` with the golden PNG at `golden_path` (writing it instead when regenerating); raise
    AssertionError naming the difference, with the rendering saved in `actual_dir` to look at."""
    from PIL import Image

    golden_path = Path(golden_path)
    if regenerating():
        golden_path.parent.mkdir(parents=True, exist_ok=True)
        image.convert("L").save(golden_path, optimize=True)
        return Difference(0.0, 0.0, 0, image.size, image.size)
    if not golden_path.exists():
        raise AssertionError(f"no golden image {golden_path}: create it with {REGENERATE_ENV}=1 and look at it "
                             "before committing")
    with Image.open(golden_path) as golden:
        d = difference(image, golden)
    if not d.within(mean, fraction, cell):
        actual = Path(actual_dir) / golden_path.name
        actual.parent.mkdir(parents=True, exist_ok=True)
        image.convert("L").save(actual)
        raise AssertionError(f"{golden_path.name}: {d.describe()} (tolerance: mean {mean}, {fraction:.2%}, "
                             f"{cell} per cell); rendering saved as {actual}; if the change is intended, "
                             f"regenerate with {REGENERATE_ENV}=1")
    return d

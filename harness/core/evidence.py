"""Evidence: the per-scenario folder where every device writes what it saw, masked.

>>> ev = Evidence(Path("/tmp/ev/test_sale"))
>>> with ev.transcript("host") as t:
...     t.write("rx", mti="0200", pan="4111111111111111")   # stored as 411111******1111

Every evidence path stays inside the folder: `ev.file("../x")` raises `EvidenceError` (a name from a rig cannot
climb out: rig names are refused first, see `harness.core.rig.NAME`).
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.core.masking import mask_obj, mask_pans


class EvidenceError(ValueError):
    """An evidence file name that would leave the evidence folder; the message names it and the folder."""


def safe_name(text: str, limit: int = 120) -> str:
    """A file-system-safe name for a test id such as `tests/x.py::test_a[terminal-host/0210-lost]`: one path
    component, never '.' or '..' (leading dots go: no hidden files either). A name over `limit` keeps its start
    and ends in a hash of the whole text, so two long ids that differ only at the end never share a folder.

    >>> safe_name("tests/x.py::test_a[terminal-host/0210-lost]"), safe_name(".."), safe_name("../../etc")
    ('tests_x.py_test_a_terminal-host_0210-lost', 'unnamed', 'etc')
    >>> safe_name("t[" + "a" * 20 + "-http]", limit=16) != safe_name("t[" + "a" * 20 + "-command]", limit=16)
    True
    """
    name = re.sub(r"[^A-Za-z0-9._=-]+", "_", text).lstrip("._").rstrip("_")
    if len(name) > limit:
        digest = hashlib.sha256(text.encode()).hexdigest()[:10]
        name = f"{name[:limit - 11].rstrip('_')}_{digest}"
    return name or "unnamed"


@dataclass
class Attachment:
    name: str
    path: Path
    mime: str
    description: str = ""


class Transcript:
    """Append-only JSON-lines log of one device's traffic. Thread-safe; every record masked and flushed."""

    def __init__(self, path: Path):
        self.path = path
        self._fh = open(path, "a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, event: str, **fields) -> None:
        record = {"t": round(time.time(), 6), "event": event, **mask_obj(fields)}
        line = json.dumps(record, default=str, ensure_ascii=False)
        with self._lock:
            if not self._fh.closed:
                self._fh.write(line + "\n")
                self._fh.flush()

    def close(self) -> None:
        with self._lock:
            self._fh.close()

    def __enter__(self) -> Transcript:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class Evidence:
    """One scenario's evidence folder. Devices create files here; reports link to them."""

    path: Path
    attachments: list[Attachment] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.path.mkdir(parents=True, exist_ok=True)

    def inside(self, name: str) -> Path:
        """`self.path / name`, made sure to stay inside this folder (EvidenceError otherwise). Use it for a
        sub-folder a device fills itself (a printer's receipt journal)."""
        root = self.path.resolve()
        p = (root / name).resolve()
        if p == root or not p.is_relative_to(root):
            raise EvidenceError(f"evidence name {name!r} is not inside the evidence folder {self.path} (it would be "
                                f"{p}); use a plain relative name such as 'printer.jsonl'")
        return self.path / p.relative_to(root)

    def file(self, name: str, description: str = "", mime: str | None = None) -> Path:
        """Path for a new evidence file, registered as an attachment of the scenario."""
        p = self.inside(name)
        p.parent.mkdir(parents=True, exist_ok=True)
        mime = mime or mimetypes.guess_type(name)[0] or "application/octet-stream"
        if not any(a.path == p for a in self.attachments):
            self.attachments.append(Attachment(name, p, mime, description))
        return p

    def transcript(self, device: str) -> Transcript:
        """A masked JSON-lines transcript `<device>.jsonl` in this folder."""
        return Transcript(self.file(f"{device}.jsonl", f"{device} transcript", "application/x-ndjson"))

    def write_text(self, name: str, text: str, description: str = "") -> Path:
        """Write a text file, masking any card number in it."""
        p = self.file(name, description)
        p.write_text(mask_pans(text), encoding="utf-8")
        return p

    def write_json(self, name: str, obj, description: str = "") -> Path:
        p = self.file(name, description, "application/json")
        p.write_text(json.dumps(mask_obj(obj), indent=2, default=str, ensure_ascii=False), encoding="utf-8")
        return p

    def write_bytes(self, name: str, data: bytes, description: str = "", mime: str | None = None) -> Path:
        p = self.file(name, description, mime)
        p.write_bytes(data)
        return p

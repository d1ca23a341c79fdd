"""python-escpos's capabilities pickle in one stable per-user folder instead of a new temporary folder per process.

At import, python-escpos 3.1 writes its capabilities pickle to `$ESCPOS_CAPABILITIES_PICKLE_DIR`, else to a fresh
`mkdtemp()` never removed: one leaked folder per process that prints (one per scenario, through the reference
till). And it calls `mkdtemp()` even when the variable is set (the default argument of `environ.get` is evaluated
first), so the variable alone does not stop the leak. `install()` (run when the `harness` package is imported, so
by every posrig process and, through the environment, meant for the children they spawn):

* sets ESCPOS_CAPABILITIES_PICKLE_DIR to `$XDG_CACHE_HOME/posrig/escpos` (default `~/.cache/posrig/escpos`; a
  folder `posrig-escpos-UID` in the temporary directory when the home is not writable), unless already set;
* hooks the import of `escpos.capabilities` so that its `mkdtemp()` answers that folder instead of making one
  (and a pickle read while another process still writes it is read again, once).

>>> install() == os.environ[ENV]
True
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import pickle
import platform
import shutil
import sys
import tempfile
import time

ENV = "ESCPOS_CAPABILITIES_PICKLE_DIR"
MODULE = "escpos.capabilities"


def cache_folder() -> str:
    """The per-user folder for the pickle (made if missing)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.path.join(base, "posrig", "escpos")
    try:
        os.makedirs(folder, exist_ok=True)
        if os.access(folder, os.W_OK):
            return folder
    except OSError:
        pass
    folder = os.path.join(tempfile.gettempdir(), f"posrig-escpos-{os.getuid()}")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    return folder


class _NoTempFolder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Runs `escpos.capabilities` with a `tempfile.mkdtemp` that, called from that module, makes nothing."""

    def find_spec(self, fullname, path, target=None):
        if fullname != MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        self._loader = spec.loader
        spec.loader = self
        return spec

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        real = tempfile.mkdtemp

        def mkdtemp(*args, **kwargs):
            if sys._getframe(1).f_globals.get("__name__") == MODULE and not args and not kwargs:
                return os.environ.get(ENV) or cache_folder()
            return real(*args, **kwargs)

        tempfile.mkdtemp = mkdtemp
        try:
            try:
                self._loader.exec_module(module)
            except (EOFError, pickle.UnpicklingError):   # another process was writing the shared pickle: again
                time.sleep(0.5)
                self._loader.exec_module(module)
        finally:
            tempfile.mkdtemp = real


_finder = _NoTempFolder()


def install() -> str:
    """Point python-escpos at the per-user folder (see the module docstring); returns the folder."""
    folder = os.environ.get(ENV)
    if not folder:
        folder = os.environ[ENV] = cache_folder()
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
    return folder


def private_folder(prefix: str) -> str:
    """A new folder for one process's pickle, holding a copy of the finished shared one: the process reads it in
    a few ms instead of parsing python-escpos's capabilities YAML (about a second of CPU), and no other process
    ever writes to it. Without a usable shared pickle the folder is left empty (the process builds its own)."""
    folder = tempfile.mkdtemp(prefix=prefix)
    name = f"{platform.python_version()}.capabilities.pickle"
    source = os.path.join(install(), name)
    try:
        if not os.path.exists(source):
            import escpos.capabilities  # noqa: F401 - writes the shared pickle (into the folder install() set)
        with open(source, "rb") as f:
            pickle.load(f)                              # complete, not being written right now
        shutil.copy2(source, os.path.join(folder, name + ".part"))  # copy2 keeps the mtime escpos compares
        os.replace(os.path.join(folder, name + ".part"), os.path.join(folder, name))
    except Exception:  # noqa: BLE001 - only an optimisation: the process builds its own pickle
        pass
    return folder

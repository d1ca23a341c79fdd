"""Driver registry: the rig names a (kind, driver) pair; the registry finds the class that implements it.

Drivers are declared as entry points in the group `posrig.drivers`, named `<kind>.<driver>`, so a vendor's own
package can add a till or terminal driver without touching posrig. Tests may also `register()` directly.
"""

from __future__ import annotations

import threading
from importlib import import_module
from importlib.metadata import entry_points

GROUP = "posrig.drivers"
_extra: dict[tuple[str, str], type] = {}


class DriverError(LookupError):
    """No usable driver for a (kind, driver) pair."""


def register(kind: str, name: str):
    """Class decorator registering a driver in-process (entry points are the usual way)."""

    def deco(cls: type) -> type:
        _extra[(kind, name)] = cls
        return cls

    return deco


_importing = threading.Lock()
_loaded: dict[tuple[str, str], type] = {}            # resolved once per process: every bench looks its drivers up
_scanned: dict[tuple[str, str], str] | None = None


def _declared() -> dict[tuple[str, str], str]:
    """The declared drivers; the installed packages' metadata is read once per process (`refresh()` rereads)."""
    global _scanned
    if _scanned is None:
        found = {}
        for ep in entry_points(group=GROUP):
            kind, _, name = ep.name.partition(".")
            found[(kind, name)] = ep.value
        _scanned = found
    return _scanned


def refresh() -> None:
    """Forget what was read from the installed packages (after installing a driver package in this process)."""
    global _scanned
    _scanned = None
    _loaded.clear()


def available(kind: str | None = None) -> list[tuple[str, str]]:
    """All declared (kind, driver) pairs, optionally of one kind."""
    pairs = set(_declared()) | set(_extra)
    return sorted(p for p in pairs if kind is None or p[0] == kind)


def lookup(kind: str, name: str) -> type:
    """The driver class for (kind, name). Raises DriverError saying what exists or why it failed to import."""
    if (kind, name) in _extra:
        return _extra[(kind, name)]
    if (kind, name) in _loaded:
        return _loaded[(kind, name)]
    target = _declared().get((kind, name))
    if target is None:
        names = ", ".join(n for k, n in available(kind)) or "none"
        raise DriverError(f"no {kind} driver named {name!r}; registered {kind} drivers: {names}. "
                          f"Fix the rig's 'driver'/'mode', or install the package that provides it.")
    module, _, attr = target.partition(":")
    try:
        with _importing:            # one first import at a time: a bench starts its devices from several threads,
            cls = getattr(import_module(module), attr)    # and CPython 3.11's compiler is not safe across them
    except (ImportError, AttributeError) as exc:
        raise DriverError(f"{kind} driver {name!r} is declared as {target} but cannot be loaded: {exc}") from exc
    _loaded[(kind, name)] = cls
    return cls

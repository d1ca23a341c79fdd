"""Where a till finds its devices: the terminal, the printer and the host posrig put on the bench, and the timer
scale the rig runs at. posrig hands them to every till the same way (docs/till-contract.md, "Device endpoints"):

- environment variables for a launched till or a till command: `POSRIG_TERMINAL=198.18.2.2:20007`, ...;
- placeholders in `launch`/command lines: `{terminal}`, `{printer}`, ...;
- request headers on `GET /health` for an HTTP till: `X-Posrig-Terminal: 198.18.2.2:20007`, ...

>>> env({"terminal": "198.18.2.2:20007", "timing_scale": "0.05"})
{'POSRIG_TERMINAL': '198.18.2.2:20007', 'POSRIG_TIMING_SCALE': '0.05'}
>>> headers({"terminal": "198.18.2.2:20007"})
{'X-Posrig-Terminal': '198.18.2.2:20007'}
"""

from __future__ import annotations

import sys
from typing import Any

# name -> what it is (the contract's table is built from this)
ENDPOINTS: dict[str, str] = {
    "terminal": "the terminal's ZVT ECR port, IP:PORT (TCP terminals)",
    "terminal_serial": "the terminal's ZVT serial device, e.g. /dev/pts/5 (serial terminals)",
    "printer": "the receipt printer, IP:PORT (ESC/POS over TCP, port 9100 style)",
    "printer_serial": "the receipt printer's serial device, e.g. /dev/pts/6 (serial printers)",
    "printer_usb": "the receipt printer's USB id VENDOR:PRODUCT (USB printers)",
    "printer_usbip": "the emulated USB printer's USB/IP server, IP:PORT (USB printers)",
    "host": "the acquirer host, IP:PORT (for information: the terminal talks to it, not the till)",
    "timing_scale": "the rig's timer scale: multiply every protocol timer of the till by it (1 on real benches)",
    "state_dir": "a folder kept across restarts of the till within one scenario (its journal, its files)",
    "evidence_dir": "the scenario's evidence folder (write logs here to have them in the report)",
    "rig_dir": "the folder of the rig file (to name a till program kept beside it)",
    "python": "the Python interpreter posrig runs on",
}


def env(values: dict[str, str]) -> dict[str, str]:
    """The environment variables for `values`: POSRIG_<NAME>."""
    return {f"POSRIG_{k.upper()}": v for k, v in values.items() if k in ENDPOINTS}


def headers(values: dict[str, str]) -> dict[str, str]:
    """The HTTP request headers for `values`: X-Posrig-<Name>."""
    return {"X-Posrig-" + "-".join(p.capitalize() for p in k.split("_")): v for k, v in values.items()
            if k in ENDPOINTS}


def _tcp(address: Any) -> str | None:
    if isinstance(address, (tuple, list)) and len(address) == 2:
        return f"{address[0]}:{address[1]}"
    return str(address) if address else None


def of_bench(*, terminal: Any = None, printer: Any = None, host: Any = None, timing_scale: float = 1.0,
             state_dir: Any = None, evidence_dir: Any = None, rig_dir: Any = None) -> dict[str, str]:
    """The endpoints of started devices (any of them may be missing: the till gets what there is)."""
    out: dict[str, str] = {}
    if terminal is not None:
        device = getattr(terminal, "ecr_device", None)
        if device:
            out["terminal_serial"] = str(device)
        else:
            try:
                out["terminal"] = _tcp(terminal.ecr_address) or ""
            except (RuntimeError, AttributeError):
                pass
    if printer is not None:
        address = getattr(printer, "address", None) or {}
        if isinstance(address, dict):
            tcp = address.get("tap") or address.get("tcp")
            if tcp:
                out["printer"] = _tcp(tcp) or ""
            if address.get("serial"):
                out["printer_serial"] = str(address["serial"])
            if address.get("usb"):
                out["printer_usb"] = str(address["usb"])
            if address.get("usbip"):
                out["printer_usbip"] = str(address["usbip"])
        elif address:
            out["printer"] = str(address)
    if host is not None:
        addr = _tcp(getattr(host, "address", None))
        if addr:
            out["host"] = addr
    out["timing_scale"] = repr(float(timing_scale))
    if state_dir is not None:
        out["state_dir"] = str(state_dir)
    if evidence_dir is not None:
        out["evidence_dir"] = str(evidence_dir)
    if rig_dir is not None:
        out["rig_dir"] = str(rig_dir)
    out["python"] = sys.executable
    return {k: v for k, v in out.items() if v}

"""`posrig doctor`: what a rig needs from this machine, and whether each thing is ready.

Each check function takes the rig and yields `Check`s; a check is needed only when the rig uses what it tests.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import socket
import stat
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from harness import topology as netns
from harness.core.address import parse_hostport
from harness.core.registry import DriverError, lookup
from harness.core.rig import Rig


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str          # what was found, or what to do about it


def _privileges(rig: Rig) -> Iterator[Check]:
    needs_net = rig.network_mode == "namespaces" or any(link.faultable for link in rig.links.values())
    if not needs_net:
        return
    caps = netns.capabilities()
    ok = bool(caps >> 12 & 1 and caps >> 21 & 1)
    who = "root" if os.geteuid() == 0 and netns.in_initial_user_ns() else f"uid {os.geteuid()}"
    yield Check("privileges", ok, f"{who} with CAP_NET_ADMIN and CAP_SYS_ADMIN" if ok else
                f"{who} lacks CAP_NET_ADMIN/CAP_SYS_ADMIN: {netns.ENABLE_HINT}")


def _namespaces(rig: Rig) -> Iterator[Check]:
    if rig.network_mode != "namespaces":
        return
    ok, how = netns.probe()
    yield Check("network namespaces", ok, f"can be built ({how})" if ok else how)


def _nfqueue(rig: Rig) -> Iterator[Check]:
    if not any(link.faultable for link in rig.links.values()):
        return
    if not shutil.which("iptables"):
        yield Check("iptables", False, "iptables is missing: apt-get install iptables")
        return
    yield Check("iptables", True, shutil.which("iptables") or "")
    if not netns.probe()[0]:
        yield Check("iptables NFQUEUE", False, "cannot test without namespaces: " + netns.probe()[1])
        return
    # Try the exact rule kind the link engine uses, in a throwaway namespace (never on this machine's own rules).
    p = subprocess.run(["unshare", "--net", "--", "iptables", "-A", "FORWARD", "-p", "tcp", "-j", "NFQUEUE",
                        "--queue-num", "1", "--queue-bypass"], capture_output=True, text=True)
    yield Check("iptables NFQUEUE", p.returncode == 0, "the kernel accepts -j NFQUEUE --queue-bypass"
                if p.returncode == 0 else f"rejected: {p.stderr.strip()} (needs CONFIG_NETFILTER_XT_TARGET_NFQUEUE)")
    for module, package in (("netfilterqueue", "NetfilterQueue (needs libnetfilter-queue-dev)"),
                            ("scapy", "scapy")):
        try:
            importlib.import_module(module)
            yield Check(f"python module {module}", True, "importable")
        except ImportError as exc:
            yield Check(f"python module {module}", False, f"{exc}: pip install {package}")


def _drivers(rig: Rig) -> Iterator[Check]:
    users: dict[tuple[str, str], list[str]] = {}
    for spec in [*rig.devices.values(), *rig.links.values()]:
        users.setdefault((getattr(spec, "kind", "link"), spec.driver), []).append(spec.name)
    for (kind, driver), names in users.items():
        try:
            lookup(kind, driver)
            yield Check(f"driver {kind}.{driver}", True, "for " + ", ".join(names))
        except DriverError as exc:
            yield Check(f"driver {kind}.{driver}", False, str(exc))


def _real_devices(rig: Rig) -> Iterator[Check]:
    for spec in rig.devices.values():
        if spec.mode != "real" or not spec.address:
            continue
        label = f"{spec.kind} {spec.name} ({spec.transport} {spec.address})"
        if spec.transport == "serial":
            yield _serial_check(label, spec.address)
        elif spec.transport == "usb":
            yield _usb_check(label, spec.address)
        elif spec.transport == "tcp":
            try:
                with socket.create_connection(parse_hostport(spec.address), timeout=1.5):
                    yield Check(label, True, "accepts TCP connections")
            except OSError as exc:
                yield Check(label, False, f"not reachable: {exc}; check cabling, address and that it is on")


def _serial_check(label: str, path: str) -> Check:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return Check(label, False, f"{path} does not exist; plug the device in or fix 'address'")
    if not stat.S_ISCHR(mode):
        return Check(label, False, f"{path} is not a character device")
    if not os.access(path, os.R_OK | os.W_OK):
        return Check(label, False, f"{path} is not readable and writable: add your user to group 'dialout'")
    return Check(label, True, "serial port present and accessible")


def _usb_check(label: str, ids: str) -> Check:
    vendor, product = (int(x, 16) for x in ids.split(":"))
    try:
        import usb.core
        dev = usb.core.find(idVendor=vendor, idProduct=product)
    except Exception as exc:  # noqa: BLE001 - pyusb raises NoBackendError and friends
        return Check(label, False, f"pyusb cannot search USB: {exc}; apt-get install libusb-1.0-0")
    if dev is None:
        return Check(label, False, f"no USB device {ids} found; check `lsusb` and the cable")
    return Check(label, True, f"found on bus {dev.bus} address {dev.address}")


def _interfaces(rig: Rig) -> Iterator[Check]:
    for link in rig.links.values():
        for ifname in link.interfaces:
            present = Path(f"/sys/class/net/{ifname}").exists()
            yield Check(f"interface {ifname} (link {link.name})", present,
                        "present" if present else f"no interface {ifname}; `ip link` lists the NICs here")


def _receipt_font(rig: Rig) -> Iterator[Check]:
    if not rig.of_kind("printer"):
        return
    from harness.printer.render import CJK_FONT, FONT_PACKAGE

    ok = os.path.exists(CJK_FONT)
    yield Check("receipt font (CJK)", ok, CJK_FONT if ok else
                f"{CJK_FONT} missing: apt-get install {FONT_PACKAGE} (Chinese receipts cannot be drawn)")


CHECKS: list[Callable[[Rig], Iterator[Check]]] = [
    _privileges, _namespaces, _nfqueue, _drivers, _real_devices, _interfaces, _receipt_font,
]


def diagnose(rig: Rig) -> list[Check]:
    """Run every check the rig calls for."""
    checks: list[Check] = []
    for fn in CHECKS:
        with contextlib.suppress(StopIteration):
            checks.extend(fn(rig))
    return checks

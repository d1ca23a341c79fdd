"""A place's resources as posrig devices: which resource serves which device or link, and the rig with their
addresses filled in.

- `NetworkSerialPort` (a `RawSerialPort`/`USBSerialPort` an exporter serves through ser2net) -> a serial printer
  or terminal: posrig opens it through a local pty bridged over RFC 2217 (`bridge.py`); the device's address
  becomes that pty.
- two `RemoteNetworkInterface`s (`NetworkInterface`s on the exporter) -> a bench link's `interfaces`; on a rig
  with `network.mode: namespaces` they are reported, not used (the emulated link has its own).
- a power resource (`NetworkPowerPort`, `NetworkUSBPowerPort`, `PDUDaemonPort`, ...) -> the till's (or a
  printer's) power: `kill` cuts it and the restart restores it.
- USB resources (`NetworkUSB*`, USB/IP on the exporter) are what a lab uses for a USB printer; posrig does not
  map them yet (this machine's kernel has no USB, so it could not be tested): such a mapping is refused.

A device or link is served by the resource the rig's `labgrid.resources` names, else by a resource named like it.

>>> place = {"name": "b3", "resources": [{"name": "printer", "cls": "NetworkSerialPort", "exporter": "e",
...          "group": "g", "params": {"host": "10.0.0.9", "port": 4001, "speed": 9600}}]}
>>> from harness.core.rig import parse_rig
>>> rig = parse_rig('''name: r
... labgrid: {coordinator: "127.0.0.1:20408", place: b3}
... devices:
...   printer: {kind: printer, mode: real, transport: serial}
... ''')
>>> plan(rig, place).serial["printer"]["port"]
4001
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from harness.core.rig import Rig
from harness.labgrid.place import PlaceError

SERIAL = ("NetworkSerialPort",)
INTERFACES = ("RemoteNetworkInterface", "USBNetworkInterface")
POWER = ("NetworkPowerPort", "NetworkUSBPowerPort", "NetworkSiSPMPowerPort", "PDUDaemonPort", "TasmotaPowerPort",
         "NetworkYKUSHPowerPort", "NetworkSysfsGPIO")


@dataclass
class Plan:
    serial: dict[str, dict[str, Any]] = field(default_factory=dict)      # device -> the NetworkSerialPort's params
    interfaces: dict[str, tuple[str, str]] = field(default_factory=dict)  # link -> (ifname, ifname)
    power: dict[str, str] = field(default_factory=dict)                   # device -> power resource name
    used: dict[str, str] = field(default_factory=dict)                    # resource name -> what posrig uses it for


def _one(place: dict[str, Any], name: str, classes: tuple[str, ...], user: str) -> dict[str, Any]:
    found = [r for r in place.get("resources", []) if r["name"] == name]
    if not found:
        have = ", ".join(f"{r['name']} ({r['cls']})" for r in place.get("resources", [])) or "none"
        raise PlaceError(f"labgrid place {place['name']}: no resource {name!r} for {user} (the place has: {have}); "
                         f"add a match (`labgrid-client -p {place['name']} add-named-match EXPORTER/GROUP/CLS/NAME "
                         f"{name}`) or fix labgrid.resources.{user}")
    res = found[0]
    if res["cls"] not in classes:
        raise PlaceError(f"labgrid place {place['name']}: resource {name!r} is a {res['cls']}; {user} needs "
                         f"{' or '.join(classes)}")
    return res


def plan(rig: Rig, place: dict[str, Any]) -> Plan:
    """What each resource of `place` (as `Place.show()` gives it) serves on `rig`. PlaceError when the rig asks
    for a resource the place lacks, of the wrong class, or one posrig cannot use."""
    spec = rig.labgrid
    assert spec is not None
    out = Plan()
    names = {r["name"] for r in place.get("resources", [])}
    for dev in rig.devices.values():
        wanted = spec.resources.get(dev.name) or ((dev.name,) if dev.name in names and dev.mode == "real" else ())
        if not wanted:
            if dev.mode == "real" and not dev.address and dev.transport in ("tcp", "serial", "usb"):
                raise PlaceError(f"{rig.path}: devices.{dev.name}: no address, and labgrid place {place['name']} has "
                                 f"no resource named {dev.name!r}: give it an address, or name its resource in "
                                 f"labgrid.resources.{dev.name}")
            continue
        if dev.transport == "usb":
            raise PlaceError(f"{rig.path}: labgrid.resources.{dev.name}: USB devices through labgrid (USB/IP from the "
                             "exporter) are not supported by posrig yet; give the printer a serial or tcp transport")
        if dev.transport != "serial":
            raise PlaceError(f"{rig.path}: labgrid.resources.{dev.name}: found a {dev.transport} device; a place's "
                             "NetworkSerialPort serves serial devices only (transport: serial)")
        res = _one(place, wanted[0], SERIAL, f"device {dev.name}")
        if res.get("params", {}).get("extra", {}).get("proxy_required"):
            raise PlaceError(f"labgrid place {place['name']}: {res['name']} needs an SSH proxy to its exporter, "
                             "which posrig does not open; run posrig where the exporter's ports are reachable")
        out.serial[dev.name] = dict(res["params"])
        out.used[res["name"]] = f"serial port of {dev.name}"
    for link in rig.links.values():
        wanted = spec.resources.get(link.name)
        if not wanted:
            continue
        a, b = (_one(place, n, INTERFACES, f"link {link.name}") for n in wanted)
        out.interfaces[link.name] = (a["params"]["ifname"], b["params"]["ifname"])
        how = "bench NIC" if rig.network_mode == "bench" else "bench NIC (reported; namespaces rig uses its own)"
        out.used[a["name"]] = out.used[b["name"]] = f"{how} of link {link.name}"
    for dev_name, res_name in spec.power.items():
        _one(place, res_name, POWER, f"power of {dev_name}")
        out.power[dev_name] = res_name
        out.used[res_name] = f"power of {dev_name} (kill cuts it, restart restores it)"
    return out


def apply(rig: Rig, addresses: dict[str, str], interfaces: dict[str, list[str] | tuple[str, str]],
          power: dict[str, str]) -> Rig:
    """The rig with the place's resources filled in: serial devices at their bridge's pty, bench links on the
    place's NICs, `labgrid_power` in the powered devices' options."""
    spec = rig.labgrid
    devices = dict(rig.devices)
    for name, path in addresses.items():
        devices[name] = dataclasses.replace(devices[name], address=path)
    for name, resource in power.items():
        option = {"coordinator": spec.coordinator, "place": spec.place, "resource": resource}
        devices[name] = dataclasses.replace(devices[name], options={**devices[name].options, "labgrid_power": option})
    links = dict(rig.links)
    if rig.network_mode == "bench":
        for name, nics in interfaces.items():
            links[name] = dataclasses.replace(links[name], interfaces=tuple(nics))
    return dataclasses.replace(rig, devices=devices, links=links)


def identities(place: dict[str, Any], used: dict[str, str]) -> list[dict[str, Any]]:
    """Every resource of the place as the report names it: exporter/group/class/name, its parameters, its use."""
    out = []
    for r in place.get("resources", []):
        params = {k: v for k, v in (r.get("params") or {}).items() if k != "extra"}
        out.append({"name": r["name"], "path": f"{r['exporter']}/{r['group']}/{r['cls']}/{r['resource']}",
                    "exporter": r["exporter"], "group": r["group"], "cls": r["cls"], "params": params,
                    "acquired": bool(r.get("acquired")), "used_for": used.get(r["name"], "not used by this rig")})
    return out

"""Rig files: which devices on a bench are real and which emulated, where they are, and which links may be faulted.

>>> rig = load_rig("emulated")             # a shipped rig by name, or a path such as rigs/emulated.yaml
>>> rig.devices["printer"].mode, rig.devices["printer"].transport, rig.links["terminal-host"].ends
('emulated', 'tcp', ('terminal', 'host'))

A wrong rig raises `RigError` naming the file, the key, what was found and what was expected.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

KINDS = ("printer", "terminal", "host", "till")

# Every name in a rig (the rig's, devices', links', nodes', drivers', profiles', protocols') becomes part of file
# names, namespace names and interface names: letters, digits, '_' and '-' only, so none can climb out of a folder.
NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
NAME_RULE = "a name of 1-64 letters, digits, '_' or '-' (no dots, slashes or spaces), e.g. 'printer'"
# A bench NIC, as Linux names it: at most 15 characters, VLANs such as 'eth0.100' allowed, never '.' or '..'.
INTERFACE = re.compile(r"^(?!\.{1,2}$)[A-Za-z0-9_.-]{1,15}$")
MODES = ("emulated", "real")
NETWORK_MODES = ("namespaces", "bench")

# What each device kind accepts as transport, and how its address must look per transport.
TRANSPORTS: dict[str, tuple[str, ...]] = {
    "printer": ("tcp", "serial", "usb"),
    "terminal": ("tcp", "serial"),
    "host": ("tcp",),
    "till": ("http", "command", "operator", "process"),
}
ADDRESS_FORMS: dict[str, tuple[re.Pattern[str], str]] = {
    "tcp": (re.compile(r"^[A-Za-z0-9_.-]*:\d{1,5}$"),
            "HOST:PORT or NODE:PORT, e.g. 'terminal:20007' or '192.0.2.10:9100'"),
    "serial": (re.compile(r"^(/dev/\S+|pty)$"), "a device path such as '/dev/ttyUSB0', or 'pty' for an emulated pty"),
    "usb": (re.compile(r"^[0-9a-fA-F]{4}:[0-9a-fA-F]{4}$"), "VENDOR:PRODUCT in hex, e.g. '04b8:0202'"),
    "http": (re.compile(r"^https?://\S+$"), "a URL such as 'http://127.0.0.1:8080'"),
    "command": (re.compile(r".+"), "a shell command"),
    "operator": (re.compile(r".*"), "anything (the operator is prompted)"),
    "process": (re.compile(r".*"), "anything (the harness starts the till itself)"),
}

DEVICE_KEYS = {
    "kind": "one of " + ", ".join(KINDS),
    "mode": "'emulated' or 'real'",
    "driver": "a registered driver name (defaults to the mode)",
    "transport": "how the device is reached",
    "address": "where the device is reached",
    "node": "the network namespace the emulated device runs in",
    "profile": "a device profile name",
    "options": "a mapping of driver options",
    "description": "free text",
    "nic": "bench only: the NIC of this machine the device is reached through (`posrig doctor` checks the route)",
    # till only: its lifecycle and what it can do (kept in `options`, where the till drivers read them)
    "launch": "till only: the command posrig starts the till with, inside the till's node",
    "stop": "till only: the command that stops the launched till (default SIGTERM)",
    "kill": "till only: the command that cuts the till's power (default SIGKILL)",
    "ready": "till only: a regular expression the launched till prints when ready",
    "capabilities": "till only: a list of abort, recover, journal, lifecycle",
}
TILL_KEYS = ("launch", "stop", "kill", "ready", "capabilities")
LINK_KEYS = {
    "ends": "a list of the two device names the link joins",
    "faultable": "true or false",
    "driver": "'emulated' (namespaces) or 'bench' (physical bridge)",
    "interfaces": "bench only: the two NICs bridged for this link, e.g. [eth1, eth2]",
    "bridge": "bench only: a session-long bridge posrig adopts and only faults (made by `posrig link up`), e.g. br-tt",
    "ports": "a mapping of protocol to TCP port watched on this link, e.g. {iso8583: 5000}",
    "faults": "a list of faults armed for the whole run, e.g. ['flap count=3 down_ms=200 every_ms=1000']",
    "tls": "a mapping: the link's ports carry TLS, e.g. {version: '1.3'} (see TLS_KEYS)",
    "description": "free text",
}
TLS_KEYS = {
    "version": "'1.2' or '1.3': what the emulated host and terminal speak (default '1.3')",
    "mode": "'passthrough': posrig sees TLS records only, stages request#N/response#N; 'terminate': the link "
            "node terminates and re-originates TLS and sees ISO 8583 (emulated rigs)",
    "tickets": "TLS 1.3 NewSessionTickets the server sends after a full and a resumed handshake, e.g. [2, 1] "
               "(OpenSSL's default), or one number for both",
    "keylog": "true: the emulated host writes its TLS secrets (SSLKEYLOGFILE format) to the evidence, so "
              "Wireshark decrypts the link's capture",
}
TLS_VERSIONS = ("1.2", "1.3")
TLS_MODES = ("passthrough", "terminate")
TOP_KEYS = {
    "name": "the rig's name",
    "description": "free text",
    "timing": "a mapping with 'scale'",
    "network": "a mapping with 'mode' and optional 'subnet'",
    "devices": "a mapping of device name to device",
    "links": "a mapping of link name to link",
    "labgrid": "a mapping with 'coordinator' (HOST:PORT) and 'place': the labgrid place this bench is",
}
LABGRID_KEYS = {
    "coordinator": "the labgrid coordinator, HOST:PORT, e.g. 'labgrid.lab:20408'",
    "place": "the labgrid place to acquire, e.g. 'pos-bench-3'",
    "resources": "a mapping of device or link name to the place's resource name(s), e.g. {printer: printer-serial, "
                 "terminal-host: [nic-a, nic-b]}",
    "power": "a mapping of device name to the place's power resource, e.g. {till: till-power}",
}
# labgrid place and resource names: letters, digits and '_', '-', '.' (labgrid allows more; posrig keeps these).
LABGRID_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class RigError(ValueError):
    """A rig file is wrong. The message names the file, the key, what was found and what was expected."""

    def __init__(self, path: str | Path, key: str, found: Any, expected: str, hint: str = ""):
        self.path, self.key, self.found, self.expected = str(path), key, found, expected
        msg = f"{path}: {key}: found {found!r}; expected {expected}"
        if hint:
            msg += f" ({hint})"
        super().__init__(msg)


@dataclass(frozen=True)
class Timing:
    """Scale for protocol timers: 1.0 on a physical bench, smaller on emulated runs."""

    scale: float = 1.0

    def seconds(self, nominal: float) -> float:
        """The scaled duration of a timer whose specified value is `nominal` seconds."""
        return nominal * self.scale


@dataclass(frozen=True)
class DeviceSpec:
    name: str
    kind: str
    mode: str
    driver: str
    transport: str | None
    address: str | None
    node: str
    profile: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    nic: str | None = None          # bench: the NIC this device is reached through

    @property
    def emulated(self) -> bool:
        return self.mode == "emulated"


@dataclass(frozen=True)
class LinkSpec:
    name: str
    ends: tuple[str, str]
    faultable: bool
    driver: str
    interfaces: tuple[str, ...] = ()
    ports: dict[str, int] = field(default_factory=dict)
    faults: tuple[Any, ...] = ()          # FaultSpecs armed for the whole run (parsed once, here)
    description: str = ""
    bridge: str | None = None             # bench: the session-long bridge to adopt (None: one per run)
    tls: LinkTls | None = None            # the link's ports carry TLS


@dataclass(frozen=True)
class LabgridSpec:
    """The labgrid place a rig is: acquired for the run, its resources mapped to devices (`harness.labgrid`)."""

    coordinator: str
    place: str
    resources: dict[str, tuple[str, ...]] = field(default_factory=dict)    # device/link -> resource name(s)
    power: dict[str, str] = field(default_factory=dict)                     # device -> power resource name


@dataclass(frozen=True)
class LinkTls:
    """TLS on a link's ports: what the emulated ends speak and what the engine assumes of the server."""

    version: str = "1.3"
    mode: str = "passthrough"
    tickets: tuple[int, int] = (2, 1)
    keylog: bool = False


@dataclass(frozen=True)
class Rig:
    name: str
    path: Path
    sha256: str
    timing: Timing
    network_mode: str
    devices: dict[str, DeviceSpec]
    links: dict[str, LinkSpec]
    description: str = ""
    labgrid: LabgridSpec | None = None

    def of_kind(self, kind: str) -> list[DeviceSpec]:
        return [d for d in self.devices.values() if d.kind == kind]

    @property
    def nodes(self) -> list[str]:
        """Namespace nodes the emulated topology needs (one per device node), in rig order."""
        seen: list[str] = []
        for d in self.devices.values():
            if d.node not in seen:
                seen.append(d.node)
        return seen


def _check_keys(path: Path, where: str, data: Any, allowed: dict[str, str]) -> dict:
    if not isinstance(data, dict):
        raise RigError(path, where, data, "a mapping")
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean '{close[0]}'?" if close else ""
            raise RigError(path, f"{where}.{key}" if where else str(key), key,
                           "one of: " + ", ".join(allowed), hint or "unknown key")
    return data


def _choice(path: Path, where: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        close = difflib.get_close_matches(str(value), choices, n=1)
        raise RigError(path, where, value, "one of: " + ", ".join(choices),
                       f"did you mean '{close[0]}'?" if close else "")
    return value


def _name(path: Path, where: str, value: Any, what: str = "") -> str:
    """`value` if it is a safe name (see NAME); else a RigError naming where it is and what it may be."""
    if not isinstance(value, str) or not NAME.match(value):
        raise RigError(path, where, value, (what + ": " if what else "") + NAME_RULE)
    return value


def _labgrid(path: Path, data: Any, raw_devices: dict, raw_links: dict) -> LabgridSpec:
    """The rig's `labgrid` block: which place, on which coordinator, and which of its resources serve what."""
    _check_keys(path, "labgrid", data, LABGRID_KEYS)
    coordinator = data.get("coordinator")
    if not isinstance(coordinator, str) or not re.match(r"^[A-Za-z0-9_.-]+:\d{1,5}$", coordinator) or \
            not 0 < int(coordinator.rpartition(":")[2]) < 65536:
        raise RigError(path, "labgrid.coordinator", coordinator, LABGRID_KEYS["coordinator"])
    place = data.get("place")
    if not isinstance(place, str) or not LABGRID_NAME.match(place):
        raise RigError(path, "labgrid.place", place, LABGRID_KEYS["place"] + " (letters, digits, '_', '-', '.')")
    resources: dict[str, tuple[str, ...]] = {}
    raw = data.get("resources", {}) or {}
    if not isinstance(raw, dict):
        raise RigError(path, "labgrid.resources", raw, LABGRID_KEYS["resources"])
    for user, names in raw.items():
        where = f"labgrid.resources.{user}"
        if user not in raw_devices and user not in raw_links:
            raise RigError(path, where, user, "a device or link named in the rig: " +
                           ", ".join([*map(str, raw_devices), *map(str, raw_links)]))
        names = [names] if isinstance(names, str) else names
        want = 2 if user in raw_links else 1
        if not isinstance(names, list) or len(names) != want or \
                not all(isinstance(n, str) and LABGRID_NAME.match(n) for n in names):
            raise RigError(path, where, names, "two NetworkInterface resource names, e.g. [nic-a, nic-b]"
                           if want == 2 else "one resource name of the place, e.g. printer-serial")
        resources[str(user)] = tuple(names)
    power = data.get("power", {}) or {}
    if not isinstance(power, dict):
        raise RigError(path, "labgrid.power", power, LABGRID_KEYS["power"])
    for device, name in power.items():
        where = f"labgrid.power.{device}"
        kind = (raw_devices.get(device) or {}).get("kind") if isinstance(raw_devices.get(device), dict) else None
        if kind not in ("till", "printer"):
            raise RigError(path, where, device, "the till or a printer named under 'devices' (what power can cut)")
        if not isinstance(name, str) or not LABGRID_NAME.match(name):
            raise RigError(path, where, name, "the place's power resource name, e.g. till-power")
    return LabgridSpec(coordinator=coordinator, place=place, resources=resources,
                       power={str(k): str(v) for k, v in power.items()})


def _device(path: Path, name: str, data: Any, labgrid_mapped: bool = False) -> DeviceSpec:
    where = f"devices.{name}"
    _check_keys(path, where, data, DEVICE_KEYS)
    if "kind" not in data:
        raise RigError(path, f"{where}.kind", None, DEVICE_KEYS["kind"], "missing key")
    kind = _choice(path, f"{where}.kind", data["kind"], KINDS)
    mode = _choice(path, f"{where}.mode", data.get("mode"), MODES)
    driver = _name(path, f"{where}.driver", data.get("driver", mode), DEVICE_KEYS["driver"])
    transport = data.get("transport")
    if transport is None and kind != "till":
        raise RigError(path, f"{where}.transport", None, "one of: " + ", ".join(TRANSPORTS[kind]), "missing key")
    if transport is not None:
        _choice(path, f"{where}.transport", transport, TRANSPORTS[kind])
    address = data.get("address")
    if address is not None:
        address = str(address)
        pattern, form = ADDRESS_FORMS[transport or "process"]
        if not pattern.match(address):
            raise RigError(path, f"{where}.address", address, form)
    elif mode == "real" and transport in ("tcp", "serial", "usb") and not labgrid_mapped:
        raise RigError(path, f"{where}.address", None, ADDRESS_FORMS[transport][1],
                       "a real device needs an address")
    options = data.get("options", {}) or {}
    if not isinstance(options, dict):
        raise RigError(path, f"{where}.options", options, "a mapping")
    options = {**options, **_till_keys(path, where, kind, data)}
    # Emulated printers sit beside the till (a USB, serial or LAN printer on the till's own segment).
    node = _name(path, f"{where}.node", data.get("node", "till" if kind == "printer" else name), DEVICE_KEYS["node"])
    profile = data.get("profile")
    if profile is not None:
        _name(path, f"{where}.profile", profile, DEVICE_KEYS["profile"])
    nic = data.get("nic")
    if nic is not None and (not isinstance(nic, str) or not INTERFACE.match(nic)):
        raise RigError(path, f"{where}.nic", nic, "a network interface name such as 'eth3'")
    return DeviceSpec(name=name, kind=kind, mode=mode, driver=driver, transport=transport, address=address,
                      node=node, profile=profile, options=options,
                      description=str(data.get("description", "")), nic=nic)


def _till_keys(path: Path, where: str, kind: str, data: dict) -> dict[str, Any]:
    """A till's lifecycle keys, checked (no command a shell would have to read), as driver options."""
    found = {k: data[k] for k in TILL_KEYS if k in data}
    if found and kind != "till":
        key = next(iter(found))
        raise RigError(path, f"{where}.{key}", key, f"a key of a {kind}", f"'{key}' is for tills only")
    caps = found.get("capabilities", data.get("options", {}).get("capabilities") if isinstance(
        data.get("options"), dict) else None)
    if caps is not None and (not isinstance(caps, list) or
                             not set(caps) <= {"abort", "recover", "journal", "lifecycle"}):
        raise RigError(path, f"{where}.capabilities", caps, DEVICE_KEYS["capabilities"])
    if kind == "till":
        # Imported here: the till package imports the device base, which imports this module.
        from harness.till.argv import TemplateError
        from harness.till.command import check_options

        options = {**(data.get("options") or {}), **found}
        try:
            check_options({k: v for k, v in options.items() if isinstance(v, str)})
        except TemplateError as exc:
            raise RigError(path, where, options, "till commands posrig can run without a shell", str(exc)) \
                from None
    return found


def _link(path: Path, name: str, data: Any, devices: dict[str, DeviceSpec], network_mode: str,
          labgrid_mapped: bool = False) -> LinkSpec:
    where = f"links.{name}"
    _check_keys(path, where, data, LINK_KEYS)
    ends = data.get("ends")
    if not isinstance(ends, list) or len(ends) != 2:
        raise RigError(path, f"{where}.ends", ends, LINK_KEYS["ends"])
    for i, end in enumerate(ends):
        if end not in devices:
            raise RigError(path, f"{where}.ends[{i}]", end, "a device named under 'devices': " + ", ".join(devices))
    faultable = data.get("faultable", False)
    if not isinstance(faultable, bool):
        raise RigError(path, f"{where}.faultable", faultable, "true or false")
    driver = data.get("driver", "emulated" if network_mode == "namespaces" else "bench")
    interfaces = data.get("interfaces", [])
    if driver == "bench" and not labgrid_mapped and (not isinstance(interfaces, list) or len(interfaces) != 2):
        raise RigError(path, f"{where}.interfaces", interfaces, LINK_KEYS["interfaces"])
    if not isinstance(interfaces, list):
        raise RigError(path, f"{where}.interfaces", interfaces, LINK_KEYS["interfaces"])
    for i, nic in enumerate(interfaces):
        if not isinstance(nic, str) or not INTERFACE.match(nic):
            raise RigError(path, f"{where}.interfaces[{i}]", nic, "a network interface name of 1-15 letters, "
                           "digits, '_', '-' or '.', e.g. 'eth1'")
    bridge = data.get("bridge")
    if bridge is not None and (driver != "bench" or not isinstance(bridge, str) or not INTERFACE.match(bridge)):
        raise RigError(path, f"{where}.bridge", bridge, LINK_KEYS["bridge"] + " (a bench link, an interface name)")
    ports = data.get("ports", {}) or {}
    if not isinstance(ports, dict) or not all(isinstance(v, int) and 0 < v < 65536 for v in ports.values()):
        raise RigError(path, f"{where}.ports", ports, LINK_KEYS["ports"])
    for protocol in ports:
        _name(path, f"{where}.ports", protocol, "a protocol")
    faults = data.get("faults", []) or []
    if not isinstance(faults, list):
        raise RigError(path, f"{where}.faults", faults, LINK_KEYS["faults"])
    if faults and not faultable:
        raise RigError(path, f"{where}.faults", faults, "no faults on a link with faultable: false")
    # Imported here, not at the top: the link package's interface imports the device base, which imports this.
    from harness.link.faults import FaultError, FaultSpec

    specs = []
    for i, fault in enumerate(faults):
        try:
            specs.append(FaultSpec.parse(fault) if isinstance(fault, str) else FaultSpec(**fault))
        except (FaultError, TypeError) as exc:
            raise RigError(path, f"{where}.faults[{i}]", fault, f"a fault such as 'drop 0210 host->terminal' ({exc})")\
                from None
    tls = _link_tls(path, where, data.get("tls"), ports, network_mode) if "tls" in data else None
    return LinkSpec(name=name, ends=(ends[0], ends[1]), faultable=faultable, driver=driver,
                    interfaces=tuple(str(i) for i in interfaces), ports=dict(ports), faults=tuple(specs),
                    description=str(data.get("description", "")), bridge=bridge, tls=tls)


def _link_tls(path: Path, where: str, data: Any, ports: dict[str, int], network_mode: str) -> LinkTls:
    """A link's `tls:` mapping, checked: version, mode, tickets; the link must name the ports it carries."""
    where = f"{where}.tls"
    _check_keys(path, where, data, TLS_KEYS)
    if not ports:
        raise RigError(path, f"{where}", data, "a link with `ports:` (TLS is recognised on the ports it watches)")
    version = data.get("version", "1.3")
    version = f"{version:.1f}" if isinstance(version, float) else version     # YAML reads 1.3 as a number
    _choice(path, f"{where}.version", version, TLS_VERSIONS)
    mode = _choice(path, f"{where}.mode", data.get("mode", "passthrough"), TLS_MODES)
    if mode == "terminate" and network_mode != "namespaces":
        raise RigError(path, f"{where}.mode", mode, "'passthrough' on a physical bench",
                       "terminating TLS is built for the emulated topology only")
    tickets = data.get("tickets", [2, 1])
    if isinstance(tickets, int) and not isinstance(tickets, bool):
        tickets = [tickets, tickets]
    if not (isinstance(tickets, list) and len(tickets) == 2
            and all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t <= 16 for t in tickets)):
        raise RigError(path, f"{where}.tickets", data.get("tickets"), TLS_KEYS["tickets"] + ", each 0-16")
    keylog = data.get("keylog", False)
    if not isinstance(keylog, bool):
        raise RigError(path, f"{where}.keylog", keylog, "true or false")
    return LinkTls(version=version, mode=mode, tickets=(tickets[0], tickets[1]), keylog=keylog)


def tls_between(rig: Rig, a: str, b: str | None = None) -> LinkTls | None:
    """The TLS settings of the link joining devices `a` and `b` (any link of `a` when `b` is None), or None."""
    for link in rig.links.values():
        if link.tls is not None and a in link.ends and (b is None or b in link.ends):
            return link.tls
    return None


def parse_rig(text: str, path: str | Path = "<rig>") -> Rig:
    """Parse and validate rig YAML text. Raises `RigError`."""
    path = Path(path)
    try:
        data = yaml.safe_load(text)
    except yaml.reader.ReaderError as exc:          # a control character: name it and its line, not a repr
        line = text[:exc.position].count("\n") + 1
        raise RigError(path, f"line {line}", f"character {chr(exc.character)!r}",
                       "YAML text without control characters") from None
    except RecursionError:
        raise RigError(path, "YAML", "nesting deeper than Python's recursion limit", "a rig a few levels deep") \
            from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "YAML"
        raise RigError(path, where, str(getattr(exc, "problem", exc)), "valid YAML") from None
    _check_keys(path, "", data, TOP_KEYS)
    name = _name(path, "name", data.get("name"), "the rig's name")
    timing = _check_keys(path, "timing", data.get("timing", {}) or {}, {"scale": "a number > 0 and <= 1"})
    scale = timing.get("scale", 1.0)
    if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not 0 < scale <= 1:
        raise RigError(path, "timing.scale", scale, "a number > 0 and <= 1")
    network = _check_keys(path, "network", data.get("network", {}) or {},
                          {"mode": "'namespaces' or 'bench'", "subnet": "an IPv4 /16 prefix"})
    network_mode = _choice(path, "network.mode", network.get("mode", "namespaces"), NETWORK_MODES)
    raw_devices = data.get("devices")
    if not isinstance(raw_devices, dict) or not raw_devices:
        raise RigError(path, "devices", raw_devices, "a mapping of device name to device")
    labgrid = None
    if data.get("labgrid") is not None:
        raw_links_ = data.get("links", {}) or {}
        labgrid = _labgrid(path, data["labgrid"], raw_devices, raw_links_ if isinstance(raw_links_, dict) else {})
    mapped = labgrid.resources if labgrid else {}
    # On a labgrid place a real device may take its address from the place (a resource named like it).
    devices = {_name(path, "devices", str(n), "a device name"): _device(path, str(n), d, labgrid is not None)
               for n, d in raw_devices.items()}
    for dev in devices.values():
        if network_mode == "namespaces" and dev.node == "link":
            raise RigError(path, f"devices.{dev.name}.node", "link", "any node name but 'link', the middle node "
                           "that joins the others")
    raw_links = data.get("links", {}) or {}
    if not isinstance(raw_links, dict):
        raise RigError(path, "links", raw_links, "a mapping of link name to link")
    links = {_name(path, "links", str(n), "a link name"): _link(path, str(n), d, devices, network_mode,
                                                                str(n) in mapped)
             for n, d in raw_links.items()}
    return Rig(name=name, path=path, sha256=hashlib.sha256(text.encode()).hexdigest(), timing=Timing(float(scale)),
               network_mode=network_mode, devices=devices, links=links,
               description=str(data.get("description", "")), labgrid=labgrid)


SHIPPED_RIGS = Path(__file__).resolve().parents[1] / "rigs"     # installed with the package (harness/rigs/)
DEFAULT_RIG = "emulated"


def shipped_rigs() -> dict[str, Path]:
    """Rigs installed with posrig, by name: {"emulated": .../harness/rigs/emulated.yaml}."""
    return {p.stem: p for p in sorted(SHIPPED_RIGS.glob("*.yaml"))}


def resolve_rig(chosen: str | Path | None, base: str | Path = ".") -> Path:
    """The rig file meant by `chosen`: a path (relative to `base`), or the name of a shipped rig ("emulated").
    With nothing chosen: `rigs/emulated.yaml` under `base` when there is one, else the shipped emulated rig."""
    base = Path(base)
    if chosen is None or str(chosen) == "":
        local = base / "rigs" / f"{DEFAULT_RIG}.yaml"
        return local if local.is_file() else shipped_rigs().get(DEFAULT_RIG, local)
    path = Path(chosen)
    if not path.is_absolute():
        path = base / path
    if path.is_file() or "/" in str(chosen) or str(chosen).endswith((".yaml", ".yml")):
        return path
    return shipped_rigs().get(str(chosen), path)


def load_rig(path: str | Path) -> Rig:
    """Load and validate a rig file (or a shipped rig by name). Raises `RigError` (also for a missing file)."""
    path = resolve_rig(path) if not Path(path).is_file() else Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        shipped = ", ".join(shipped_rigs()) or "none"
        raise RigError(path, "file", str(path), f"an existing rig file, or a shipped rig name ({shipped})") \
            from None
    except UnicodeDecodeError as exc:
        line = exc.object[:exc.start].count(b"\n") + 1
        raise RigError(path, f"line {line}", f"byte 0x{exc.object[exc.start]:02x} (offset {exc.start}), not UTF-8",
                       "a UTF-8 text file", "save the rig as UTF-8") from None
    except OSError as exc:
        raise RigError(path, "file", str(path), "a readable rig file", exc.strerror or str(exc)) from None
    return parse_rig(text, path)

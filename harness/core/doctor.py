"""`posrig doctor` and the preflight of `posrig run`: what a rig needs from this machine, and whether each thing
is ready.

Each check function takes the rig (and the options of the run) and yields `Check`s; a check is needed only when
the rig uses what it tests. `preflight()` turns the failed blocking checks into one line each (file, key, what
was found, what to do), so `posrig run` stops before building anything and `posrig doctor` shows the same.

On a physical bench (`network.mode: bench`, docs/bench.md) the `_bench_*` checks look at each device through the NIC
the rig names (`ip route get`; nothing is sent where the route is wrong or only the default route leads), ask the
printer its DLE EOT status, never open a ZVT session, and check bridges, br_netfilter/physdev, FIFOs and taps.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
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
    key: str = ""        # the rig key (or run option, "--till-profile") that calls for this check
    blocking: bool = True   # False: a run can go on without it (doctor warns)


@dataclass(frozen=True)
class Options:
    """What the run asks beyond the rig file."""

    till_profile: str | None = None


def _needs_net(rig: Rig) -> str:
    """The rig key that needs namespaces or netfilter ("" when none does)."""
    if rig.network_mode == "namespaces":
        return "network.mode"
    return next((f"links.{link.name}.faultable" for link in rig.links.values() if link.faultable), "")


def _privileges(rig: Rig, opts: Options) -> Iterator[Check]:
    key = _needs_net(rig)
    if not key:
        return
    caps = netns.capabilities()
    ok = bool(caps >> 12 & 1 and caps >> 21 & 1)
    who = ("root" if os.geteuid() == 0 else f"uid {os.geteuid()}") if netns.in_initial_user_ns() \
        else f"uid {os.geteuid()} in a user namespace"
    yield Check("privileges", ok, f"{who} with CAP_NET_ADMIN and CAP_SYS_ADMIN" if ok else
                f"needs CAP_NET_ADMIN and CAP_SYS_ADMIN, which {who} lacks: {netns.ENABLE_HINT}", key)


def _namespaces(rig: Rig, opts: Options) -> Iterator[Check]:
    if rig.network_mode != "namespaces":
        return
    ok, how = netns.probe()
    yield Check("network namespaces", ok, f"can be built ({how})" if ok else
                f"'namespaces' needs network namespaces, which cannot be built here: {how}", "network.mode")


def _nfqueue(rig: Rig, opts: Options) -> Iterator[Check]:
    faultable = [link for link in rig.links.values() if link.faultable]
    if not faultable:
        return
    key = f"links.{faultable[0].name}.faultable"
    if not shutil.which("iptables"):
        yield Check("iptables", False, "true, but iptables is missing here: apt-get install iptables", key)
        return
    yield Check("iptables", True, shutil.which("iptables") or "", key)
    if not netns.probe()[0]:
        yield Check("iptables NFQUEUE", False, "not checked: testing it needs a network namespace", key,
                    blocking=False)
        return
    # Try the exact rule kind the link engine uses, in a throwaway namespace (never on this machine's own rules).
    p = subprocess.run(["unshare", "--net", "--", "iptables", "-A", "FORWARD", "-p", "tcp", "-j", "NFQUEUE",
                        "--queue-num", "1", "--queue-bypass"], capture_output=True, text=True)
    yield Check("iptables NFQUEUE", p.returncode == 0, "the kernel accepts -j NFQUEUE --queue-bypass"
                if p.returncode == 0 else f"rejected: {p.stderr.strip()} (needs CONFIG_NETFILTER_XT_TARGET_NFQUEUE)",
                key)
    for module, package in (("netfilterqueue", "NetfilterQueue (needs libnetfilter-queue-dev)"),
                            ("scapy", "scapy")):
        try:
            importlib.import_module(module)
            yield Check(f"python module {module}", True, "importable", key)
        except ImportError as exc:
            yield Check(f"python module {module}", False, f"{exc}: pip install {package}", key)


def _drivers(rig: Rig, opts: Options) -> Iterator[Check]:
    users: dict[tuple[str, str], list[str]] = {}
    for spec in [*rig.devices.values(), *rig.links.values()]:
        where = f"devices.{spec.name}" if hasattr(spec, "kind") else f"links.{spec.name}"
        users.setdefault((getattr(spec, "kind", "link"), spec.driver), []).append(where)
    for (kind, driver), wheres in users.items():
        key = f"{wheres[0]}.driver"
        try:
            lookup(kind, driver)
            yield Check(f"driver {kind}.{driver}", True, "for " + ", ".join(w.split(".", 1)[1] for w in wheres), key)
        except DriverError as exc:
            yield Check(f"driver {kind}.{driver}", False, f"found {driver!r}: {exc}", key)


def _profiles(rig: Rig, opts: Options) -> Iterator[Check]:
    """The reference till's profile (the run's --till-profile, $POSRIG_TILL_PROFILE, else the rig's) and the
    emulated printers' profiles exist."""
    from harness.printer.profiles import get_profile
    from harness.reference_till.profiles import profile

    chosen = opts.till_profile or os.environ.get("POSRIG_TILL_PROFILE")
    tills = [d for d in rig.of_kind("till") if d.driver == "reference"]
    if chosen and not tills:
        drivers = ", ".join(f"{d.name} ({d.driver})" for d in rig.of_kind("till")) or "none"
        yield Check("till profile", False, f"found {chosen!r}, but the rig's till is not the reference till "
                    f"(tills: {drivers}); drop --till-profile", "--till-profile")
    for d in tills:
        key = "--till-profile" if chosen else f"devices.{d.name}.profile"
        name = chosen or (d.options or {}).get("profile") or d.profile or "correct"
        try:
            profile(name)
            yield Check(f"till profile ({d.name})", True, name, key)
        except ValueError as exc:
            yield Check(f"till profile ({d.name})", False, f"{exc}; choose one of those", key)
    for d in rig.of_kind("printer"):
        if d.mode != "emulated":
            continue
        name = d.profile or (d.options or {}).get("profile")
        try:
            get_profile(name)
        except ValueError as exc:
            yield Check(f"printer profile ({d.name})", False, f"{exc}; choose one of those",
                        f"devices.{d.name}.profile")


def _ports(rig: Rig, opts: Options) -> Iterator[Check]:
    """Emulated devices on a physical bench listen on this machine: their address must be here and free.
    (In namespaces every node is a fresh network stack: nothing to check.)"""
    if rig.network_mode == "namespaces":
        return
    for d in rig.devices.values():
        if d.mode != "emulated" or d.transport != "tcp" or not d.address:
            continue
        host, port = parse_hostport(d.address)
        try:
            socket.inet_aton(host or "0.0.0.0")
        except OSError:
            continue                                  # a node or host name: resolved by the bench, not here
        key, label = f"devices.{d.name}.address", f"port {d.address} ({d.name})"
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)    # as the devices bind: TIME_WAIT is no user
            try:
                s.bind((host or "0.0.0.0", port))
                yield Check(label, True, "free", key)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    what = f"found {d.address}, already in use: stop what listens there (`ss -ltnp 'sport = :{port}'`)"
                else:
                    what = f"found {d.address}, cannot listen there ({exc.strerror}): use an address of this machine"
                yield Check(label, False, what, key)


def _real_devices(rig: Rig, opts: Options) -> Iterator[Check]:
    for spec in rig.devices.values():
        if spec.mode != "real" or not spec.address:
            continue
        label = f"{spec.kind} {spec.name} ({spec.transport} {spec.address})"
        key = f"devices.{spec.name}.address"
        if spec.transport == "serial":
            yield dataclasses.replace(_serial_check(label, spec.address), key=key)
        elif spec.transport == "usb":
            yield dataclasses.replace(_usb_check(label, spec.address), key=key)
        elif spec.transport == "tcp" and rig.network_mode == "bench":
            continue                                  # `_bench_devices`: route first, then the protocol
        elif spec.transport == "tcp":
            try:
                with socket.create_connection(parse_hostport(spec.address), timeout=1.5):
                    yield Check(label, True, "accepts TCP connections", key)
            except OSError as exc:
                yield Check(label, False, f"not reachable: {exc}; check cabling, address and that it is on", key)


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


def _interfaces(rig: Rig, opts: Options) -> Iterator[Check]:
    for link in rig.links.values():
        for ifname in link.interfaces:
            present = _link_line(ifname) is not None      # `ip`, not /sys: right inside a network namespace too
            yield Check(f"interface {ifname} (link {link.name})", present,
                        "present" if present else f"no interface {ifname}; `ip link` lists the NICs here",
                        f"links.{link.name}.interfaces")


def _receipt_font(rig: Rig, opts: Options) -> Iterator[Check]:
    if not rig.of_kind("printer"):
        return
    from harness.printer.render import CJK_FONT, FONT_PACKAGE

    ok = os.path.exists(CJK_FONT)
    yield Check("receipt font (CJK)", ok, CJK_FONT if ok else
                f"{CJK_FONT} missing: apt-get install {FONT_PACKAGE} (Chinese receipts cannot be drawn)",
                f"devices.{rig.of_kind('printer')[0].name}", blocking=False)


def _leftovers(rig: Rig, opts: Options) -> Iterator[Check]:
    if not _needs_net(rig) or not netns.probe()[0]:
        return
    from harness.topology.reaper import leftovers

    found = leftovers()
    yield Check("leftovers of killed runs", not found, "none" if not found else
                f"{len(found)} ({', '.join(found[:3])}{', ...' if len(found) > 3 else ''}): inert; "
                "`posrig doctor --clean` (or the next `posrig run`) removes them", blocking=False)


def _labgrid(rig: Rig, opts: Options) -> Iterator[Check]:
    """The rig's labgrid place: the coordinator answers, the place exists and nobody else holds it."""
    if rig.labgrid is None:
        return
    from harness.labgrid.place import Place, PlaceError, PlaceHeld, running_here

    lab = rig.labgrid
    label = f"labgrid place {lab.place}"
    try:
        importlib.import_module("labgrid")
    except ImportError:
        yield Check(label, False, "labgrid is not installed: pip install 'posrig[labgrid]'", "labgrid")
        return
    try:
        place = Place(lab.coordinator, lab.place).show()
    except PlaceError as exc:
        yield Check(label, False, str(exc), "labgrid.place")
        return
    holder = place.get("acquired")
    other = running_here(Place(lab.coordinator, lab.place))
    if holder and holder != place.get("me") or other:
        who = holder if not other else f"{other['me']} (posrig pid {other['pid']} on this machine)"
        yield Check(label, False, str(PlaceHeld(lab.place, lab.coordinator, who)), "labgrid.place")
        return
    names = ", ".join(f"{r['name']} ({r['cls']})" for r in place.get("resources", [])) or "no resources"
    yield Check(label, True, f"{'acquired by you' if holder else 'free'} on {lab.coordinator}: {names}",
                "labgrid.place")


# -- a physical bench: each device through the NIC the rig names, at protocol level; bridges, taps, FIFOs ----------
# Nothing is sent to a device whose route is wrong (the default route would make an absent device look present).
BR_NETFILTER = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")     # there when br_netfilter is loaded

def _ip(*args: str) -> str | None:
    """`ip ARGS` output, or None when it fails (no such device, no route)."""
    try:
        p = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return p.stdout if p.returncode == 0 else None


def _link_line(ifname: str) -> str | None:
    return _ip("-o", "link", "show", "dev", ifname)


def route_to(address: str) -> dict[str, str]:
    """How this machine reaches `address` (`ip route get`): {'dev', 'via', 'local'} ('' when absent), or
    {'error': ...} when it cannot."""
    out = _ip("-o", "route", "get", address)
    if out is None:
        return {"error": "no route (network unreachable)"}
    words = out.split()
    def after(word: str) -> str:
        return words[words.index(word) + 1] if word in words[:-1] else ""
    return {"dev": after("dev"), "via": after("via"), "local": "yes" if words[:1] == ["local"] else ""}


def _bench_ip(address: str | None) -> str | None:
    """The IPv4 part of HOST:PORT, or None for a name, a path or no address."""
    if not address or ":" not in address:
        return None
    host = address.rsplit(":", 1)[0]
    try:
        socket.inet_aton(host)
    except OSError:
        return None
    return host if host.count(".") == 3 else None


def _behind_bench_link(rig: Rig, name: str) -> str | None:
    """The bench link whose other end is a till, when device `name` sits behind it (reached by the till, not by
    posrig: a terminal behind posrig's own bridge)."""
    for link in rig.links.values():
        if link.driver == "bench" and name in link.ends and any(
                rig.devices[e].kind == "till" for e in link.ends if e in rig.devices and e != name):
            return link.name
    return None


def _route_check(rig: Rig, name: str, ip: str, nic: str | None, label: str, key: str) -> Check | None:
    """None when `ip` is reached through `nic` (or, with no NIC named, directly on some NIC); else the failed
    check. Never sends anything to the device."""
    r = route_to(ip)
    if "error" in r:
        return Check(label, False, f"{ip}: {r['error']}; cable its NIC and give that NIC an address on "
                     f"{ip}'s network (devices.{name}.nic names it)", key)
    if nic and r["dev"] != nic:
        how = f"via {r['via']} dev {r['dev']}" if r["via"] else f"dev {r['dev']}"
        return Check(label, False, f"{ip} would leave through {how}, not {nic} (devices.{name}.nic): "
                     "nothing sent; fix the NIC's address or the rig", key)
    if not nic and r["via"]:
        return Check(label, False, f"{ip} is reached only through the default route (via {r['via']} dev "
                     f"{r['dev']}): an absent device would look present; nothing sent. Cable it to a NIC of this "
                     f"machine and name that NIC in devices.{name}.nic", key)
    return None


def _bench_devices(rig: Rig, opts: Options) -> Iterator[Check]:
    """Every TCP device of a bench rig: the route to it first, then a protocol-level check (printer: DLE EOT
    status; terminal: a TCP port check only, never a ZVT session; posrig's own host: its listen address is on this
    machine)."""
    if rig.network_mode != "bench":
        return
    for d in rig.devices.values():
        ip = _bench_ip(d.address) if d.transport == "tcp" else None
        if ip is None:
            continue
        nic = d.nic
        label, key = f"{d.kind} {d.name} ({d.address})", f"devices.{d.name}.address"
        if d.mode == "emulated":          # posrig listens there: `_ports` says if it can; here, on which NIC
            if ip.startswith("127.") or not _can_listen(ip):
                continue
            owner = next((line.split()[1] for line in (_ip("-o", "-4", "addr", "show") or "").splitlines()
                          if f" {ip}/" in line), "")
            if nic and owner and owner != nic:
                yield Check(label, False, f"{ip} is on {owner}, not {nic} (devices.{d.name}.nic)", key)
                continue
            master = _master(owner) if owner else None
            if master:
                yield Check(label, False, f"{ip} is on {owner}, which is enslaved to bridge {master}: traffic to it "
                            "is bridged, never delivered here; put the address on another NIC (or a veth whose "
                            "peer joins the bridge)", key)
                continue
            yield Check(label, True, f"listen address on this machine ({owner or 'local'})", key)
            continue
        behind = _behind_bench_link(rig, d.name)
        if behind and not nic:
            yield Check(label, True, f"reached by the till through bench link {behind}; posrig does not connect "
                        "(no ECR session of its own: the terminal's record is decoded from that link's capture)",
                        key)
            continue
        bad = _route_check(rig, d.name, ip, nic, label, key)
        if bad is not None:
            yield bad
            continue
        yield _protocol_check(d, label, key)


def _can_listen(ip: str) -> bool:
    """`ip` is an address of this machine (a socket can be bound to it; `_ports` reports it otherwise)."""
    with socket.socket() as s:
        try:
            s.bind((ip, 0))
            return True
        except OSError:
            return False


def _master(ifname: str) -> str | None:
    line = _link_line(ifname) or ""
    words = line.split()
    return words[words.index("master") + 1] if "master" in words[:-1] else None


def _protocol_check(d, label: str, key: str) -> Check:
    """A device whose route is right, asked at protocol level without disturbing the till."""
    if d.kind == "printer":
        from harness.printer.real import StatusError, read_status

        try:
            st = read_status("tcp", d.address, timeout=1.5)
        except (StatusError, OSError) as exc:
            return Check(label, False, f"no ESC/POS status (DLE EOT): {exc}", key)
        flags = [k for k in ("cover_open", "error", "mechanical_error") if st.get(k)]
        return Check(label, not flags and st.get("online", True),
                     "answers DLE EOT: online, ready" if not flags else f"answers DLE EOT: {', '.join(flags)}", key)
    try:
        with socket.create_connection(parse_hostport(d.address), timeout=1.5) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")   # closed at once by RST
        return Check(label, True, "port open (connection closed at once, nothing sent)", key)
    except OSError as exc:
        return Check(label, False, f"not reachable: {exc}; check cabling, address and that it is on", key)


def _bench_bridges(rig: Rig, opts: Options) -> Iterator[Check]:
    """Each bench link's NICs: present, not enslaved elsewhere; the session bridge the rig names exists."""
    for link in rig.links.values():
        if link.driver != "bench":
            continue
        key = f"links.{link.name}"
        for nic in link.interfaces:
            master = _master(nic) if _link_line(nic) is not None else None
            if master and master != link.bridge:
                yield Check(f"NIC {nic} (link {link.name})", False, f"already enslaved to {master}: name it as "
                            f"{key}.bridge to adopt it, or free it (`ip link set {nic} nomaster`)",
                            f"{key}.interfaces")
        if link.bridge:
            ok = _link_line(link.bridge) is not None
            yield Check(f"bridge {link.bridge} (link {link.name})", ok, "present (adopted, only faulted)" if ok else
                        f"does not exist: `posrig link up --rig {rig.path} {link.name}` makes it", f"{key}.bridge")


def _bench_netfilter(rig: Rig, opts: Options) -> Iterator[Check]:
    """A faultable bench link needs br_netfilter (bridged packets through iptables) and the physdev match."""
    faultable = [link for link in rig.links.values() if link.driver == "bench" and link.faultable]
    if not faultable:
        return
    key = f"links.{faultable[0].name}.faultable"
    ok = BR_NETFILTER.exists()
    yield Check("br_netfilter", ok, "loaded" if ok else "not loaded: `modprobe br_netfilter` (bridged packets "
                "never reach iptables, so no fault can fire)", key)
    if not shutil.which("iptables") or not shutil.which("unshare"):
        return
    p = subprocess.run(["unshare", "--net", "--", "iptables", "-A", "FORWARD", "-m", "physdev", "--physdev-in",
                        "x", "-j", "ACCEPT"], capture_output=True, text=True)
    yield Check("iptables physdev", p.returncode == 0, "match available" if p.returncode == 0 else
                f"rejected: {p.stderr.strip()} (needs CONFIG_NETFILTER_XT_MATCH_PHYSDEV)", key)


def _operator_fifos(rig: Rig, opts: Options) -> Iterator[Check]:
    """The operator till's console: FIFOs that exist, or a folder where posrig can make them."""
    for d in rig.of_kind("till"):
        if d.driver != "operator":
            continue
        for opt in ("input", "output"):
            path = str((d.options or {}).get(opt, "/dev/tty"))
            label, key = f"operator {opt} {path}", f"devices.{d.name}.options.{opt}"
            try:
                mode = os.stat(path).st_mode
            except FileNotFoundError:
                parent = Path(path).parent
                ok = parent.is_dir() and os.access(parent, os.W_OK)
                yield Check(label, ok, "missing; posrig makes the FIFO at start" if ok else
                            f"missing, and {parent} is not a folder posrig can write to: make the FIFO "
                            f"(`mkfifo {path}`) or fix the path", key)
                continue
            except OSError as exc:
                yield Check(label, False, f"cannot be read: {exc.strerror}", key)
                continue
            ok = stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)
            yield Check(label, ok, "FIFO" if stat.S_ISFIFO(mode) else "terminal device" if ok else
                        "is a regular file or folder, not a FIFO: remove it and let posrig make the FIFO", key)


def _printer_taps(rig: Rig, opts: Options) -> Iterator[Check]:
    """A tap needs a TCP or serial printer (USB is status only) and an address of this machine to listen on."""
    for d in rig.of_kind("printer"):
        tap = (d.options or {}).get("tap")
        if d.mode != "real" or not tap:
            continue
        label, key = f"printer tap {tap}", f"devices.{d.name}.options.tap"
        if d.transport == "usb":
            yield Check(label, False, "a tap forwards to a TCP or serial printer; a USB printer's status is read, "
                        "its receipts cannot be tapped: drop options.tap or cable the printer by LAN/serial", key)
            continue
        ip = _bench_ip(str(tap))
        if ip and ip != "0.0.0.0" and not _can_listen(ip):
            yield Check(label, False, f"{ip} is not an address of this machine: the tap listens on the NIC "
                        "facing the till; give that NIC this address", key)
        else:
            yield Check(label, True, "listens on this machine", key)


CHECKS: list[Callable[[Rig, Options], Iterator[Check]]] = [
    _privileges, _namespaces, _nfqueue, _drivers, _profiles, _ports, _real_devices, _interfaces, _receipt_font,
    _leftovers, _labgrid, _bench_devices, _bench_bridges, _bench_netfilter, _operator_fifos, _printer_taps,
]


def diagnose(rig: Rig, opts: Options | None = None) -> list[Check]:
    """Run every check the rig (and the run's options) call for."""
    opts = opts or Options()
    checks: list[Check] = []
    for fn in CHECKS:
        with contextlib.suppress(StopIteration):
            checks.extend(fn(rig, opts))
    return checks


def problem_line(rig: Rig, check: Check) -> str:
    """One line for a failed check: the file and key that call for it, what was found, what to do."""
    if check.key.startswith("--"):
        return f"{check.key}: {check.detail}"
    return f"{rig.path}: {check.key or check.name}: {check.detail}"


def preflight(rig: Rig, opts: Options | None = None) -> list[str]:
    """The blocking problems of this machine for this rig, one line each; empty when a run can start."""
    failed = [c for c in diagnose(rig, opts) if not c.ok and c.blocking]
    if any(c.name == "privileges" for c in failed):            # its line says why namespaces cannot be built
        failed = [c for c in failed if c.name != "network namespaces"]
    return [problem_line(rig, c) for c in failed]

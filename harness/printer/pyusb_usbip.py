"""A pyusb backend that reaches USB devices over USB/IP (TCP), written here (no licence-less dependency).

    import usb.core
    from harness.printer.pyusb_usbip import get_backend
    dev = usb.core.find(idVendor=0x04B8, idProduct=0x0202, backend=get_backend("127.0.0.1", 3240))

python-escpos works unchanged: `Usb(0x04B8, 0x0202, usb_args={"backend": get_backend(host, port)})`.

The wire protocol (Linux `Documentation/usb/usbip_protocol.rst`): OP_REQ_DEVLIST / OP_REQ_IMPORT, then 48-byte
USBIP_CMD_SUBMIT / RET_SUBMIT headers for every transfer (control on endpoint 0 with its 8-byte SETUP), and
CMD_UNLINK / RET_UNLINK to cancel a transfer that timed out (a bulk IN the device NAKs). Device and configuration
descriptors are fetched once at enumeration (import, GET_DESCRIPTOR, disconnect); `open_device` imports again
and keeps that connection. `reset_device` is a no-op (USB/IP has no port reset for an importer).
"""

from __future__ import annotations

import array
import contextlib
import socket
import struct
import threading
from dataclasses import dataclass
from types import SimpleNamespace

import usb.backend
import usb.core

VERSION = 0x0111
OP_REQ_DEVLIST, OP_REP_DEVLIST, OP_REQ_IMPORT, OP_REP_IMPORT = 0x8005, 0x0005, 0x8003, 0x0003
CMD_SUBMIT, CMD_UNLINK, RET_SUBMIT, RET_UNLINK = 1, 2, 3, 4
DIR_OUT, DIR_IN = 0, 1
USB_DEVICE = struct.Struct(">256s32sIIIHHHBBBBBB")      # struct usbip_usb_device, 312 bytes
HEADER = struct.Struct(">IIIIIiiiii8s")                  # basic (5 x u32) + 5 x i32 + setup = 48 bytes
ETIMEDOUT, EPIPE = 110, 32


class UsbipError(usb.core.USBError):
    """The USB/IP server refused or broke a request."""


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise UsbipError(f"USB/IP server closed the connection ({len(buf)} of {n} bytes received)")
        buf += chunk
    return bytes(buf)


class UsbipConnection:
    """One TCP connection to a USB/IP server: list, import, submit (with timeout + unlink)."""

    def __init__(self, host: str, port: int, connect_timeout: float = 5.0):
        self.sock = socket.create_connection((host, port), timeout=connect_timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.devid = 0
        self._seq = 0
        self._lock = threading.Lock()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def _op(self, code: int, payload: bytes = b"") -> None:
        self.sock.sendall(struct.pack(">HHI", VERSION, code, 0) + payload)
        _version, _code, status = struct.unpack(">HHI", _recv_exact(self.sock, 8))
        if status != 0:
            raise UsbipError(f"USB/IP request 0x{code:04x} refused (status {status})")

    def devlist(self) -> list[dict]:
        self._op(OP_REQ_DEVLIST)
        (count,) = struct.unpack(">I", _recv_exact(self.sock, 4))
        out = []
        for _ in range(count):
            info = _parse_device(_recv_exact(self.sock, USB_DEVICE.size))
            info["interfaces"] = [struct.unpack(">BBBB", _recv_exact(self.sock, 4))[:3]
                                  for _ in range(info["bNumInterfaces"])]
            out.append(info)
        return out

    def import_device(self, busid: str) -> dict:
        self._op(OP_REQ_IMPORT, busid.encode().ljust(32, b"\0"))
        info = _parse_device(_recv_exact(self.sock, USB_DEVICE.size))
        self.devid = info["busnum"] << 16 | info["devnum"]
        return info

    def submit(self, ep: int, direction: int, length: int, data: bytes = b"", setup: bytes = bytes(8),
               timeout_ms: int | None = None) -> tuple[int, bytes]:
        """One transfer; returns (status, IN data). Raises USBTimeoutError after unlinking on timeout."""
        with self._lock:
            self._seq += 1
            seq = self._seq
            hdr = HEADER.pack(CMD_SUBMIT, seq, self.devid, direction, ep, 0, length, 0, 0, 0, setup)
            self.sock.settimeout(None)
            self.sock.sendall(hdr + (data if direction == DIR_OUT else b""))
            self.sock.settimeout(timeout_ms / 1000 if timeout_ms else None)
            try:
                return self._await(seq)
            except TimeoutError:
                self.sock.settimeout(5.0)
                return self._unlink(seq, ep, direction)
            finally:
                self.sock.settimeout(None)

    def _read_ret(self) -> tuple[int, int, int, bytes]:
        raw = _recv_exact(self.sock, 48)
        command, seq, _devid, direction, _ep, status, actual, _sf, _np, _ec, _pad = HEADER.unpack(raw)
        data = b""
        if command == RET_SUBMIT and direction == DIR_IN and actual > 0:
            data = _recv_exact(self.sock, actual)
        return command, seq, status, data

    def _await(self, seq: int) -> tuple[int, bytes]:
        while True:
            command, got, status, data = self._read_ret()
            if command == RET_SUBMIT and got == seq:
                return status, data

    def _unlink(self, seq: int, ep: int, direction: int) -> tuple[int, bytes]:
        self._seq += 1
        self.sock.sendall(HEADER.pack(CMD_UNLINK, self._seq, self.devid, direction, ep, seq, 0, 0, 0, 0,
                                      bytes(8)))
        late = None
        while True:
            command, got, status, data = self._read_ret()
            if command == RET_SUBMIT and got == seq:
                late = (status, data)            # completed before the unlink reached the device
            elif command == RET_UNLINK:
                break
        if late is not None:
            return late
        raise usb.core.USBTimeoutError("Operation timed out (USB/IP transfer unlinked)", -7, ETIMEDOUT)

    def control(self, bm: int, req: int, value: int, index: int, data_or_len, timeout_ms=None) -> bytes | int:
        if bm & 0x80:
            length = int(data_or_len)
            setup = struct.pack("<BBHHH", bm, req, value, index, length)
            status, data = self.submit(0, DIR_IN, length, setup=setup, timeout_ms=timeout_ms)
            _check(status, "control IN")
            return data
        payload = bytes(data_or_len or b"")
        setup = struct.pack("<BBHHH", bm, req, value, index, len(payload))
        status, _ = self.submit(0, DIR_OUT, len(payload), payload, setup, timeout_ms)
        _check(status, "control OUT")
        return len(payload)


def _check(status: int, what: str) -> None:
    if status == -EPIPE:
        raise usb.core.USBError(f"{what}: pipe error (stall)", -9, EPIPE)
    if status != 0:
        raise usb.core.USBError(f"{what}: status {status}", status, abs(status))


def _parse_device(raw: bytes) -> dict:
    (path, busid, busnum, devnum, speed, vid, pid, bcd, dcls, dsub, dproto, cfg, ncfg, nif) = USB_DEVICE.unpack(raw)
    return {"path": path.split(b"\0")[0].decode(errors="replace"),
            "busid": busid.split(b"\0")[0].decode(errors="replace"), "busnum": busnum, "devnum": devnum,
            "speed": speed, "idVendor": vid, "idProduct": pid, "bcdDevice": bcd, "bDeviceClass": dcls,
            "bDeviceSubClass": dsub, "bDeviceProtocol": dproto, "bConfigurationValue": cfg,
            "bNumConfigurations": ncfg, "bNumInterfaces": nif}


@dataclass
class RemoteDevice:
    """What enumeration learnt about one exported device."""

    info: dict
    device: bytes
    config: bytes


class _Handle:
    def __init__(self, conn: UsbipConnection, dev: RemoteDevice):
        self.conn = conn
        self.dev = dev


def _walk(blob: bytes):
    i = 0
    while i + 2 <= len(blob) and blob[i] >= 2:
        yield blob[i:i + blob[i]]
        i += blob[i]


class UsbipBackend(usb.backend.IBackend):
    """pyusb backend over USB/IP. Each device is found by enumeration over a short-lived import."""

    def __init__(self, host: str = "127.0.0.1", port: int = 3240, timeout: float = 5.0):
        self.host, self.port, self.timeout = host, port, timeout

    def __repr__(self) -> str:
        return f"UsbipBackend({self.host}:{self.port})"

    def _connect(self) -> UsbipConnection:
        try:
            return UsbipConnection(self.host, self.port, self.timeout)
        except OSError as exc:
            raise usb.core.USBError(f"cannot reach the USB/IP server at {self.host}:{self.port}: {exc}; "
                                    "is the emulated printer (or usbipd) running?", None, exc.errno) from exc

    # -- enumeration -----------------------------------------------------------------------------
    def enumerate_devices(self):
        conn = self._connect()
        try:
            exported = conn.devlist()
        finally:
            conn.close()
        for info in exported:
            conn = self._connect()
            try:
                conn.import_device(info["busid"])
                device = bytes(conn.control(0x80, 6, 0x0100, 0, 18, 2000))
                head = bytes(conn.control(0x80, 6, 0x0200, 0, 9, 2000))
                total = struct.unpack_from("<H", head, 2)[0]
                config = bytes(conn.control(0x80, 6, 0x0200, 0, total, 2000))
            finally:
                conn.close()
            yield RemoteDevice(info, device, config)

    def get_device_descriptor(self, dev: RemoteDevice):
        f = dict(zip(("bLength", "bDescriptorType", "bcdUSB", "bDeviceClass", "bDeviceSubClass",
                      "bDeviceProtocol", "bMaxPacketSize0", "idVendor", "idProduct", "bcdDevice",
                      "iManufacturer", "iProduct", "iSerialNumber", "bNumConfigurations"),
                     struct.unpack("<BBHBBBBHHHBBBB", dev.device[:18]), strict=True))
        f.update(bus=dev.info["busnum"], address=dev.info["devnum"], port_number=None, port_numbers=None,
                 speed=dev.info["speed"])
        return SimpleNamespace(**f)

    def get_configuration_descriptor(self, dev: RemoteDevice, config: int):
        c = dev.config
        f = dict(zip(("bLength", "bDescriptorType", "wTotalLength", "bNumInterfaces", "bConfigurationValue",
                      "iConfiguration", "bmAttributes", "bMaxPower"), struct.unpack("<BBHBBBBB", c[:9]),
                     strict=True))
        f["extra_descriptors"] = []
        return SimpleNamespace(**f)

    def _interfaces(self, dev: RemoteDevice) -> list[tuple[bytes, list[bytes]]]:
        found: list[tuple[bytes, list[bytes]]] = []
        for d in _walk(dev.config[9:]):
            if d[1] == 4:
                found.append((d, []))
            elif d[1] == 5 and found:
                found[-1][1].append(d)
        return found

    def get_interface_descriptor(self, dev: RemoteDevice, intf: int, alt: int, config: int):
        for d, _eps in self._interfaces(dev):
            if d[2] == intf and d[3] == alt:
                f = dict(zip(("bLength", "bDescriptorType", "bInterfaceNumber", "bAlternateSetting",
                              "bNumEndpoints", "bInterfaceClass", "bInterfaceSubClass", "bInterfaceProtocol",
                              "iInterface"), struct.unpack("<BBBBBBBBB", d[:9]), strict=True))
                f["extra_descriptors"] = []
                return SimpleNamespace(**f)
        raise IndexError(f"no interface {intf} alt {alt}")

    def get_endpoint_descriptor(self, dev: RemoteDevice, ep: int, intf: int, alt: int, config: int):
        for d, eps in self._interfaces(dev):
            if d[2] == intf and d[3] == alt:
                e = eps[ep]
                f = dict(zip(("bLength", "bDescriptorType", "bEndpointAddress", "bmAttributes",
                              "wMaxPacketSize", "bInterval"), struct.unpack("<BBBBHB", e[:7]), strict=True))
                f.update(bRefresh=0, bSynchAddress=0, extra_descriptors=[])
                return SimpleNamespace(**f)
        raise IndexError(f"no endpoint {ep} on interface {intf}")

    # -- handle ------------------------------------------------------------------------------------
    def open_device(self, dev: RemoteDevice) -> _Handle:
        conn = self._connect()
        try:
            conn.import_device(dev.info["busid"])
        except Exception:
            conn.close()
            raise
        return _Handle(conn, dev)

    def close_device(self, dev_handle: _Handle) -> None:
        dev_handle.conn.close()

    def set_configuration(self, dev_handle: _Handle, config_value: int) -> None:
        dev_handle.conn.control(0x00, 0x09, config_value, 0, b"", 2000)

    def get_configuration(self, dev_handle: _Handle) -> int:
        return dev_handle.conn.control(0x80, 0x08, 0, 0, 1, 2000)[0]

    def set_interface_altsetting(self, dev_handle: _Handle, intf: int, altsetting: int) -> None:
        dev_handle.conn.control(0x01, 0x0B, altsetting, intf, b"", 2000)

    def claim_interface(self, dev_handle: _Handle, intf: int) -> None:
        pass

    def release_interface(self, dev_handle: _Handle, intf: int) -> None:
        pass

    def _write(self, dev_handle: _Handle, ep: int, data, timeout: int) -> int:
        payload = bytes(data)
        status, _ = dev_handle.conn.submit(ep & 0x0F, DIR_OUT, len(payload), payload, timeout_ms=timeout)
        _check(status, f"write to endpoint 0x{ep:02x}")
        return len(payload)

    def _read(self, dev_handle: _Handle, ep: int, buff, timeout: int) -> int:
        status, data = dev_handle.conn.submit(ep & 0x0F, DIR_IN, len(buff), timeout_ms=timeout)
        _check(status, f"read from endpoint 0x{ep:02x}")
        n = min(len(data), len(buff))
        buff[:n] = array.array("B", data[:n])
        return n

    def bulk_write(self, dev_handle, ep, intf, data, timeout):
        return self._write(dev_handle, ep, data, timeout)

    def bulk_read(self, dev_handle, ep, intf, buff, timeout):
        return self._read(dev_handle, ep, buff, timeout)

    def intr_write(self, dev_handle, ep, intf, data, timeout):
        return self._write(dev_handle, ep, data, timeout)

    def intr_read(self, dev_handle, ep, intf, buff, timeout):
        return self._read(dev_handle, ep, buff, timeout)

    def ctrl_transfer(self, dev_handle, bmRequestType, bRequest, wValue, wIndex, data, timeout):
        if bmRequestType & 0x80:
            got = dev_handle.conn.control(bmRequestType, bRequest, wValue, wIndex, len(data), timeout)
            n = min(len(got), len(data))
            data[:n] = array.array("B", got[:n])
            return n
        return dev_handle.conn.control(bmRequestType, bRequest, wValue, wIndex, bytes(data), timeout)

    def clear_halt(self, dev_handle, ep):
        dev_handle.conn.control(0x02, 0x01, 0, ep, b"", 2000)

    def reset_device(self, dev_handle):
        pass

    def is_kernel_driver_active(self, dev_handle, intf):
        return False

    def detach_kernel_driver(self, dev_handle, intf):
        pass

    def attach_kernel_driver(self, dev_handle, intf):
        pass


def get_backend(host: str = "127.0.0.1", port: int = 3240) -> UsbipBackend:
    """A pyusb backend for the USB/IP server at host:port."""
    return UsbipBackend(host, port)

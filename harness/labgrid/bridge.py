"""A labgrid `NetworkSerialPort` as a local serial port: a pty whose slave path (e.g. /dev/pts/9) posrig's
drivers open like any serial device, pumped both ways to the exporter's ser2net over RFC 2217 (pyserial's
client, with labgrid's own URL options: `ign_set_control`, as ser2net on a pty does not answer line control).

    bridge = SerialBridge("127.0.0.1", 41234, speed=9600); bridge.start()   # bridge.path -> "/dev/pts/9"
    ...; bridge.close()

The slave is kept open by the bridge, so clients may open and close it one after another; the RFC 2217
connection stays up for the run (one ser2net connection, as labgrid-client console keeps one).
"""

from __future__ import annotations

import contextlib
import os
import select
import termios
import threading
import tty
import warnings


class BridgeError(RuntimeError):
    """The exporter's serial port could not be reached."""


class SerialBridge:
    def __init__(self, host: str, port: int, speed: int = 115200, protocol: str = "rfc2217", poll: float = 0.05):
        self.host, self.port, self.speed, self.protocol, self.poll = host, int(port), int(speed), protocol, poll
        self.url = (f"rfc2217://{host}:{port}?ign_set_control&timeout=5" if protocol == "rfc2217"
                    else f"socket://{host}:{port}")
        self.master = self.slave = -1
        self.path = ""
        self.serial = None
        self.sent = self.received = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> SerialBridge:
        import serial

        try:
            with warnings.catch_warnings():          # pyserial's RFC 2217 client uses threading's old setters
                warnings.simplefilter("ignore", DeprecationWarning)
                self.serial = serial.serial_for_url(self.url, baudrate=self.speed, timeout=self.poll)
        except (serial.SerialException, OSError) as exc:
            raise BridgeError(f"cannot open the labgrid serial port {self.url}: {exc}; is the place acquired "
                              "and its exporter running?") from None
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        attrs = termios.tcgetattr(self.slave)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(self.slave, termios.TCSANOW, attrs)
        self.path = os.ttyname(self.slave)
        self._threads = [threading.Thread(target=self._local_to_remote, name="labgrid-bridge-out", daemon=True),
                         threading.Thread(target=self._remote_to_local, name="labgrid-bridge-in", daemon=True)]
        for t in self._threads:
            t.start()
        return self

    def _local_to_remote(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self.master], [], [], self.poll)
                if not ready:
                    continue
                data = os.read(self.master, 4096)
            except (OSError, ValueError):
                return
            if data:
                try:
                    self.serial.write(data)
                    self.serial.flush()
                except Exception:  # noqa: BLE001 - the exporter went away; the drivers see no replies
                    return
                self.sent += len(data)

    def _remote_to_local(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.serial.read(4096)
            except Exception:  # noqa: BLE001 - closed under us, or the exporter went away
                return
            if data:
                self.received += len(data)
                view = memoryview(data)
                with contextlib.suppress(OSError):
                    while view:
                        n = os.write(self.master, view)
                        view = view[n:]

    def describe(self) -> dict[str, object]:
        return {"path": self.path, "url": self.url.split("?")[0], "speed": self.speed,
                "bytes_to_exporter": self.sent, "bytes_from_exporter": self.received}

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(2.0)
        if self.serial is not None:
            with contextlib.suppress(Exception):
                self.serial.close()
        for fd in (self.master, self.slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.master = self.slave = -1

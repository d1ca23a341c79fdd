"""Serial printing on a pty pair: the slave path (e.g. /dev/pts/7) is what a till opens as its serial port.

The slave is put in raw mode and kept open by us, so clients may open and close it one after another
(python-escpos `Serial(devfile=path)`, pyserial with dsrdtr=True, `stty`, `cat > path`). Bytes we send while
no client has the port open wait in the tty's input queue; `flush_input()` drops them.
"""

from __future__ import annotations

import contextlib
import os
import select
import termios
import threading
import tty

from harness.printer.core import PowerOff, PrinterCore


class PtyPrinterServer:
    def __init__(self, core: PrinterCore, link: str | None = None, poll: float = 0.1):
        self.core = core
        self.poll = poll
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        attrs = termios.tcgetattr(self.slave)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(self.slave, termios.TCSANOW, attrs)
        self.path = os.ttyname(self.slave)
        self.link = link
        if link:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(link)
            os.symlink(self.path, link)
        self._stop = threading.Event()
        self._write_lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name="printer-pty", daemon=True)

    @property
    def address(self) -> str:
        return self.link or self.path

    def start(self) -> None:
        self._thread.start()

    def _reply(self, data: bytes) -> None:
        with self._write_lock:
            view = memoryview(data)
            while view:
                n = os.write(self.master, view)
                view = view[n:]

    def flush_input(self) -> None:
        """Drop replies no client read (what a real serial line does with bytes nobody listens to)."""
        termios.tcflush(self.slave, termios.TCIFLUSH)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self.master], [], [], self.poll)
            except (OSError, ValueError):
                return
            if not ready:
                continue
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if data:
                with contextlib.suppress(PowerOff):         # switched off: the bytes are lost
                    self.core.receive(data, self._reply)

    def close(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)
        if self.link:
            with contextlib.suppress(OSError):
                os.unlink(self.link)

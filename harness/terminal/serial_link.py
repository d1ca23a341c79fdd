"""ZVT over RS-232 for the emulated terminal: a pty the till opens as its serial port, and the data link.

`SerialLink` looks like a connected socket to `EcrSession` (`recv`, `sendall`, `close`): `recv` returns whole
APDUs whose CRC was right (each acknowledged with ACK 06; a bad CRC gets NAK 15), `sendall` frames an APDU and
repeats it up to 3 times until the till answers ACK.

>>> port = PtyPort()            # doctest: +SKIP
>>> port.path  # the till opens this, e.g. with pyserial  # doctest: +SKIP
'/dev/pts/7'
"""

from __future__ import annotations

import os
import queue
import select
import threading
import tty
from typing import Any

from harness.protocols import zvt


class PtyPort:
    """A pseudo-terminal pair: the terminal keeps the master, the till opens `path` (the slave), raw mode."""

    def __init__(self) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)

    def close(self) -> None:
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass


class SerialLink:
    """The ZVT serial data link on a file descriptor, shaped like a socket for the ECR session."""

    def __init__(self, fd: int, ack_timeout: float, transcript: Any = None):
        self.fd = fd
        self.ack_timeout = ack_timeout
        self.transcript = transcript
        self._decoder = zvt.SerialDecoder()
        self._frames: queue.Queue[bytes | None] = queue.Queue()
        self._link_answers: queue.Queue[str] = queue.Queue()
        self._write_lock = threading.Lock()
        self._stop_r, self._stop_w = os.pipe()
        self._closed = threading.Event()
        self._timeout: float | None = None
        self._thread = threading.Thread(target=self._read_loop, name="zvt-serial-reader", daemon=True)
        self._thread.start()

    def _note(self, event: str, **fields: Any) -> None:
        if self.transcript is not None:
            self.transcript.write(event, link="zvt-serial", **fields)

    def _write(self, data: bytes) -> None:
        with self._write_lock:
            view = memoryview(data)
            while view:
                n = os.write(self.fd, view)
                view = view[n:]

    def _read_loop(self) -> None:
        while not self._closed.is_set():
            try:
                ready, _, _ = select.select([self.fd, self._stop_r], [], [])
            except (OSError, ValueError):
                break
            if self._stop_r in ready:
                break
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            for event in self._decoder.feed(chunk):
                if event.kind in ("ack", "nak"):
                    self._link_answers.put(event.kind)
                elif event.kind == "noise":
                    self._note("serial_noise", bytes=len(event.apdu))
                elif event.crc_ok:
                    self._write(bytes([zvt.LINK_ACK]))
                    self._frames.put(event.apdu)
                else:
                    self._note("serial_bad_crc", bytes=len(event.apdu))
                    self._write(bytes([zvt.LINK_NAK]))
        self._frames.put(None)

    # -- socket-like surface for EcrSession ----------------------------------------------------------------
    def settimeout(self, timeout: float | None) -> None:
        self._timeout = timeout

    def recv(self, _size: int) -> bytes:
        try:
            frame = self._frames.get(timeout=self._timeout)
        except queue.Empty:
            raise TimeoutError("no frame from the serial line in time") from None
        if frame is None:
            self._frames.put(None)  # every later recv also sees the end
            return b""
        return frame

    def sendall(self, apdu: bytes) -> None:
        frame = zvt.serial_frame(apdu)
        while not self._link_answers.empty():
            self._link_answers.get_nowait()
        for attempt in range(1, zvt.SERIAL_RETRIES + 1):
            if self._closed.is_set():
                raise OSError("serial link closed")
            self._write(frame)
            try:
                answer = self._link_answers.get(timeout=self.ack_timeout)
            except queue.Empty:
                answer = "timeout"
            if answer == "ack":
                return
            self._note("serial_retry", attempt=attempt, answer=answer)
        raise OSError(f"the till did not acknowledge the frame after {zvt.SERIAL_RETRIES} attempts")

    def shutdown(self, _how: int) -> None:
        self.close()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        os.write(self._stop_w, b"x")
        if self._thread is not threading.current_thread():
            self._thread.join(1.0)
        for fd in (self._stop_r, self._stop_w):
            os.close(fd)

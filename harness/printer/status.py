"""The printer's one state machine: sensors, errors and faults, and every status byte derived from them.

DLE EOT, GS r, ESC u/v, ASB (GS a) and the USB port status are all read from the same `PrinterStatus`, so
they can never disagree. A printer is *ready* (prints) only when online: cover closed, paper present, no
error, not switched offline.

>>> s = PrinterStatus(); s.apply_fault("paper_out"); s.dle_eot(4).hex(), s.dle_eot(1).hex(), s.ready
('7e', '1a', False)
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.protocols.escpos import commands as C

FAULTS = ("paper_out", "paper_near_end", "cover_open", "offline", "drawer_open", "cutter_error",
          "mechanical_error", "silent", "slow")
"""Fault modes settable at run time. 'silent' never answers status; 'slow' answers late (see PrinterCore)."""


class FaultError(ValueError):
    """An unknown fault name; the message lists the known ones."""


@dataclass
class PrinterStatus:
    offline_switch: bool = False
    cover_open: bool = False
    paper: str = "ok"              # ok | near_end | end
    drawer_open: bool = False
    feed_button: bool = False
    mechanical_error: bool = False
    cutter_error: bool = False
    unrecoverable_error: bool = False
    silent: bool = False
    slow: bool = False

    # -- faults ----------------------------------------------------------------------------------
    def apply_fault(self, fault: str | None) -> None:
        """Set the printer to exactly these faults ('paper_out', 'cover_open,slow', ...); None clears all."""
        names = [f.strip() for f in (fault or "").replace("+", ",").split(",") if f.strip() and f != "none"]
        unknown = [f for f in names if f not in FAULTS]
        if unknown:
            raise FaultError(f"unknown printer fault {', '.join(unknown)}; known faults: {', '.join(FAULTS)} "
                             "(or None to clear)")
        self.offline_switch = "offline" in names
        self.cover_open = "cover_open" in names
        self.paper = "end" if "paper_out" in names else "near_end" if "paper_near_end" in names else "ok"
        self.drawer_open = "drawer_open" in names
        self.cutter_error = "cutter_error" in names
        self.mechanical_error = "mechanical_error" in names
        self.silent = "silent" in names
        self.slow = "slow" in names

    @property
    def faults(self) -> list[str]:
        out = []
        for name, on in (("paper_out", self.paper == "end"), ("paper_near_end", self.paper == "near_end"),
                         ("cover_open", self.cover_open), ("offline", self.offline_switch),
                         ("drawer_open", self.drawer_open), ("cutter_error", self.cutter_error),
                         ("mechanical_error", self.mechanical_error), ("silent", self.silent),
                         ("slow", self.slow)):
            if on:
                out.append(name)
        return out

    @property
    def error(self) -> bool:
        return self.mechanical_error or self.cutter_error or self.unrecoverable_error

    @property
    def online(self) -> bool:
        return not (self.offline_switch or self.cover_open or self.paper == "end" or self.error)

    @property
    def ready(self) -> bool:
        """Prints what it receives (online). Near-end paper still prints."""
        return self.online

    # -- replies ---------------------------------------------------------------------------------
    def dle_eot(self, n: int) -> bytes:
        """DLE EOT n: one byte 0xx1xx10."""
        b = C.STATUS_FIXED
        if n == 1:
            b |= C.ST1_DRAWER_PIN3 if self.drawer_open else 0
            b |= C.ST1_OFFLINE if not self.online else 0
        elif n == 2:
            b |= C.ST2_COVER_OPEN if self.cover_open else 0
            b |= C.ST2_FEED_BUTTON if self.feed_button else 0
            b |= C.ST2_PAPER_END_STOP if self.paper == "end" else 0
            b |= C.ST2_ERROR if self.error else 0
        elif n == 3:
            b |= C.ST3_MECHANICAL if self.mechanical_error else 0
            b |= C.ST3_AUTOCUTTER if self.cutter_error else 0
            b |= C.ST3_UNRECOVERABLE if self.unrecoverable_error else 0
        elif n == 4:
            if self.paper == "end":          # the near-end sensor sees no paper either
                b |= C.ST4_NEAR_END | C.ST4_PAPER_END
            elif self.paper == "near_end":
                b |= C.ST4_NEAR_END
        return bytes([b])

    def gs_r(self, n: int) -> bytes:
        """GS r n: 1/49 paper sensors, 2/50 drawer; one byte 0xx0xxxx."""
        if n in C.GS_R_PAPER:
            v = C.GS_R_PAPER_NEAR_END if self.paper in ("near_end", "end") else 0
            v |= C.GS_R_PAPER_END if self.paper == "end" else 0
            return bytes([v])
        if n in C.GS_R_DRAWER:
            return self.esc_u()
        return bytes([0x00])

    def esc_v(self) -> bytes:
        return self.gs_r(1)

    def esc_u(self) -> bytes:
        """ESC u n (and GS r 2): the drawer kick-out connector, pin 3."""
        return bytes([C.GS_R_DRAWER_HIGH if self.drawer_open else 0x00])

    def asb(self) -> bytes:
        """The four ASB bytes (GS a): drawer/online/cover/feed, errors, paper sensors, reserved."""
        b1 = C.ASB1_FIXED
        b1 |= C.ASB1_DRAWER if self.drawer_open else 0
        b1 |= C.ASB1_OFFLINE if not self.online else 0
        b1 |= C.ASB1_COVER if self.cover_open else 0
        b1 |= C.ASB1_FEED if self.feed_button else 0
        b2 = C.ASB2_MECHANICAL if self.mechanical_error else 0
        b2 |= C.ASB2_AUTOCUTTER if self.cutter_error else 0
        b2 |= C.ASB2_UNRECOVERABLE if self.unrecoverable_error else 0
        b3 = (C.ASB3_NEAR_END if self.paper in ("near_end", "end") else 0)
        b3 |= C.ASB3_PAPER_END if self.paper == "end" else 0
        return bytes([b1, b2, b3, 0x00])

    def usb_port_status(self) -> int:
        """USB printer class GET_PORT_STATUS byte (IEEE 1284: not-error, selected, paper-empty)."""
        v = 0
        v |= C.USB_PORT_NOT_ERROR if not (self.error or self.cover_open) else 0
        v |= C.USB_PORT_SELECTED if self.online else 0
        v |= C.USB_PORT_PAPER_EMPTY if self.paper == "end" else 0
        return v

    def to_dict(self) -> dict:
        return {"online": self.online, "faults": self.faults, "paper": self.paper,
                "cover_open": self.cover_open, "drawer_open": self.drawer_open}

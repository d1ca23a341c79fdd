"""Printer profiles: what a model says about itself (GS I, USB ids, IEEE 1284 device id) and how it boots.

Capability facts follow Epson's published TM-T88 behaviour; the Chinese clone follows the common 80 mm GB18030
clones (they boot in Chinese mode, so bytes >= 0x80 are GB18030 until FS . turns it off).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.protocols.escpos import commands as C


@dataclass(frozen=True)
class Profile:
    name: str
    vendor: str
    model: str
    firmware: str
    usb_vendor: int
    usb_product: int
    codepage: int = 0                 # ESC t default
    chinese: bool = False             # boots in Chinese (GB18030) mode
    chinese_codec: str = "gb18030"    # what Chinese mode decodes: gb18030 (1/2/4 bytes) or gbk (2 bytes only)
    columns: int = 42                 # font A characters per line
    dots: int = 512                   # printable width in dots
    model_id: int = 0x20              # GS I 1
    type_id: int = 0x02               # GS I 2: bit0 multibyte, bit1 autocutter
    receive_buffer: int = 64 * 1024   # bytes held while not ready before the rest is lost
    extra_ids: dict[int, str] = field(default_factory=dict)   # GS I 65..69 beyond firmware/vendor/model

    def gs_i(self, n: int) -> bytes:
        """The reply to GS I n: one byte 0xx0xxxx for 1..3 (and 49..51), '_' text NUL for 65..69."""
        if n in C.GS_I_MODEL:
            return bytes([self.model_id & C.GS_I_BYTE_MASK])
        if n in C.GS_I_TYPE:
            return bytes([self.type_id & C.GS_I_BYTE_MASK])
        if n in C.GS_I_ROM:
            return bytes([int(self.firmware.split(".")[0]) & 0x0F])
        text = {C.GS_I_FIRMWARE: self.firmware, C.GS_I_MAKER: self.vendor, C.GS_I_MODEL_NAME: self.model,
                C.GS_I_SERIAL: "0000000001"}.get(n)
        if text is None:
            text = self.extra_ids.get(n)
        if text is None:
            return b""
        return C.GS_I_TEXT_START + text.encode("ascii", errors="replace") + C.NUL

    def device_id(self) -> bytes:
        """IEEE 1284 device id, as USB GET_DEVICE_ID returns it (2-byte big-endian length first)."""
        text = (f"MFG:{self.vendor};CMD:ESC/POS;MDL:{self.model};CLS:PRINTER;DES:{self.vendor} {self.model};"
                ).encode("ascii")
        return (len(text) + 2).to_bytes(2, "big") + text


PROFILES: dict[str, Profile] = {
    "tm-t88": Profile(name="tm-t88", vendor="EPSON", model="TM-T88V", firmware="30.01 ESC/POS",
                      usb_vendor=0x04B8, usb_product=0x0202, codepage=0, chinese=False, model_id=0x20,
                      type_id=0x02),
    "gb18030-clone": Profile(name="gb18030-clone", vendor="POS80", model="POS-80C", firmware="1.00 GB18030",
                             usb_vendor=0x0416, usb_product=0x5011, codepage=0, chinese=True, model_id=0x20,
                             type_id=0x03, extra_ids={69: "CHINA GB18030"}),
    # A GBK-only clone: 4-byte GB18030 sequences print as their ASCII bytes, e.g. "¥" (81 30 84 36) shows as
    # "0 6"-like garbage (node-escpos #332): the bug a till meets when it sends GB18030 to such a printer.
    "gbk-clone": Profile(name="gbk-clone", vendor="POS58", model="POS-58 GBK", firmware="1.00 GBK",
                         usb_vendor=0x0416, usb_product=0x5011, codepage=0, chinese=True, chinese_codec="gbk",
                         model_id=0x20, type_id=0x03, extra_ids={69: "CHINA GBK"}),
}


def get_profile(name: str | None) -> Profile:
    """The profile called `name` (default tm-t88); a clear error listing the known ones otherwise."""
    key = name or "tm-t88"
    try:
        return PROFILES[key]
    except KeyError:
        raise ValueError(f"unknown printer profile {key!r}; known profiles: {', '.join(PROFILES)}") from None

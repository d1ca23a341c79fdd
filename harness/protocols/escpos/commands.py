"""Every ESC/POS command this package knows, named once (python-escpos `constants.py` style).

A command is declared by its byte prefix, its name and how its length is found:
an int (that many parameter bytes after the prefix) or the name of a length rule in `decoder.LENGTH_RULES`
(commands whose length is carried by a field, or terminated by NUL). The decoder, the printer core, its status
replies, the profiles, the USB device, the tap and the status reader all take their bytes (and status bits) from
here; no other module of posrig spells an ESC/POS byte sequence.

>>> INITIALIZE + b"TOTAL 12.50" + LF + CUT_FULL
b'\\x1b@TOTAL 12.50\\n\\x1dV\\x00'
>>> BY_PREFIX[GS + b"V"].name
'cut'
"""

from __future__ import annotations

from dataclasses import dataclass

# -- control characters ---------------------------------------------------------------------------
NUL, HT, LF, FF, CR, CAN = b"\x00", b"\x09", b"\x0a", b"\x0c", b"\x0d", b"\x18"
DLE, EOT, ENQ, DC4 = b"\x10", b"\x04", b"\x05", b"\x14"
ESC, FS, GS = b"\x1b", b"\x1c", b"\x1d"

# -- real-time commands (answered at the receive layer, even inside image data) ---------------------
DLE_EOT = DLE + EOT                       # DLE EOT n: transmit real-time status, n = 1..4
DLE_EOT_PRINTER = DLE_EOT + b"\x01"
DLE_EOT_OFFLINE_CAUSE = DLE_EOT + b"\x02"
DLE_EOT_ERROR_CAUSE = DLE_EOT + b"\x03"
DLE_EOT_PAPER = DLE_EOT + b"\x04"
DLE_ENQ = DLE + ENQ                       # DLE ENQ n: real-time request to printer
DLE_DC4 = DLE + DC4                       # DLE DC4 fn ...: real-time pulse / power off / clear buffer
DLE_EOT_LONG = (7, 8)                     # DLE EOT n with one more parameter byte (n = 7, 8)
DLE_DC4_LENGTHS = {1: 5, 2: 5, 3: 8, 7: 4, 8: 10}   # DLE DC4 fn -> whole command length (others: 3)
DLE_DC4_PULSE = 1                         # DLE DC4 1 m t: real-time drawer pulse
COMMAND_PREFIXES = DLE + ESC + FS + GS    # bytes that start a multi-byte command

# -- frequently used sequences (as clients send them) ----------------------------------------------
INITIALIZE = ESC + b"@"
CUT = GS + b"V"                           # GS V m [n]: cut (see CUT_MODES)
CUT_FULL = CUT + b"\x00"
CUT_PARTIAL = CUT + b"\x01"
CHINESE_ON = FS + b"&"
CHINESE_OFF = FS + b"."
GS_R = GS + b"r"                          # GS r n: transmit status (1 paper, 2 drawer)
GS_I = GS + b"I"                          # GS I n: transmit printer ID
GS_A = GS + b"a"                          # GS a n: enable automatic status back
PRINT_MODE = ESC + b"!"                   # ESC ! n: font / bold / double height / double width / underline
BARCODE = GS + b"k"                       # GS k m ...: print a barcode
BARCODE_HEIGHT = GS + b"h"                # GS h n
BARCODE_WIDTH = GS + b"w"                 # GS w n
HRI_POSITION = GS + b"H"                  # GS H n: where the human-readable digits go
RASTER_IMAGE = GS + b"v0"                 # GS v 0 m xL xH yL yH d...
VARIABLE_IMAGE = GS + b"Q0"               # GS Q 0 m xL xH yL yH d...
COLUMN_IMAGE = ESC + b"*"                 # ESC * m nL nH d...
GS_PAREN = GS + b"("                      # GS ( fn pL pH ...: extended functions, length-carried
SYMBOL = GS_PAREN + b"k"                  # GS ( k pL pH cn fn ...: 2D symbols (QR)
GRAPHICS = GS_PAREN + b"L"                # GS ( L pL pH m fn ...: graphics
GRAPHICS_LONG = GS + b"8L"                # GS 8 L p1..p4 m fn ...: graphics, 4-byte length

# -- print mode bits (ESC ! n) ----------------------------------------------------------------------
PRINT_MODE_FONT_B, PRINT_MODE_BOLD, PRINT_MODE_DOUBLE_HEIGHT = 0x01, 0x08, 0x10
PRINT_MODE_DOUBLE_WIDTH, PRINT_MODE_UNDERLINE = 0x20, 0x80

# -- image modes ----------------------------------------------------------------------------------
COLUMN_24_DOT = (32, 33)                  # ESC * m: 24-dot (3 bytes per column) modes; the rest are 8-dot

# -- status reply bits (Epson TM series) ----------------------------------------------------------
STATUS_FIXED = 0x12                       # every DLE EOT reply is 0xx1xx10
STATUS_FIXED_MASK = 0x93                  # the bits of that form: (byte & STATUS_FIXED_MASK) == STATUS_FIXED
ST1_DRAWER_PIN3 = 0x04
ST1_OFFLINE = 0x08
ST1_WAIT_RECOVERY = 0x20
ST2_COVER_OPEN = 0x04
ST2_FEED_BUTTON = 0x08
ST2_PAPER_END_STOP = 0x20
ST2_ERROR = 0x40
ST3_MECHANICAL = 0x04
ST3_AUTOCUTTER = 0x08
ST3_UNRECOVERABLE = 0x20
ST3_AUTO_RECOVERABLE = 0x40
ST4_NEAR_END = 0x0C
ST4_PAPER_END = 0x60

# ASB (GS a n) groups and the four-byte reply
ASB_DRAWER, ASB_ONLINE, ASB_ERROR, ASB_PAPER = 0x01, 0x02, 0x04, 0x08
ASB1_FIXED = 0x10
ASB1_DRAWER, ASB1_OFFLINE, ASB1_COVER, ASB1_FEED = 0x04, 0x08, 0x20, 0x40
ASB2_MECHANICAL, ASB2_AUTOCUTTER, ASB2_UNRECOVERABLE, ASB2_AUTO_RECOVERABLE = 0x04, 0x08, 0x20, 0x40
ASB3_NEAR_END, ASB3_PAPER_END = 0x03, 0x0C
ASB_GROUPS = ASB_DRAWER | ASB_ONLINE | ASB_ERROR | ASB_PAPER    # the bits of GS a n that count

# GS r n (and ESC v, ESC u) replies: one byte 0xx0xxxx
GS_R_PAPER, GS_R_DRAWER = (1, 49), (2, 50)       # n: paper sensors, drawer kick-out connector
GS_R_PAPER_NEAR_END, GS_R_PAPER_END = 0x03, 0x0C
GS_R_DRAWER_HIGH = 0x01                   # drawer connector pin 3 high (drawer open)

# GS I n replies: one byte 0xx0xxxx for 1..3 (49..51), else '_' text NUL
GS_I_MODEL, GS_I_TYPE, GS_I_ROM = (1, 49), (2, 50), (3, 51)
GS_I_FIRMWARE, GS_I_MAKER, GS_I_MODEL_NAME, GS_I_SERIAL = 65, 66, 67, 68
GS_I_BYTE_MASK = 0x6F                     # the bits a one-byte GS I answer may carry
GS_I_TEXT_START = b"_"                    # a text answer is '_' text NUL

# USB printer class: interface class/subclass/protocol, class requests, the IEEE 1284 port status byte
USB_CLASS_PRINTER, USB_SUBCLASS_PRINTER, USB_PROTOCOL_BIDIRECTIONAL = 7, 1, 2
USB_GET_DEVICE_ID, USB_GET_PORT_STATUS, USB_SOFT_RESET = 0, 1, 2
USB_CLASS_IN_REQUEST = 0xA1               # bmRequestType: device-to-host, class, interface
USB_PORT_NOT_ERROR, USB_PORT_SELECTED, USB_PORT_PAPER_EMPTY = 0x08, 0x10, 0x20

# -- code tables (ESC t n) --------------------------------------------------------------------------
CODE_PAGES: dict[int, str] = {
    0: "cp437", 1: "shift_jis", 2: "cp850", 3: "cp860", 4: "cp863", 5: "cp865",
    11: "cp851", 12: "cp853", 13: "cp857", 14: "cp737", 15: "iso8859_7",
    16: "cp1252", 17: "cp866", 18: "cp852", 19: "cp858", 21: "cp874", 33: "cp775",
    34: "cp855", 35: "cp861", 36: "cp862", 37: "cp864", 38: "cp869", 39: "iso8859_2",
    40: "iso8859_15", 41: "cp1098", 42: "cp1118", 43: "cp1119", 44: "cp1125", 45: "cp1250",
    46: "cp1251", 47: "cp1253", 48: "cp1254", 49: "cp1255", 50: "cp1256", 51: "cp1257",
    52: "cp1258", 53: "kz1048", 255: "cp437",
}
CHINESE_CODEC = "gb18030"

# -- barcodes (GS k m) ------------------------------------------------------------------------------
BARCODE_A = {0: "UPC-A", 1: "UPC-E", 2: "EAN13", 3: "EAN8", 4: "CODE39", 5: "ITF", 6: "CODABAR"}
BARCODE_B = {65: "UPC-A", 66: "UPC-E", 67: "EAN13", 68: "EAN8", 69: "CODE39", 70: "ITF", 71: "CODABAR",
             72: "CODE93", 73: "CODE128", 74: "GS1-128", 75: "GS1 DataBar Omnidirectional",
             76: "GS1 DataBar Truncated", 77: "GS1 DataBar Limited", 78: "GS1 DataBar Expanded",
             79: "CODE128 auto"}

# -- cuts (GS V m [n]) -------------------------------------------------------------------------------
CUT_MODES: dict[int, tuple[str, bool]] = {   # m -> (kind, takes n)
    0: ("full", False), 48: ("full", False), 1: ("partial", False), 49: ("partial", False),
    65: ("full", True), 66: ("partial", True), 97: ("full", True), 98: ("partial", True),
    103: ("full", True), 104: ("partial", True),
}


@dataclass(frozen=True)
class Command:
    """One ESC/POS command: its prefix, a domain name, and its length (params count or a rule name)."""

    prefix: bytes
    name: str
    length: int | str = 0
    doc: str = ""


# Ordered from shortest prefix; the decoder matches the longest prefix declared.
COMMANDS: tuple[Command, ...] = (
    # single bytes
    Command(HT, "horizontal_tab"), Command(LF, "line_feed"), Command(FF, "form_feed"),
    Command(CR, "carriage_return"), Command(CAN, "cancel"),
    # DLE: real-time
    Command(DLE_EOT, "realtime_status", "dle_eot"),
    Command(DLE_ENQ, "realtime_request", 1),
    Command(DLE_DC4, "realtime_function", "dle_dc4"),
    # ESC
    Command(ESC + b"\x0c", "page_print"),
    Command(ESC + b" ", "char_spacing", 1),
    Command(PRINT_MODE, "print_mode", 1,
            "bit0 font B, bit3 bold, bit4 double height, bit5 double width, bit7 underline"),
    Command(ESC + b"$", "absolute_position", 2),
    Command(ESC + b"%", "user_charset", 1),
    Command(ESC + b"&", "define_user_chars", "esc_amp"),
    Command(ESC + b"(", "esc_paren", "paren"),
    Command(COLUMN_IMAGE, "column_image", "esc_star"),
    Command(ESC + b"-", "underline", 1),
    Command(ESC + b"2", "line_spacing_default"),
    Command(ESC + b"3", "line_spacing", 1),
    Command(ESC + b"=", "select_peripheral", 1),
    Command(ESC + b"?", "cancel_user_char", 1),
    Command(INITIALIZE, "initialize"),
    Command(ESC + b"D", "tab_positions", "nul_list"),
    Command(ESC + b"E", "bold", 1),
    Command(ESC + b"G", "double_strike", 1),
    Command(ESC + b"J", "feed_dots", 1),
    Command(ESC + b"K", "reverse_feed_dots", 1),
    Command(ESC + b"L", "page_mode"),
    Command(ESC + b"M", "font", 1),
    Command(ESC + b"R", "international_charset", 1),
    Command(ESC + b"S", "standard_mode"),
    Command(ESC + b"T", "page_direction", 1),
    Command(ESC + b"U", "unidirectional", 1),
    Command(ESC + b"V", "rotate_90", 1),
    Command(ESC + b"W", "page_area", 8),
    Command(ESC + b"\\", "relative_position", 2),
    Command(ESC + b"a", "align", 1),
    Command(ESC + b"c3", "paper_sensor_out", 1),
    Command(ESC + b"c4", "paper_sensor_stop", 1),
    Command(ESC + b"c5", "panel_buttons", 1),
    Command(ESC + b"d", "feed_lines", 1),
    Command(ESC + b"e", "reverse_feed_lines", 1),
    Command(ESC + b"i", "cut_partial_legacy"),
    Command(ESC + b"m", "cut_partial_legacy"),
    Command(ESC + b"p", "drawer_pulse", 3),
    Command(ESC + b"t", "code_page", 1),
    Command(ESC + b"u", "peripheral_status", 1),
    Command(ESC + b"v", "paper_sensor_status"),
    Command(ESC + b"{", "upside_down", 1),
    # FS
    Command(FS + b"!", "chinese_print_mode", 1),
    Command(CHINESE_ON, "chinese_on"),
    Command(FS + b"(", "fs_paren", "paren"),
    Command(FS + b"-", "chinese_underline", 1),
    Command(CHINESE_OFF, "chinese_off"),
    Command(FS + b"2", "define_user_kanji", 74),
    Command(FS + b"C", "chinese_code_system", 1),
    Command(FS + b"S", "chinese_spacing", 2),
    Command(FS + b"W", "chinese_quadruple", 1),
    Command(FS + b"p", "print_nv_image", 2),
    Command(FS + b"q", "define_nv_images", "fs_q"),
    # GS
    Command(GS + b"!", "char_size", 1, "high nibble width-1, low nibble height-1"),
    Command(GS + b"$", "absolute_vertical_position", 2),
    Command(GS_PAREN, "gs_paren", "paren"),
    Command(GS + b"*", "define_downloaded_image", "gs_star"),
    Command(GS + b"/", "print_downloaded_image", 1),
    Command(GRAPHICS_LONG, "gs_paren", "paren4"),
    Command(GS + b":", "macro_define"),
    Command(GS + b"B", "invert", 1),
    Command(GS + b"C0", "counter_mode", 2),
    Command(GS + b"C1", "counter_range", 6),
    Command(GS + b"C2", "counter_value", 2),
    Command(GS + b"E", "print_density", 1),
    Command(HRI_POSITION, "hri_position", 1),
    Command(GS_I, "transmit_id", 1),
    Command(GS + b"L", "left_margin", 2),
    Command(GS + b"P", "motion_units", 2),
    Command(VARIABLE_IMAGE, "variable_image", "raster"),
    Command(GS + b"T", "line_start", 1),
    Command(CUT, "cut", "gs_v"),
    Command(GS + b"W", "print_width", 2),
    Command(GS + b"\\", "relative_vertical_position", 2),
    Command(GS + b"^", "macro_execute", 3),
    Command(GS_A, "automatic_status_back", 1),
    Command(GS + b"b", "smoothing", 1),
    Command(GS + b"c", "print_counter"),
    Command(GS + b"f", "hri_font", 1),
    Command(GS + b"g0", "maintenance_counter_init", 3),
    Command(GS + b"g2", "maintenance_counter_send", 3),
    Command(BARCODE_HEIGHT, "barcode_height", 1),
    Command(GS + b"j", "automatic_status_back_ink", 1),
    Command(BARCODE, "barcode", "gs_k"),
    Command(GS_R, "transmit_status", 1),
    Command(RASTER_IMAGE, "raster_image", "raster"),
    Command(BARCODE_WIDTH, "barcode_width", 1),
    Command(GS + b"z0", "online_recovery_wait", 1),
)

BY_PREFIX: dict[bytes, Command] = {c.prefix: c for c in COMMANDS}

# Symbol (GS ( k) and graphics (GS ( L / GS 8 L) function codes
QR_CN = 0x31
QR_FN_MODEL, QR_FN_SIZE, QR_FN_ERROR, QR_FN_STORE, QR_FN_PRINT, QR_FN_SIZE_INFO = 65, 67, 69, 80, 81, 82
QR_ERROR_LEVELS = {48: "L", 49: "M", 50: "Q", 51: "H"}
GRAPHICS_FN_STORE_RASTER, GRAPHICS_FN_PRINT, GRAPHICS_FN_STORE_COLUMN = 0x70, 0x32, 0x71

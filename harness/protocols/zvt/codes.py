"""ZVT code tables: result codes, intermediate statuses, registration config-byte bits, print attributes.

>>> RESULT_CODES[RESULT_ABORTED], result_text(0x05), result_text(0x2A), result_text(None)
('abort via timeout or abort-key', 'declined by the authorisation system (do not honour)', \
'declined by the authorisation system', 'no result')
>>> result_from_iso("51") == RESULT_INSUFFICIENT_FUNDS
True
"""

from __future__ import annotations


class ZvtError(ValueError):
    """Bytes that are not valid ZVT. `code` is the result code to NACK them with (84 xx), 9A by default."""

    def __init__(self, message: str, code: int = 0x9A):
        super().__init__(message)
        self.code = code


# -- result codes (BMP 27, the data of 06 1E and of a NACK 84 xx) ----------------------------------------------------
RESULT_SUCCESS = 0x00
RESULT_DO_NOT_HONOUR = 0x05
RESULT_INSUFFICIENT_FUNDS = 0x33                 # = 51, the ISO 8583 response code as a binary number
RESULT_WRONG_PIN = 0x37
RESULT_CARD_NOT_READABLE = 0x64
RESULT_CARD_DATA_MISSING = 0x65
RESULT_PROCESSING_ERROR = 0x66                   # also the ECR's "cannot hand over the goods" (84 66)
RESULT_ABORTED = 0x6C                            # abort via timeout or abort key
RESULT_WRONG_CURRENCY = 0x6F
RESULT_CHIP_ERROR = 0x72
RESULT_CARD_EXPIRED = 0x78
RESULT_COMMUNICATION_ERROR = 0x7D
RESULT_NOT_POSSIBLE = 0x83
RESULT_PROTOCOL_ERROR = 0x9A
RESULT_DIALUP_ERROR = 0x9B                       # error from dial-up / communication fault (host unreachable)
RESULT_PLEASE_WAIT = 0x9C                        # also the ECR's "repeat the status information later" (84 9C)
RESULT_RECEIVER_NOT_READY = 0xA0
RESULT_REMOTE_NO_RESPONSE = 0xA1                 # the remote station (host) does not respond
RESULT_NO_CONNECTION = 0xA3                      # no connection to the host
RESULT_ALREADY_REVERSED = 0xB4
RESULT_REVERSAL_NOT_POSSIBLE = 0xB5
RESULT_MAX_AMOUNT_EXCEEDED = 0xC3
RESULT_SYSTEM_ERROR = 0xFF

RESULT_CODES: dict[int, str] = {
    RESULT_SUCCESS: "no error",
    RESULT_DO_NOT_HONOUR: "declined by the authorisation system (do not honour)",
    RESULT_INSUFFICIENT_FUNDS: "declined by the authorisation system (insufficient funds)",
    RESULT_WRONG_PIN: "declined (incorrect PIN)",
    RESULT_CARD_NOT_READABLE: "card not readable",
    RESULT_CARD_DATA_MISSING: "card-data not present",
    RESULT_PROCESSING_ERROR: "processing-error",
    RESULT_ABORTED: "abort via timeout or abort-key",
    RESULT_WRONG_CURRENCY: "wrong currency",
    RESULT_CHIP_ERROR: "chip error",
    RESULT_CARD_EXPIRED: "card expired",
    RESULT_COMMUNICATION_ERROR: "communication error",
    RESULT_NOT_POSSIBLE: "function not possible",
    RESULT_PROTOCOL_ERROR: "ZVT protocol error",
    RESULT_DIALUP_ERROR: "error from dial-up/communication fault",
    RESULT_PLEASE_WAIT: "please wait",
    RESULT_RECEIVER_NOT_READY: "receiver not ready",
    RESULT_REMOTE_NO_RESPONSE: "remote station does not respond",
    RESULT_NO_CONNECTION: "no connection",
    RESULT_ALREADY_REVERSED: "already reversed",
    RESULT_REVERSAL_NOT_POSSIBLE: "reversal not possible",
    RESULT_MAX_AMOUNT_EXCEEDED: "maximum amount exceeded",
    RESULT_SYSTEM_ERROR: "system error",
}
# The host could not be asked: none of these is a decision about the card.
COMMUNICATION_FAILURES = frozenset({RESULT_COMMUNICATION_ERROR, RESULT_DIALUP_ERROR, RESULT_REMOTE_NO_RESPONSE,
                                    RESULT_NO_CONNECTION})
# Result codes 01..63 (hex) are the authorisation system's own answers (a decline), 64 and up the terminal's.
HOST_DECLINES = range(0x01, 0x64)
# The emulated terminal passes an ISO 8583 response code up to this value on as the binary result code.
ISO_FIELD39_MAX = 63


def result_text(code: int | None) -> str:
    """What a result code means, for messages and receipts."""
    if code is None:
        return "no result"
    if code in RESULT_CODES:
        return RESULT_CODES[code]
    return "declined by the authorisation system" if code in HOST_DECLINES else "error"


def result_from_iso(field39: str) -> int:
    """ZVT result code for an ISO 8583 response code: '00' -> 0x00, '05' -> 0x05, '51' -> 0x33 (= 51)."""
    try:
        value = int(field39)
    except ValueError:
        return RESULT_SYSTEM_ERROR
    return value if 0 <= value <= ISO_FIELD39_MAX else RESULT_SYSTEM_ERROR


# -- intermediate status (04 FF) -------------------------------------------------------------------------------------
STATUS_WATCH_PIN_PAD = 0x01
STATUS_WAITING_FOR_HOST = 0x04
STATUS_AUTO_REVERSAL = 0x05
STATUS_INSERT_CARD = 0x0A
STATUS_REMOVE_CARD = 0x0B
STATUS_CARD_NOT_READABLE = 0x0C
STATUS_PLEASE_WAIT = 0x0E
STATUS_AUTOMATIC_END_OF_DAY = 0x0F               # the PT's own time-controlled batch, not one the ECR asked for
STATUS_INCORRECT_PIN = 0x15
STATUS_DECLINED = 0x1D

INTERMEDIATE_STATUS: dict[int, str] = {
    STATUS_WATCH_PIN_PAD: "please watch PIN-pad",
    STATUS_WAITING_FOR_HOST: "waiting for response from FEP",
    STATUS_AUTO_REVERSAL: "sending auto-reversal",
    STATUS_INSERT_CARD: "insert card",
    STATUS_REMOVE_CARD: "please remove card",
    STATUS_CARD_NOT_READABLE: "card not readable",
    STATUS_PLEASE_WAIT: "please wait",
    STATUS_AUTOMATIC_END_OF_DAY: "PT is commencing an automatic end-of-day batch",
    0x14: "credit not sufficient",
    STATUS_INCORRECT_PIN: "incorrect PIN",
    0x17: "please wait",
    0x1C: "approved, please take goods",
    STATUS_DECLINED: "declined",
    0xF1: "offline",
    0xF2: "online",
    0xF3: "offline transaction",
}

# -- registration (06 00) config-byte bits ---------------------------------------------------------------------------
# As ZVT PA00P015 (revision 13.x) section 2.1 "Registration" defines them: bit 0x02/0x04 say WHETHER the ECR prints
# (payment / administration receipts; clear: the PT prints on its own printer), bit 0x80 says HOW, and is only
# used where 0x02 or 0x04 is set: 1 = the PT sends the receipt as Print Line commands (06 D1), 0 = the ECR compiles
# the receipt itself from the status-information data (the PT sends no print lines). Bits 0x01 and 0x40 are RFU.
# (Checked against the spec's table as quoted in public ECR libraries: wiffzack RegistrationConfigByteParameter,
# Portalum.Zvt RegistrationConfig, kotlin-zvt-library ZvtConstants for revision 13.13.) Whether a PT may send a
# receipt as Print Text-Block (06 D3) instead of lines is not this bit: the ECR lists the commands it accepts in
# the registration's TLV tag 26 (kotlin-zvt-library registers 06 D1 and 06 D3 there). The emulated terminal
# sends 06 D1 lines only.
CONFIG_ECR_PRINTS_PAYMENT = 0x02     # ECR assumes receipt-printout for payment functions
CONFIG_ECR_PRINTS_ADMIN = 0x04       # ECR assumes receipt-printout for administration functions (end-of-day, ...)
CONFIG_INTERMEDIATE_STATUS = 0x08    # ECR requires intermediate status-information (04 FF)
CONFIG_ECR_CONTROLS_PAYMENT = 0x10   # ECR controls payment function (no amount input on the PT)
CONFIG_ECR_CONTROLS_ADMIN = 0x20     # ECR controls administration function
CONFIG_ECR_PRINT_LINES = 0x80        # ECR print-type: 1 = receipts as Print Line (06 D1), 0 = ECR compiles them

RECEIPT_BY_PT = "terminal"           # the PT prints the receipt on its own printer: nothing goes to the ECR
RECEIPT_PRINT_LINES = "print_lines"  # the PT sends the receipt to the ECR as 06 D1 lines
RECEIPT_COMPILED_BY_ECR = "ecr_compiles"  # the ECR builds the receipt from the 04 0F status information


def receipt_printout(config_byte: int, admin: bool = False) -> str:
    """Who prints a payment (or, `admin`, an administration) receipt under a registration config byte.

    >>> receipt_printout(0x3A), receipt_printout(0xBA), receipt_printout(0x08), receipt_printout(0x86, admin=True)
    ('ecr_compiles', 'print_lines', 'terminal', 'print_lines')
    """
    if not config_byte & (CONFIG_ECR_PRINTS_ADMIN if admin else CONFIG_ECR_PRINTS_PAYMENT):
        return RECEIPT_BY_PT
    return RECEIPT_PRINT_LINES if config_byte & CONFIG_ECR_PRINT_LINES else RECEIPT_COMPILED_BY_ECR


# -- print line (06 D1) attribute: 1xxx xxxx (not 80, not FF) marks the last line of a receipt -------------------------
PRINT_NORMAL = 0x00
PRINT_LAST_LINE = 0x81

TERMINAL_STATUS_READY = 0x00         # terminal-status-code in the completion of a 05 01 status enquiry

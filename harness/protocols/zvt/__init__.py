"""ZVT (the ECR interface of German-standard payment terminals, revision 13.x) declared as data, with its codec.

The one ZVT codec of posrig: the emulated terminal, the real-terminal driver, the reference till's ECR client and
the link layer use it. One module per concern, everything re-exported here:

    codes.py     result codes, intermediate statuses, config-byte bits, print attributes, ZvtError
    commands.py  the command table: control fields (CLASS, INSTR), names, positional prefixes
    apdu.py      APDU framing (short and extended length), `apdu_length`, `ApduReader`
    bmp.py       the BMP table and codec, the BER-TLV container (BMP 06), card-data masking hand-off
    message.py   whole messages: `encode(name, **fields)`, `decode_apdu`, `describe`; the ECR's answers
    serial.py    the RS-232 data link (DLE STX ... DLE ETX CRC, ACK/NAK)

>>> raw = encode("authorization", amount=1999, currency=978)
>>> raw.hex(" ")
'06 01 0a 04 00 00 00 00 19 99 49 09 78'
>>> msg = decode_apdu(ApduReader().feed(raw)[0])
>>> msg.name, msg.fields["amount"], msg.fields["currency"]
('authorization', 1999, 978)
"""

from harness.protocols.zvt.apdu import MAX_APDU_DATA, Apdu, ApduReader, apdu_length, frame
from harness.protocols.zvt.bmp import (
    BMP_BY_NAME,
    BMP_TABLE,
    BMPS,
    CARD_DATA,
    TLV_BY_NAME,
    TLV_TABLE,
    TLV_TAGS,
    Bmp,
    TlvTag,
    bcd_decode,
    bcd_encode,
    ber_length,
    build_bmps,
    build_tlv,
    digits_decode,
    digits_encode,
    llvar_length,
    llvar_prefix,
    masked,
    parse_bmps,
    parse_tlv,
    tlv_container,
    tlv_length,
)
from harness.protocols.zvt.codes import (
    COMMUNICATION_FAILURES,
    CONFIG_ECR_CONTROLS_ADMIN,
    CONFIG_ECR_CONTROLS_PAYMENT,
    CONFIG_ECR_PRINTS_ADMIN,
    CONFIG_ECR_PRINTS_PAYMENT,
    CONFIG_INTERMEDIATE_STATUS,
    CONFIG_PRINT_TEXT_BLOCK,
    HOST_DECLINES,
    INTERMEDIATE_STATUS,
    ISO_FIELD39_MAX,
    PRINT_LAST_LINE,
    PRINT_NORMAL,
    RESULT_ABORTED,
    RESULT_ALREADY_REVERSED,
    RESULT_CARD_DATA_MISSING,
    RESULT_CARD_EXPIRED,
    RESULT_CARD_NOT_READABLE,
    RESULT_CHIP_ERROR,
    RESULT_CODES,
    RESULT_COMMUNICATION_ERROR,
    RESULT_DIALUP_ERROR,
    RESULT_DO_NOT_HONOUR,
    RESULT_INSUFFICIENT_FUNDS,
    RESULT_MAX_AMOUNT_EXCEEDED,
    RESULT_NO_CONNECTION,
    RESULT_NOT_POSSIBLE,
    RESULT_PLEASE_WAIT,
    RESULT_PROCESSING_ERROR,
    RESULT_PROTOCOL_ERROR,
    RESULT_RECEIVER_NOT_READY,
    RESULT_REMOTE_NO_RESPONSE,
    RESULT_REVERSAL_NOT_POSSIBLE,
    RESULT_SUCCESS,
    RESULT_SYSTEM_ERROR,
    RESULT_WRONG_CURRENCY,
    RESULT_WRONG_PIN,
    STATUS_AUTO_REVERSAL,
    STATUS_CARD_NOT_READABLE,
    STATUS_DECLINED,
    STATUS_END_OF_DAY,
    STATUS_INCORRECT_PIN,
    STATUS_INSERT_CARD,
    STATUS_REMOVE_CARD,
    STATUS_WAITING_FOR_HOST,
    STATUS_WATCH_PIN_PAD,
    TERMINAL_STATUS_READY,
    ZvtError,
    result_from_iso,
    result_text,
)
from harness.protocols.zvt.commands import (
    COMMAND_TABLE,
    COMMANDS,
    CONTROL,
    KNOWN_CLASSES,
    NACK_CLASS,
    Command,
    Field,
    command_name,
)
from harness.protocols.zvt.message import (
    ANSWER_BOOK,
    ANSWER_NO_GOODS,
    ANSWER_WAIT,
    Message,
    decode,
    decode_apdu,
    describe,
    encode,
    hexdump,
)
from harness.protocols.zvt.serial import (
    DLE,
    ETX,
    LINK_ACK,
    LINK_NAK,
    SERIAL_RETRIES,
    STX,
    LinkEvent,
    SerialDecoder,
    crc16,
    serial_frame,
)

DEFAULT_PORT = 20007         # the ECR interface over TCP

__all__ = [name for name in dir() if not name.startswith("_")]

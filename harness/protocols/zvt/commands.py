"""ZVT commands declared as data: each control field (CLASS, INSTR) once, with its name and the positional fields
that start its data before any BMPs.

>>> CONTROL["authorization"], COMMANDS[(0x04, 0x0F)].name
((6, 1), 'status_information')
>>> [f.name for f in COMMANDS[(0x06, 0x00)].prefix]
['password', 'config_byte', 'currency']
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Field:
    """A positional (untagged) field: `size` bytes (-1 = the rest of the data) in `encoding` (bcd | int | text)."""

    name: str
    size: int
    encoding: str
    optional: bool = False


@dataclass(frozen=True)
class Command:
    """One control field. `bmps` False: the data is the positional prefix only."""

    cls: int
    ins: int
    name: str
    prefix: tuple[Field, ...] = ()
    bmps: bool = True

    @property
    def control(self) -> tuple[int, int]:
        return (self.cls, self.ins)


PASSWORD = Field("password", 3, "bcd")
OPTIONAL_PASSWORD = Field("password", 3, "bcd", optional=True)

COMMAND_TABLE: tuple[Command, ...] = (
    Command(0x80, 0x00, "ack"),
    Command(0x84, 0x00, "ack_84"),                 # positive acknowledgement in the 84 class
    Command(0x04, 0x0F, "status_information"),
    Command(0x04, 0xFF, "intermediate_status",
            (Field("status", 1, "int"), Field("timeout", 1, "int", optional=True)), bmps=False),
    Command(0x05, 0x01, "status_enquiry", (OPTIONAL_PASSWORD,)),
    Command(0x06, 0x00, "registration",
            (PASSWORD, Field("config_byte", 1, "int"), Field("currency", 2, "bcd", optional=True))),
    Command(0x06, 0x01, "authorization"),
    Command(0x06, 0x02, "log_off"),
    Command(0x06, 0x0F, "completion"),
    Command(0x06, 0x1E, "abort", (Field("result_code", 1, "int", optional=True),), bmps=False),
    Command(0x06, 0x20, "repeat_receipt", (OPTIONAL_PASSWORD,)),
    Command(0x06, 0x30, "reversal", (PASSWORD,)),
    Command(0x06, 0x50, "end_of_day", (OPTIONAL_PASSWORD,)),
    Command(0x06, 0xB0, "ecr_abort"),
    Command(0x06, 0xD1, "print_line", (Field("attribute", 1, "int"), Field("text", -1, "text")), bmps=False),
    Command(0x06, 0xD3, "print_text_block"),
)
NACK_CLASS = 0x84            # 84 xx: negative acknowledgement with result code xx (xx != 00)
NACK = Command(NACK_CLASS, 0x83, "nack")    # the instruction byte is the result code, 83 when none is given

COMMANDS: dict[tuple[int, int], Command] = {c.control: c for c in COMMAND_TABLE}
BY_NAME: dict[str, Command] = {c.name: c for c in (*COMMAND_TABLE, NACK)}
CONTROL: dict[str, tuple[int, int]] = {c.name: c.control for c in COMMAND_TABLE}
KNOWN_CLASSES = frozenset(c.cls for c in COMMAND_TABLE) | {0x08}     # 08: further commands (not used here)


def command_name(cls: int, ins: int) -> str:
    """The name of a control field: 'authorization', 'nack' (84 xx, xx != 00) or 'unknown_06_99'."""
    if cls == NACK_CLASS and ins != 0x00:
        return NACK.name
    known = COMMANDS.get((cls, ins))
    return known.name if known is not None else f"unknown_{cls:02X}_{ins:02X}"

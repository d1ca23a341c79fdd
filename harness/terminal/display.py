"""What the emulated terminal shows the cardholder during a payment, as ZVT intermediate statuses (04 FF).

Real terminals differ here: one says only "insert card" and "waiting for FEP", another announces the card it
detected, the application selection, the PIN pad, the dial-up, "approved, please take goods" and "please remove
card" before the Status-Information (04 0F). A till must acknowledge each and ignore the codes it does not know.
A `Display` maps the moments of a payment to the codes the terminal sends then (the ZVT intermediate status
table, PA00P015 chapter "Intermediate Status-Information", as Portalum.Zvt and kotlin-zvt-library list it), some
with the optional timeout byte a terminal may append. `classic` is what the terminal always sent; the fault matrix
picks one per behaviour row (`harness.acceptance.matrix.TerminalSetup.statuses`).

>>> DISPLAYS["classic"].codes("ask_card"), DISPLAYS["chip-pin"].codes("approved")
((10,), (28, 11))
>>> display("contactless").codes("pin")
()
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.protocols import zvt

# The moments of a payment at which a terminal may show something.
MOMENTS = ("ask_card", "card_read", "pin", "wrong_pin", "unreadable", "online", "approved", "declined",
           "offline", "reversal")

# A status code, or (code, timeout in seconds) for the optional timeout byte of 04 FF.
Shown = int | tuple[int, int]


@dataclass(frozen=True)
class Display:
    """One terminal's intermediate statuses: moment -> what it shows, in order."""

    name: str
    moments: dict[str, tuple[Shown, ...]] = field(default_factory=dict)
    meaning: str = ""

    def shown(self, moment: str) -> tuple[Shown, ...]:
        """What this terminal sends at `moment` (codes, or (code, timeout) pairs)."""
        if moment not in MOMENTS:
            raise KeyError(f"unknown payment moment {moment!r}; moments: {', '.join(MOMENTS)}")
        return self.moments.get(moment, ())

    def codes(self, moment: str) -> tuple[int, ...]:
        """The status codes alone."""
        return tuple(s if isinstance(s, int) else s[0] for s in self.shown(moment))


CARD_DETECTED = 0x68          # PT has detected customer card insertion
APPLICATION_SELECTION = 0x2C  # application selection, please wait
TAKE_GOODS = 0x1C             # approved, please take goods
CONNECTING_DIAL_UP = 0xD2
DIAL_UP_MADE = 0xD3
OFFLINE = 0xF1
ONLINE = 0xF2
OFFLINE_TRANSACTION = 0xF3
DECLINED_REMOVE_CARD = 0x5D   # declined / please remove card
INCORRECT_PIN_REMOVE_CARD = 0x55
NOT_READABLE_REMOVE_CARD = 0x4C
NO_MATCHING_CODE = 0xFF       # no appropriate ZVT status code: see TLV tags 24 and 07 (sent without them)

DISPLAYS: dict[str, Display] = {d.name: d for d in (
    Display("classic", {
        "ask_card": (zvt.STATUS_INSERT_CARD,),
        "wrong_pin": (zvt.STATUS_INCORRECT_PIN,),
        "unreadable": (zvt.STATUS_CARD_NOT_READABLE,),
        "online": (zvt.STATUS_WAITING_FOR_HOST,),
        "declined": (zvt.STATUS_DECLINED,),
        "reversal": (zvt.STATUS_AUTO_REVERSAL,),
    }, "insert card, waiting for FEP, declined: what the emulated terminal always sent"),
    Display("chip-pin", {
        "ask_card": ((zvt.STATUS_INSERT_CARD, 60),),
        "card_read": (CARD_DETECTED, APPLICATION_SELECTION),
        "pin": ((zvt.STATUS_WATCH_PIN_PAD, 30),),
        "wrong_pin": (zvt.STATUS_INCORRECT_PIN, INCORRECT_PIN_REMOVE_CARD),
        "unreadable": (NOT_READABLE_REMOVE_CARD,),
        "online": (zvt.STATUS_PLEASE_WAIT, zvt.STATUS_WAITING_FOR_HOST),
        "approved": (TAKE_GOODS, zvt.STATUS_REMOVE_CARD),
        "declined": (DECLINED_REMOVE_CARD,),
        "offline": (OFFLINE_TRANSACTION, zvt.STATUS_REMOVE_CARD),
        "reversal": (zvt.STATUS_AUTO_REVERSAL, zvt.STATUS_REMOVE_CARD),
    }, "a chip-and-PIN terminal: card detected, application selection, PIN pad, remove card"),
    Display("contactless", {
        "ask_card": (zvt.STATUS_INSERT_CARD,),
        "card_read": (zvt.STATUS_PLEASE_WAIT,),
        "wrong_pin": (zvt.STATUS_INCORRECT_PIN,),
        "unreadable": (zvt.STATUS_CARD_NOT_READABLE,),
        "online": (ONLINE, zvt.STATUS_WAITING_FOR_HOST),
        "approved": (TAKE_GOODS,),
        "declined": (zvt.STATUS_DECLINED,),
        "offline": (OFFLINE, OFFLINE_TRANSACTION),
        "reversal": (zvt.STATUS_AUTO_REVERSAL,),
    }, "a tap: please wait, online, approved; no PIN below the contactless limit"),
    Display("dial-up", {
        "ask_card": (zvt.STATUS_INSERT_CARD,),
        "card_read": (CARD_DETECTED, NO_MATCHING_CODE),
        "pin": (zvt.STATUS_WATCH_PIN_PAD,),
        "wrong_pin": (zvt.STATUS_INCORRECT_PIN,),
        "unreadable": (zvt.STATUS_CARD_NOT_READABLE, zvt.STATUS_REMOVE_CARD),
        "online": (CONNECTING_DIAL_UP, DIAL_UP_MADE, zvt.STATUS_WAITING_FOR_HOST),
        "approved": (zvt.STATUS_REMOVE_CARD,),
        "declined": (zvt.STATUS_DECLINED, zvt.STATUS_REMOVE_CARD),
        "offline": (OFFLINE_TRANSACTION,),
        "reversal": (zvt.STATUS_AUTO_REVERSAL, zvt.STATUS_REMOVE_CARD),
    }, "an older terminal dialling its host; also an FF 'no matching code' status without its TLV"),
)}
DEFAULT_DISPLAY = "classic"


def display(name: str | None) -> Display:
    """The display called `name` ('' or None: classic); ValueError naming the known ones."""
    try:
        return DISPLAYS[name or DEFAULT_DISPLAY]
    except KeyError:
        raise ValueError(f"unknown terminal display {name!r}; known: {', '.join(DISPLAYS)}") from None

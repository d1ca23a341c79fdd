"""The emulated terminal itself: its settings and timers, the card slot, the transaction that runs, and the three
jobs it does, one module each:

    payment.py    a sale: card, PIN, online or offline authorisation, the outcome for the issue of goods
    reversals.py  what it owes the host: reversals (0420/0421) and offline advices (0220/0221), stored and
                  repeated until acknowledged (store and forward)
    admin.py      void (06 30), end of day (06 50) and the batch totals

The ZVT side (`harness.terminal.ecr`) calls `core.payments.authorize`, `core.admin.void`, ...; tests call
`present_card`, `abort`, `set_timer`. Every timer is nominal seconds scaled by the rig's timing factor.

>>> core = TerminalCore(journal=Journal(":memory:"), host_address=("127.0.0.1", 5000))     # doctest: +SKIP
>>> core.present_card("decline"); core.payments.authorize(1999).result_code               # doctest: +SKIP
5
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from typing import Any

from harness.core.cards import DEFAULT_CARD, TestCard, card
from harness.core.rig import Timing
from harness.protocols import iso8583, zvt
from harness.terminal.acquirer import AcquirerClient
from harness.terminal.admin import Admin
from harness.terminal.display import Display, display
from harness.terminal.journal import Journal
from harness.terminal.outcome import Outcome, TransactionAborted
from harness.terminal.payment import Payments
from harness.terminal.reversals import Reversals

log = logging.getLogger(__name__)

# Nominal protocol timers (seconds at timing scale 1.0).
TIMERS: dict[str, float] = {
    "t3": 5.0,  # ZVT: wait for the ECR's acknowledgement
    "t4": 180.0,  # ZVT: longest the ECR may hold the result with 84 9C (issue of goods)
    "goods_retry": 2.0,  # ZVT: repeat the Status-Information this long after 84 9C
    "card": 60.0,  # wait for a card (the ECR's BMP 01 overrides it)
    "host": 10.0,  # ISO 8583: wait for the host's response (Visa POS limit)
    "host_connect": 5.0,  # ISO 8583: TCP connect to the host
    "reversal_retry": 5.0,  # ISO 8583: repeat a stored reversal/advice (0421 / 0221) this often
}


class TerminalCore:
    """The terminal shared by the emulated terminal driver and `posrig terminal serve`."""

    def __init__(
        self,
        *,
        journal: Journal,
        host_address: tuple[str, int],
        timing: Timing | None = None,
        connect: Any = None,
        transcript: Any = None,
        terminal_id: str = "29001234",
        merchant_id: str = "POSRIG000000001",
        currency: int = 978,
        auto_present: bool = True,
        offline: bool = False,
        floor_limit: int = 0,
        spec: str = iso8583.DEFAULT_SPEC,
        framing: str = "2byte",
        timers: dict[str, float] | None = None,
        unconfirmed: str = "book",
        default_card: TestCard = DEFAULT_CARD,
        display_name: str = "",
        merchant_copy: float = 0.0,
    ):
        self.journal = journal
        self.timing = timing or Timing()
        self.transcript = transcript
        self.terminal_id = terminal_id
        self.merchant_id = merchant_id
        self.currency = currency
        self.auto_present = auto_present
        self.default_card = default_card
        self.offline = offline
        self.floor_limit = floor_limit
        if unconfirmed not in ("book", "reverse"):
            raise ValueError(f"unconfirmed must be 'book' or 'reverse', not {unconfirmed!r}")
        self.unconfirmed = unconfirmed
        self.display: Display = display(display_name)
        # Every message of ours whose acknowledgement (80 00 / 84 xx) did not come within T3, oldest first:
        # {"t", "apdu", "peer", "closed" (the ECR hung up first), "opened" (its connection, see EcrSession),
        # "late" (it came after all)}.
        self.unacknowledged: collections.deque[dict[str, Any]] = collections.deque(maxlen=1024)  # a long serve
        # Nominal seconds the terminal prints its own merchant copy after a payment, busy meanwhile (0: it keeps
        # no copy); `_slow_finishes` payments left that do so (None: every payment).
        self.merchant_copy = float(merchant_copy)
        self._slow_finishes: int | None = None
        self.timers = dict(TIMERS)
        for name, value in (timers or {}).items():
            self.set_timer(name, value)
        self.host = AcquirerClient(
            host_address,
            timeout=self.seconds("host"),
            connect_timeout=self.seconds("host_connect"),
            connect=connect,
            spec=spec,
            framing=framing,
            transcript=transcript,
        )
        self._cards: queue.Queue[tuple[TestCard, float]] = queue.Queue()
        self._abort = threading.Event()
        self.busy = threading.Lock()  # one ZVT command at a time
        self.closing = threading.Event()
        self.card_wanted = threading.Event()  # set while a payment waits for the card (the customer's turn)
        self.in_progress = False
        self.reversals = Reversals(self)
        self.payments = Payments(self)
        self.admin = Admin(self)

    # -- timers ----------------------------------------------------------------------------------------------
    def set_timer(self, name: str, nominal: float) -> None:
        """Set a protocol timer in nominal seconds (scaled by the rig's timing factor when used)."""
        if name not in TIMERS:
            raise KeyError(f"unknown timer {name!r}; timers: {', '.join(TIMERS)}")
        self.timers[name] = float(nominal)
        if hasattr(self, "host"):
            self.host.timeout = self.seconds("host")
            self.host.connect_timeout = self.seconds("host_connect")

    def unacknowledged_message(self, apdu: str, peer: str, *, closed: bool, opened: float) -> dict[str, Any]:
        """Note a message the ECR did not acknowledge within T3 (marked `late` if the 80 00 comes after all);
        `opened`: when its connection was made."""
        entry = {"t": time.time(), "apdu": apdu, "peer": peer, "closed": closed, "opened": opened, "late": False}
        self.unacknowledged.append(entry)
        return entry

    def seconds(self, name: str) -> float:
        return self.timing.seconds(self.timers[name])

    # -- test controls ---------------------------------------------------------------------------------------
    def present_card(self, which: str | TestCard = DEFAULT_CARD, delay: float = 0.0) -> TestCard:
        """Queue a card for the running or next payment, presented `delay` real seconds after it asks for
        one."""
        c = card(which)
        self._cards.put((c, float(delay)))
        self.note("card_queued", card=c.name, pan=c.masked_pan, delay=delay)
        return c

    def abort(self, source: str = "cashier") -> bool:
        """Press abort: the running payment ends with 06 1E 6C (reversing it if the host already approved).
        Returns False when no payment is running."""
        if not self.in_progress:
            return False
        self.note("abort_requested", source=source)
        self._abort.set()
        return True

    def set_display(self, name: str) -> None:
        """Show the intermediate statuses of display `name` (harness.terminal.display) from the next payment."""
        self.display = display(name)

    def finish_slowly(self, nominal: float, payments: int | None = 1) -> None:
        """The next `payments` payments (None: every one) end slowly: after its completion (06 0F / 06 1E) the
        terminal prints its own merchant copy for `nominal` seconds (scaled), busy meanwhile, so a command the
        ECR sends then is refused with 84 A0 (receiver not ready)."""
        self.merchant_copy = float(nominal)
        self._slow_finishes = payments

    def after_payment(self) -> None:
        """Called once a payment's dialogue is over (the terminal is still busy): print the merchant copy."""
        if self.merchant_copy <= 0 or self._slow_finishes == 0:
            return
        if self._slow_finishes is not None:
            self._slow_finishes -= 1
        seconds = self.timing.seconds(self.merchant_copy)
        self.note("merchant_copy", seconds=round(seconds, 3))
        self.closing.wait(seconds)

    def clear_cards(self) -> None:
        while not self._cards.empty():
            self._cards.get_nowait()

    # -- the running transaction -----------------------------------------------------------------------------
    def begin(self) -> None:
        self._abort.clear()
        self.in_progress = True

    def end(self) -> None:
        self.in_progress = False
        self._abort.clear()
        if self.journal.saf_pending():
            self.reversals.kick()  # send what is owed now that the transaction is over

    @property
    def aborted(self) -> bool:
        return self._abort.is_set()

    def wait_abort(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True as soon as the running payment is aborted."""
        return self._abort.wait(seconds)

    def wait_for_card(self, timeout: float) -> TestCard:
        """The next presented card; raises TransactionAborted on abort, TimeoutError when none comes."""
        deadline = time.monotonic() + timeout
        try:
            return self._next_card(deadline)
        finally:
            self.card_wanted.clear()

    def _next_card(self, deadline: float) -> TestCard:
        while True:
            if self._abort.is_set():
                raise TransactionAborted("aborted while waiting for a card")
            try:
                c, delay = self._cards.get_nowait()
            except queue.Empty:
                if self.auto_present:
                    c, delay = self.default_card, 0.0
                else:
                    self.card_wanted.set()
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError("no card presented") from None
                    self._abort.wait(min(0.01, left))
                    continue
            if delay and self._abort.wait(delay):
                raise TransactionAborted("aborted before the card was presented")
            self.note("card_presented", card=c.name, pan=c.masked_pan)
            return c

    def fail(self, txn: int, code: int, state: str, base: dict[str, Any] | None = None, **extra: Any) -> Outcome:
        """Close a transaction that did not go through: journal it, note it, report `code` to the ECR."""
        self.journal.update(txn, state=state, result_code=code, **extra)
        self.note(
            "sale_failed",
            txn=txn,
            state=state,
            result_code=f"{code:02X}",
            meaning=zvt.RESULT_CODES.get(code, "authorisation system"),
        )
        status = dict(base or {})
        if status:
            status["result_code"] = code
        return Outcome(txn, code, status)

    # -- lifecycle -------------------------------------------------------------------------------------------
    def power_lost(self) -> None:
        """The power cut: the journal takes no more writes (the running command stops where it is), waits end,
        store-and-forward stops, the host connection drops. The journal file is what the next boot starts from
        (`EmulatedTerminal.power_cycle`)."""
        self.journal.freeze()
        self.close()

    def close(self) -> None:
        self.closing.set()
        self._abort.set()
        self.reversals.stop()
        self.host.close()
        self.reversals.join(2.0)

    def note(self, event: str, **fields: Any) -> None:
        if self.transcript is not None:
            self.transcript.write(event, link="terminal", **fields)

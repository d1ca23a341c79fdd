"""The emulated payment terminal driver: ZVT towards the till, ISO 8583 towards the rig's acquirer host.

In the emulated rig it listens at `terminal:20007` inside its namespace and reaches the host at
the bound host's `address`. Without a topology it listens on 127.0.0.1 at an ephemeral port.

Test API (the `terminal` fixture):

>>> terminal.present_card("decline")  # the next payment's card  # doctest: +SKIP
>>> terminal.present_card("approve", delay=0.2)  # presented 0.2 s after the terminal asks  # doctest: +SKIP
>>> terminal.auto_present = False  # wait for present_card() (default: approve)  # doctest: +SKIP
>>> terminal.abort()  # cashier presses abort  # doctest: +SKIP
>>> terminal.set_timer("host", 10)  # nominal seconds, scaled by the rig  # doctest: +SKIP
>>> terminal.finish_slowly(20)  # the next payment's merchant copy keeps it busy 20 s nominal  # doctest: +SKIP
>>> terminal.journal.last("sale")["state"]  # 'approved'  # doctest: +SKIP

Rig options: auto_present, offline, floor_limit (minor units), display (the intermediate statuses it shows:
classic, chip-pin, contactless, dial-up; `harness.terminal.display`), merchant_copy (nominal seconds it prints
its own merchant copy after every payment, busy meanwhile; default 0), ecr_receipts (true: always 06 D1 print lines,
false: never; default: as the ECR registered, `zvt.receipt_printout`), unconfirmed (book|reverse), terminal_id,
currency, timers {name: nominal seconds}, journal (path), password (6 digits, quoted in YAML: "012345", which
unquoted would read as an octal number; commands carrying another password are refused with 84 83; not set:
any password is accepted, as many terminals ship).
"""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Any

from harness.core.address import parse_hostport
from harness.core.cards import TestCard
from harness.core.device import DeviceContext
from harness.terminal import PaymentTerminal
from harness.terminal.core import TerminalCore
from harness.terminal.ecr import EcrServer
from harness.terminal.journal import Journal
from harness.terminal.serial_link import PtyPort, SerialLink

DEFAULT_ECR_PORT = 20007


def parse_address(text: str, default_port: int) -> tuple[str, int]:
    """'HOST:PORT' (or ':PORT', 'HOST') -> (host, port); AddressError (a ValueError) names the bad text."""
    return parse_hostport(text, default_port=default_port)


class EmulatedTerminal(PaymentTerminal):
    """A ZVT payment terminal emulated in-process (threads, real sockets, SQLite journal)."""

    close_timeout = 5.0

    def __init__(self, spec: Any, ctx: DeviceContext, **bound: Any):
        super().__init__(spec, ctx, **bound)
        self.options = dict(getattr(spec, "options", {}) or {})
        self.core: TerminalCore | None = None
        self.server: EcrServer | None = None
        self._journal: Journal | None = None
        self._transcript = None
        self._ecr_address: tuple[str, int] | None = None
        self._journal_path: Any = None
        self._dead: list[Journal] = []              # journals of the terminal before a power cycle (closed at close)
        self._pty: PtyPort | None = None
        self.serial = False

    def start(self) -> None:
        ctx, opts = self.ctx, self.options
        ns = ctx.namespace
        self.serial = getattr(self.spec, "transport", "tcp") == "serial"
        listener = None
        if self.serial:
            if getattr(self.spec, "address", "pty") not in (None, "pty"):
                raise ValueError(
                    f"terminal {self.name!r}: the emulated terminal's serial port is a pty; "
                    "set `address: pty` (a real serial line needs the real terminal)"
                )
            self._pty = PtyPort()
        elif ns is not None:
            _, port = parse_address(
                getattr(self.spec, "address", None) or f"terminal:{DEFAULT_ECR_PORT}", DEFAULT_ECR_PORT
            )
            listener = ns.listen(("0.0.0.0", port))
            ip = ns.ip or ctx.address_of(self.spec.node)
            self._ecr_address = (ip, listener.getsockname()[1])
        else:
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", 0))
            listener.listen(16)
            self._ecr_address = ("127.0.0.1", listener.getsockname()[1])
        self._journal_path = opts.get("journal") or ctx.evidence.file(
            f"{self.name}-journal.sqlite", "terminal journal (SQLite)")
        self._transcript = ctx.evidence.transcript(self.name)
        try:
            self._boot(listener)
            self._resume(ctx.extra.get("carried", {}).get(self.name))
            self.server.start()
            if self._pty is not None:
                link = SerialLink(self._pty.master, self.core.seconds("t3"), self._transcript)
                self.server.attach(link, self._pty.path)
        except BaseException:
            if listener is not None:
                listener.close()
            if self._pty is not None:
                self._pty.close()
            raise

    def _boot(self, listener: socket.socket | None) -> None:
        """Open the journal and build the terminal on it, serving ECR connections on `listener`."""
        ctx, opts, ns = self.ctx, self.options, self.ctx.namespace
        host_address = self._host_address()
        self._journal = Journal(self._journal_path)
        connect = (lambda addr, timeout: ns.connect(addr, timeout)) if ns is not None else None
        self.core = TerminalCore(
            journal=self._journal,
            host_address=host_address,
            timing=ctx.timing,
            connect=connect,
            transcript=self._transcript,
            terminal_id=str(opts.get("terminal_id", "29001234")),
            currency=int(opts.get("currency", 978)),
            auto_present=bool(opts.get("auto_present", True)),
            offline=bool(opts.get("offline", False)),
            floor_limit=int(opts.get("floor_limit", 0)),
            timers=opts.get("timers") or {},
            unconfirmed=str(opts.get("unconfirmed", "book")),
            display_name=str(opts.get("display") or ""),
            merchant_copy=float(opts.get("merchant_copy", 0.0)),
        )
        self.server = EcrServer(
            self.core,
            listener,
            transcript=self._transcript,
            ecr_receipts=opts.get("ecr_receipts"),
            password=opts.get("password"),
        )

    def power_cycle(self, off_seconds: float = 0.0) -> list[dict[str, Any]]:
        """The terminal loses power with whatever it was doing, and boots again after `off_seconds`: ECR connections
        reset, the host connection dropped, the running command stopped where it was (its journal takes no more
        writes). It boots on its durable memory: the same journal (transactions, the store-and-forward queue,
        counters) and the ECR's registration; then it settles what the cut left unfinished
        (`Reversals.after_power_loss`: an unanswered or undelivered approval is reversed) before it takes an ECR
        connection. Returns those boot decisions. TCP terminals only (a serial one keeps its pty)."""
        if self._pty is not None or self._ecr_address is None:
            raise RuntimeError(f"terminal {self.name!r}: power_cycle needs the TCP ECR port")
        core, server, journal = self._core, self.server, self._journal
        memory = {"config_byte": server.commands.config_byte,      # its counters are in the journal itself
                  "registered_currency": server.commands.registered_currency}
        self._transcript.write("power_off", link="terminal")
        core.power_lost()
        server.close(timeout=2.0, reset=True)
        self._dead.append(journal)
        if off_seconds > 0:
            time.sleep(off_seconds)                     # off: connections to the ECR port are refused
        ns = self.ctx.namespace
        port = self._ecr_address[1]
        listener = ns.listen(("0.0.0.0", port)) if ns is not None else socket.create_server(("127.0.0.1", port))
        try:
            self._boot(listener)
            self._resume(memory)
            done = self.core.reversals.after_power_loss()
            self._transcript.write("power_on", link="terminal", recovered=done)
            self.server.start()
        except BaseException:
            listener.close()
            raise
        return done

    def _resume(self, memory: dict[str, Any] | None) -> None:
        """Start from what the previous terminal of this bench slot kept over its "power cycle": its counters
        and the ECR's registration (config byte, currency). Its transactions and owed reversals are not kept."""
        if not memory:
            return
        self._journal.seed_counters(memory.get("counters") or {})
        commands = self.server.commands
        commands.config_byte = int(memory.get("config_byte", commands.config_byte))
        commands.registered_currency = memory.get("registered_currency")

    def _remember(self) -> None:
        carried = self.ctx.extra.get("carried")
        if carried is None or self.server is None or self._journal is None:
            return
        carried[self.name] = {"counters": self._journal.counters(),
                              "config_byte": self.server.commands.config_byte,
                              "registered_currency": self.server.commands.registered_currency}

    def _host_address(self) -> tuple[str, int]:
        if "host" in self.options:
            return parse_address(self.options["host"], 5000)
        if self.host is None:
            raise RuntimeError(
                f"terminal {self.name!r}: the emulated terminal needs an acquirer: add a host device to the rig, "
                "or set options.host: HOST:PORT"
            )
        address = self.host.address
        return (str(address[0]), int(address[1]))

    # -- PaymentTerminal -------------------------------------------------------------------------------------
    @property
    def ecr_address(self) -> tuple[str, int]:
        if self._ecr_address is None:
            if self._pty is not None:
                raise RuntimeError(f"terminal {self.name!r} speaks ZVT on a serial pty: use ecr_device")
            raise RuntimeError("terminal not started")
        return self._ecr_address

    @property
    def ecr_device(self) -> str | None:
        """The pty path the till opens as its serial port (transport: serial), else None."""
        return self._pty.path if self._pty is not None else None

    @property
    def journal(self) -> Journal:
        if self._journal is None:
            raise RuntimeError("terminal not started")
        return self._journal

    def identity(self) -> dict[str, Any]:
        ident = super().identity()
        ident.update(
            model="posrig emulated ZVT terminal",
            protocol="ZVT 13.x over " + ("RS-232 (pty)" if self._pty is not None else "TCP"),
            ecr=f"{self._ecr_address[0]}:{self._ecr_address[1]}" if self._ecr_address else self.ecr_device,
        )
        return ident

    # -- test API --------------------------------------------------------------------------------------------
    def present_card(self, which: str | TestCard = "approve", delay: float = 0.0) -> TestCard:
        """Hand the terminal a test card for the running or next payment, after `delay` real seconds."""
        return self._core.present_card(which, delay)

    def abort(self) -> bool:
        """The cashier presses abort on the terminal. False when no payment is running."""
        return self._core.abort("cashier")

    def set_timer(self, name: str, nominal: float) -> None:
        """Set a protocol timer (t3, t4, goods_retry, card, host, host_connect, reversal_retry) in nominal
        seconds."""
        self._core.set_timer(name, nominal)

    @property
    def auto_present(self) -> bool:
        return self._core.auto_present

    @auto_present.setter
    def auto_present(self, value: bool) -> None:
        self._core.auto_present = bool(value)

    def configure(self, **options: Any) -> None:
        """Change offline / floor_limit / unconfirmed / ecr_receipts / display while running."""
        for key, value in options.items():
            if key == "ecr_receipts":
                self.server.commands.ecr_receipts = value
            elif key in ("offline", "floor_limit", "unconfirmed"):
                setattr(self._core, key, value)
            elif key == "display":
                self._core.set_display(value)
            else:
                raise KeyError(
                    f"unknown terminal option {key!r}; use offline, floor_limit, unconfirmed, ecr_receipts, display"
                )

    def finish_slowly(self, nominal: float, payments: int | None = 1) -> None:
        """The next `payments` payments end with a merchant copy printed on the terminal's own printer for
        `nominal` seconds (scaled): busy meanwhile, a command the ECR sends then is refused with 84 A0."""
        self._core.finish_slowly(nominal, payments)

    @property
    def busy_refusals(self) -> int:
        """How many ECR commands the terminal refused with 84 A0 because it was busy."""
        return self.server.busy_refusals if self.server is not None else 0

    def flush_reversals(self, budget: float = 2.0) -> bool:
        """Try to deliver every stored reversal/advice now; True when none is owed."""
        return self._core.reversals.flush(budget)

    @property
    def _core(self) -> TerminalCore:
        if self.core is None:
            raise RuntimeError("terminal not started")
        return self.core

    def close(self) -> None:
        try:
            self._remember()
        except Exception:  # noqa: BLE001 - the next terminal then starts from zero, as a new one would
            pass
        if self.core is not None:
            self.core.close()  # aborts a waiting payment, stops store-and-forward
        if self.server is not None:
            self.server.close(timeout=2.0)
        if self._pty is not None:
            self._pty.close()
            self._pty = None
        if self._transcript is not None:
            self._transcript.close()
        if self._journal is not None:
            try:
                self.ctx.evidence.write_json(
                    f"{self.name}-journal.json",
                    {
                        "transactions": self._journal.transactions(),
                        "store_and_forward": self._journal.saf_all(),
                    },
                    "terminal journal at close",
                )
            except Exception:  # noqa: BLE001 - evidence is best effort at teardown; the SQLite file stays
                pass
            self._journal.close()
        for old in self._dead:
            with contextlib.suppress(Exception):
                old.close()
        self._dead = []
        self.server = self.core = None
        self._transcript = None

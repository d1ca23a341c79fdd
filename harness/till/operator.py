"""The `operator` till driver: a physical till with a person at the bench. posrig tells them what to ring up,
then waits for their answer or for the devices (a receipt on the printer, a new transaction in the terminal's
journal), and records what the till showed.

    devices:
      till: {kind: till, mode: real, driver: operator, transport: operator,
             options: {answer_timeout: 600, input: /dev/tty, output: /dev/tty}}

The person types one letter: p(aid) d(eclined) c(ancelled) f(ailed) u(nknown). Whether a receipt came out is
read from the printer (the operator is asked only when the rig's printer cannot tell).

The operator protocol over FIFOs (a remote console; docs/bench.md has a worked example):

- `options.input` (posrig reads answers) and `options.output` (posrig writes prompts) are FIFOs. posrig creates
  them (mode 0600) when they do not exist, and opens both read-write and non-blocking, so neither side waits for
  the other: a console may open them in either order, before or after posrig, close them and open them again.
- Both are opened once per posrig process and kept for every scenario (not reopened per sale).
- Lines of UTF-8 text. Every prompt starts with `posrig:`. A question ends with its choices in brackets,
  `... [p=paid/d=declined/...]`; the answer is one line whose first letter is a choice (other lines are
  answered "please type one of ...").
- Prompts written while no console is reading wait in the FIFO (up to the pipe's 64 KiB) and are read on connect.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import select
import stat
import threading
import time
from pathlib import Path
from typing import IO, Any

from harness.core.cards import card as test_card
from harness.till import Till
from harness.till.outcome import SaleOutcome, basket_total, price_cents

ANSWERS = {"p": "paid", "d": "declined", "c": "cancelled", "f": "failed", "u": "unknown"}


class OperatorUnavailable(RuntimeError):
    """Nobody can be asked: no terminal to prompt on, or the operator did not answer in time."""


class ConsoleOperator:
    """A person at a text console (default /dev/tty, so it works under pytest's output capture)."""

    def __init__(self, input: IO[str], output: IO[str]):
        self.input, self.output = input, output
        self._pending = b""           # bytes read from the input but not yet a whole line

    @classmethod
    def open(cls, input_path: str = "/dev/tty", output_path: str = "/dev/tty") -> ConsoleOperator:
        """The console at `input_path`/`output_path`: a terminal device, or FIFOs (made when missing), opened in an
        order-free, reconnect-tolerant way (see the module docstring)."""
        try:
            for path in (input_path, output_path):
                if not path.startswith("/dev/") and not os.path.exists(path):
                    os.mkfifo(path, 0o600)
            if _is_fifo(input_path) or _is_fifo(output_path):
                # O_RDWR on a FIFO never blocks and holds both ends: no open-order deadlock, no EOF when the
                # console goes away, prompts kept until it comes back.
                fin = os.open(input_path, os.O_RDWR | os.O_NONBLOCK)
                fout = os.open(output_path, os.O_RDWR | os.O_NONBLOCK)
                return cls(os.fdopen(fin, "r", encoding="utf-8"), os.fdopen(fout, "w", encoding="utf-8"))
            return cls(open(input_path, encoding="utf-8"), open(output_path, "w", encoding="utf-8"))
        except OSError as exc:
            raise OperatorUnavailable(f"cannot prompt the operator on {input_path}/{output_path}: {exc}; "
                                      "run posrig "
                                      "from a terminal at the bench, or set the till's options.input/output "
                                      "to FIFOs") from exc

    def tell(self, text: str) -> None:
        data = (text.rstrip("\n") + "\n").encode("utf-8")
        fd = self.output.fileno()
        deadline = time.monotonic() + 5.0
        while data:
            try:
                data = data[os.write(fd, data):]
            except BlockingIOError:                   # a full FIFO nobody reads: wait a little, then give up
                if time.monotonic() > deadline:
                    raise OperatorUnavailable("nobody reads the operator's prompts (the FIFO is full); "
                                              "open the console on the till's options.output") from None
                select.select([], [fd], [], 0.1)

    def _line(self, deadline: float) -> str | None:
        """The next line typed (unbuffered reads, so select() sees exactly what is pending); None on
        timeout/EOF."""
        fd = self.input.fileno()
        while b"\n" not in self._pending:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            try:
                chunk = os.read(fd, 1024)
            except BlockingIOError:
                continue
            if not chunk:
                return None
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return line.decode("utf-8", "replace")

    def ask(self, question: str, choices: dict[str, str], timeout: float) -> str | None:
        """The chosen key, or None when no valid answer came within `timeout` seconds."""
        keys = "/".join(f"{k}={v}" for k, v in choices.items())
        self.tell(f"{question} [{keys}]")
        deadline = time.monotonic() + timeout
        while (line := self._line(deadline)) is not None:
            key = line.strip().lower()[:1]
            if key in choices:
                return key
            self.tell(f"please type one of {', '.join(choices)}")
        return None

    def close(self) -> None:
        for stream in (self.input, self.output):
            try:
                stream.close()
            except OSError:
                pass


def _is_fifo(path: str) -> bool:
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False


_consoles: dict[tuple[str, str], ConsoleOperator] = {}
_consoles_lock = threading.Lock()


def console(input_path: str, output_path: str) -> ConsoleOperator:
    """The console on these paths, opened once per process and kept for every scenario of the run."""
    key = (str(Path(input_path).absolute()), str(Path(output_path).absolute()))
    with _consoles_lock:
        if key not in _consoles:
            _consoles[key] = ConsoleOperator.open(input_path, output_path)
        return _consoles[key]


@atexit.register
def close_consoles() -> None:
    """Close every kept console (at exit; tests call it to let a scripted person see the end)."""
    with _consoles_lock:
        for op in _consoles.values():
            with contextlib.suppress(OSError):
                op.close()
        _consoles.clear()


class OperatorTill(Till):
    """Prompts a person to run each sale on the real till; the printer and terminal say what really
    happened."""

    prompts_operator = True       # scenario steps a bench cannot automate become prompts (acceptance/steps.py)

    def __init__(self, spec: Any, ctx: Any, **bound: Any):
        super().__init__(spec, ctx, **bound)
        self.options = dict(spec.options or {})
        self.operator: Any = None
        self.sales: list[dict[str, Any]] = []
        self.next_card: str | None = None        # the test card the person presents for the next sale

    @property
    def answer_timeout(self) -> float:
        return float(self.options.get("answer_timeout", 600.0))

    def start(self) -> None:
        self.operator = self.ctx.extra.get("operator") or console(
            self.options.get("input", "/dev/tty"), self.options.get("output", "/dev/tty"))
        self.operator.tell(f"posrig: operator till {self.name!r} ready (rig {self.ctx.rig.name}).")

    def close(self) -> None:
        self.operator = None                     # kept open for the next scenario (see `console`)
        if self.sales:
            self.ctx.evidence.write_json("till-operator.json", {"sales": self.sales}, "operator's answers")

    def _devices(self) -> tuple[Any, Any]:
        return self.printer, self.terminal

    def sell(self, basket: list[dict[str, Any]], tender: str = "card") -> SaleOutcome:
        amount = basket_total(basket)
        printer, terminal = self._devices()
        receipts_before = len(printer.receipts) if printer is not None else None
        journal_before = _count(getattr(terminal, "journal", None))
        sale_id = f"OP-{len(self.sales) + 1:04d}"
        lines = [f"posrig: sale {sale_id}: ring up on the till, then take payment by {tender.upper()}:"]
        for item in basket:
            qty = int(item.get("qty", 1))
            name = item.get("name") or item.get("sku")
            lines.append(f"    {qty} x {name}  {price_cents(item['price']) * qty / 100:.2f}")
        lines.append(f"    TOTAL {amount / 100:.2f}")
        if tender == "card" and self.next_card:
            c = test_card(self.next_card)
            lines.append(f"posrig: when the terminal asks, present the {c.name.upper()} test card "
                         f"({c.card_name} {c.masked_pan})")
        lines.append(f"posrig: when the till shows the result, type one letter: "
                     f"{', '.join(f'{k}={v}' for k, v in ANSWERS.items())}")
        self.operator.tell("\n".join(lines))
        t0 = time.monotonic()
        key = self.operator.ask("When the till has finished, what does it show?", ANSWERS,
                                self.answer_timeout)
        elapsed = time.monotonic() - t0
        receipt = "none"
        if printer is not None:
            grace = min(5.0, self.ctx.timing.seconds(5.0))
            if len(printer.receipts) <= receipts_before:
                try:
                    printer.wait_for_receipt(grace)
                except TimeoutError:
                    pass
            receipt = "printed" if len(printer.receipts) > receipts_before else "none"
        else:
            got = self.operator.ask("Did a sale receipt come out?", {"y": "yes", "n": "no"},
                                    self.answer_timeout)
            receipt = "printed" if got == "y" else "none"
        journal_after = _count(getattr(terminal, "journal", None))
        new_tx = journal_after - journal_before if None not in (journal_after, journal_before) else None
        status = ANSWERS[key] if key else "unknown"
        message = ("operator's answer" if key
                   else f"no answer from the operator within {self.answer_timeout:.0f}s")
        outcome = SaleOutcome(sale_id=sale_id, status=status, tender=tender, amount_cents=amount,
                              receipt=receipt,
                              message=message, elapsed=round(elapsed, 3),
                              extra={"operator_answer": key, "terminal_new_transactions": new_tx,
                                     "source": "operator"})
        self.sales.append(outcome.to_dict())
        self.next_card = None
        return outcome

    def abort(self) -> None:
        """The cashier's abort: the person is told to press ABORT on the till now (while the sale runs)."""
        self.operator.tell("posrig: press ABORT on the till now (the payment is running)")

    def journal(self) -> list[dict[str, Any]]:
        return list(self.sales)


def _count(journal: Any) -> int | None:
    if journal is None:
        return None
    try:
        return len(journal)
    except TypeError:
        entries = getattr(journal, "entries", None) or getattr(journal, "transactions", None)
        return len(entries) if entries is not None else None

"""Crash points of a payment (`matrix.crash_scenarios`): a device loses power at an exact stage and comes back with
its durable memory. The bench cuts the power on what it observes, never after a sleep:

    till:request        the link resets the terminal's side of the connection carrying the 06 01 (its ack never
                        comes); the till is cut while it waits for that ack
    till:card-wait      the terminal waits for the card (after 04 FF); the card is presented once the till is off
    till:result         the link holds the completion (06 0F, or 06 1E for a decline) after the till booked the
                        04 0F; the till is cut before it arrives
    till:mid-receipt    the printer has the first receipt bytes (`steps.PAPER_OUT_AFTER`): the till is cut from the
                        printer's own thread (SIGKILL, `Launcher.cut_now`) and its later bytes never count
    till:after-receipt  the printer has the receipt's cut, the till has not yet heard the status it asks for after it
    printer:power-cycle the printer itself loses power at that byte (buffer lost, clients reset, offline), then is on
    terminal:online     the host has booked the approval, its 0210 is delayed: the terminal reboots
    terminal:result     the approval's 04 0F is dropped on its way to the till: the terminal reboots unconfirmed
    terminal:completion the till booked the 04 0F, the 06 0F is dropped: the terminal reboots

Each checks afterwards that the cut really came at its point (the till had not yet queried, the hold had not yet
released, the terminal's journal still showed the stage); if not, `CrashMissed` makes the row INCONCLUSIVE.

>>> crash_faults("terminal:result", "approve", 0.05)[0].spec.describe()
'drop zvt:04 0F terminal->till first'
"""

from __future__ import annotations

import threading
from typing import Any

from harness.acceptance import steps
from harness.core.cards import FOR_OUTCOME
from harness.core.events import Event, now, wait_until
from harness.link.faults import FaultSpec

POINT_TIMEOUT = 10.0            # s for a crash point to come once the sale started
QUERIES = ("zvt:06 B0", "zvt:05 01", "zvt:06 20")     # what a till sends once it stops waiting for an ack


class CrashMissed(RuntimeError):
    """The power was not cut at the scenario's point (it never came, or came too late): the row proves nothing."""


def crash_faults(crash: str, outcome: str, scale: float) -> tuple[Any, ...]:
    """The link faults a crash point needs (the bench's eyes on the wire), as `matrix.PlannedFault`s."""
    from harness.acceptance.matrix import PlannedFault

    hold = {"ms": round(5.0 * scale * 1.5 * 1000, 1)}        # T3 x1.5: the till is cut long before it ends
    specs = {
        "till:request": FaultSpec("rst", "zvt:06 01", "till->terminal", params={"to": "receiver"}),
        "till:result:approve": FaultSpec("hold", "zvt:06 0F", "terminal->till", params=hold),
        "till:result:decline": FaultSpec("hold", "zvt:06 1E", "terminal->till", params=hold),
        "terminal:result": FaultSpec("drop", "zvt:04 0F", "terminal->till"),
        "terminal:completion": FaultSpec("drop", "zvt:06 0F", "terminal->till"),
    }
    spec = specs.get(crash) or specs.get(f"{crash}:{outcome}")
    return (PlannedFault("till-terminal", spec),) if spec is not None else ()


def _await_fired(fault: Any) -> None:
    """The link saw the crash point's message; CrashMissed when it never came."""
    from harness.link.driver import FaultNotFired  # the engine's driver: only where a bench runs

    try:
        fault.wait_fired(POINT_TIMEOUT)
    except FaultNotFired as exc:
        raise CrashMissed(f"the power cut never came: {exc}") from None


def _seller(till: Any, basket: list[dict[str, Any]]) -> tuple[threading.Thread, list[Any]]:
    """Sell in another thread (the power cut comes from this one); the outcome, if the till lived to give one."""
    result: list[Any] = []

    def sell() -> None:
        try:
            result.append(till.sell(basket))
        except Exception:  # noqa: BLE001 - the till (or its terminal) lost power under it: no answer, by design
            pass

    thread = threading.Thread(target=sell, name="sale", daemon=True)
    thread.start()
    return thread, result


def _emulated_core(device: Any, what: str) -> Any:
    core = getattr(device, "core", None)
    if core is None:
        raise steps.NotOnThisBench(f"{what} cannot be watched byte by byte here (it needs the emulated {what})")
    return core


def till_power_cut(bench: Any, point: str, outcome: str, faults: list[Any], basket: list[dict[str, Any]],
                   events: list[Event]) -> None:
    """Cut the till's power at `point` of the sale of `basket`, let the terminal finish alone, boot the till."""
    from harness.acceptance.scenario import terminal_busy, wait_terminal_idle

    till, terminal = bench.till, bench.terminal
    launcher = getattr(till, "launcher", None)
    reached = threading.Event()
    instant: list[bool] = []

    def cut() -> None:                      # from the printer's thread: the till stops at this very byte
        instant.append(launcher is not None and launcher.cut_now())   # else (a plug, labgrid) a moment later
        reached.set()

    printer_core = None
    if point in ("mid-receipt", "after-receipt"):
        printer_core = _emulated_core(bench.printer, "printer")
        if point == "mid-receipt":
            printer_core.crash_after(steps.PAPER_OUT_AFTER, cut)
        else:
            printer_core.crash_at_cut(cut)
    auto = None
    if point == "card-wait":
        core = _emulated_core(terminal, "terminal")
        core.clear_cards()
        auto, terminal.auto_present = terminal.auto_present, False
    link = bench.links.get("till-terminal") if point == "request" else None
    asked_before = _queries(link)
    seller, _ = _seller(till, basket)
    try:
        if point in ("request", "result"):
            _await_fired(faults[0])
        elif point == "card-wait":
            if not wait_until(terminal.core.card_wanted.is_set, POINT_TIMEOUT):
                raise CrashMissed("the terminal never waited for the card, so the power cut hit nothing")
        elif not reached.wait(POINT_TIMEOUT):
            printer_core.cancel_crash()
            raise CrashMissed(f"the receipt never reached the crash point ({point}): the power cut hit nothing")
        waiting = point != "card-wait" or terminal.core.card_wanted.is_set()
        cut_at = printer_core.crashes[-1]["t"] if printer_core is not None and printer_core.crashes else now()
        till.kill()
        killed = now()
        events.append(Event(cut_at, "till", f"POWER CUT at {point}", {"reaped": killed, "at_the_byte": instant}))
        seller.join(POINT_TIMEOUT)
    finally:
        if auto is not None:
            terminal.present_card(FOR_OUTCOME[outcome])     # the customer pays on the terminal anyway
            terminal.auto_present = auto
    missed = ""
    asked = _queries(link)
    if not waiting:
        missed = "the card came before the power cut: the till was no longer waiting for it"
    elif asked != asked_before:
        missed = f"the power cut came after the till stopped waiting for the ack (it sent {asked})"
    elif any(r.t < killed for f in faults if f.spec.action == "hold" for r in f.released):
        missed = "the held completion reached the till before its power was cut"
    wait_terminal_idle(bench, busy=terminal_busy)
    till.restart()
    events.append(Event(now(), "till", "booted after the power cut"))
    if missed:
        raise CrashMissed(missed)


def _queries(link: Any) -> dict[str, int]:
    if link is None:
        return {}
    seen = link.seen().get("till->terminal", {})
    return {q: seen[q] for q in QUERIES if seen.get(q)}


def printer_power_cycle(bench: Any, basket: list[dict[str, Any]], events: list[Event]) -> Any:
    """The printer loses power `steps.PAPER_OUT_AFTER` bytes into the sale receipt and is back after T3 (scaled)."""
    core = _emulated_core(bench.printer, "printer")
    core.power_cycle_after(steps.PAPER_OUT_AFTER, bench.rig.timing.seconds(5.0))
    outcome = bench.till.sell(basket)
    if not core.crashes:
        core.cancel_crash()
        raise CrashMissed("the receipt never reached the byte at which the printer loses power")
    events.append(Event(core.crashes[0]["t"], "printer", f"POWER CUT at byte {core.crashes[0]['byte']}"))
    return outcome


# What the rebooted terminal must have found of the faulted payment, per point (`reversals.after_power_loss`).
BOOT_DECISION = {"online": "reverse-unanswered", "result": "reverse-undelivered", "completion": None}


def terminal_restart(bench: Any, point: str, faults: list[Any], basket: list[dict[str, Any]],
                     amount: int, host_delay_ms: float, events: list[Event]) -> Any:
    """Power-cycle the terminal at `point` of the sale of `basket` (approved by the host); it boots on its journal."""
    terminal = bench.terminal
    if not hasattr(terminal, "power_cycle"):
        raise steps.NotOnThisBench("the terminal cannot be power-cycled from here (it needs the emulated terminal)")
    if point == "online":
        bench.host.behave("approve", delay_ms=host_delay_ms, mti="0200", amount=amount)
    seller, result = _seller(bench.till, basket)
    if point == "online":
        def booked() -> bool:
            last = terminal.journal.last("sale")
            held = [p for p in bench.host.ledger.payments() if p.amount == amount and p.state == "approved"]
            return bool(last) and last.get("state") == "online" and bool(held)

        if not wait_until(booked, POINT_TIMEOUT, interval=0.01):
            raise CrashMissed("the host never booked the payment while the terminal waited for its answer")
    else:
        _await_fired(faults[0])
    txn = terminal.journal.last("sale")["id"]
    events.append(Event(now(), "terminal", f"POWER CUT at {point}"))
    done = terminal.power_cycle(off_seconds=bench.rig.timing.seconds(2.0))
    events.append(Event(now(), "terminal", "booted: " + (", ".join(f"txn {d['txn']} {d['was']} -> {d['decision']}"
                                                                   for d in done) or "nothing to settle")))
    decided = next((d["decision"] for d in done if d["txn"] == txn), None)
    row = terminal.journal.get(txn) or {}
    if decided != BOOT_DECISION[point] or (point == "completion" and row.get("goods") != "booked"):
        raise CrashMissed(f"the terminal's power was cut too late for '{point}': it booted to "
                          f"{decided or 'nothing to settle'} (payment {row.get('state')}, goods {row.get('goods')})")
    seller.join(bench.till.sale_timeout if hasattr(bench.till, "sale_timeout") else 60.0)
    return result[0] if result else None


def run_crash(bench: Any, scenario: Any, faults: list[Any], basket: list[dict[str, Any]], amount: int,
              host_delay_ms: float, events: list[Event]) -> Any:
    """The faulted sale of a crash scenario; the till's outcome when it lived to give one, else None. What was cut
    and when goes to `events` (the scenario's timeline)."""
    device, point = scenario.crash.split(":", 1)
    if device == "till":
        till_power_cut(bench, point, scenario.outcome, faults, basket, events)
        return None
    if device == "printer":
        return printer_power_cycle(bench, basket, events)
    return terminal_restart(bench, point, faults, basket, amount, host_delay_ms, events)

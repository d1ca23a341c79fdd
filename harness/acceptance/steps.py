"""Scenario steps that differ between an emulated bench and a physical one.

Each step does the emulated call when the device can be told (an emulated terminal takes a test card, an emulated
printer takes a fault), asks the person at the bench when the rig has one (the `operator` till: "present the
DECLINE test card", "take the paper roll out", "press ABORT"), and otherwise raises `NotOnThisBench`, which the
scenario runner turns into a NOT_APPLICABLE row carrying the reason.

>>> present_card(bench, "decline")                  # doctest: +SKIP
>>> printer_fault(bench, "paper_out", "before")     # doctest: +SKIP
>>> set_up_terminal(bench, TerminalSetup(offline=True, floor_limit=500))   # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from harness.core.cards import card as test_card

PAPER_OUT_AFTER = 48          # bytes of the receipt printed before an emulated printer's paper runs out ("during")

# What a person does to a physical printer for each printer fault, and to undo it.
PRINTER_ACTIONS = {
    "paper_out": ("take the paper roll out of the printer (leave the cover closed)", "put the paper roll back"),
    "offline": ("open the printer cover", "close the printer cover"),
    "cover_open": ("open the printer cover", "close the printer cover"),
}


class NotOnThisBench(Exception):
    """A step this bench can neither automate nor ask a person to do; the message is the row's reason."""


def operator_of(bench: Any) -> Any:
    """The person at the bench (the operator till's console), or None when the till is not run by a person."""
    till = bench.running("till") or bench.till
    return getattr(till, "operator", None) if getattr(till, "prompts_operator", False) else None


def _confirm(bench: Any, what: str) -> None:
    """Ask the person to do `what` and wait for 'ok'; NotOnThisBench when nobody confirms in time."""
    op = operator_of(bench)
    till = bench.till
    timeout = float(getattr(till, "answer_timeout", 600.0))
    if op.ask(f"posrig: {what}; then type ok", {"o": "ok, done"}, timeout) != "o":
        raise NotOnThisBench(f"the operator did not confirm within {timeout:g}s: {what}")


def present_card(bench: Any, card: str, delay: float = 0.0) -> None:
    """The scenario's test card for the next payment, `delay` real seconds after the terminal asks for it:
    handed to an emulated terminal; on a physical terminal the operator is told which card to present when the
    terminal asks (it is named in the sale prompt); a timed late card needs the emulated terminal."""
    terminal = bench.terminal
    if hasattr(terminal, "present_card"):
        terminal.present_card(card, delay=delay) if delay else terminal.present_card(card)
        return
    till = bench.till
    if delay:
        raise NotOnThisBench(f"the card must be presented {delay:g} s after the terminal asks: only the emulated "
                             "terminal times that")
    if getattr(till, "prompts_operator", False):
        till.next_card = test_card(card).name
        return
    raise NotOnThisBench(f"the terminal cannot be handed the '{card}' test card and nobody at the bench is "
                         "prompted to present it (use the operator till, or an emulated terminal)")


def printer_fault(bench: Any, fault: str, at: str) -> None:
    """Put the printer into `fault` ('paper_out', 'offline') `at` 'before' the sale or 'during' its receipt."""
    printer = bench.printer
    if hasattr(printer, "set_fault") and getattr(printer, "core", None) is not None:
        if at == "during":
            printer.core.fault_after(PAPER_OUT_AFTER, fault)
        else:
            printer.set_fault(fault)
        return
    if fault not in PRINTER_ACTIONS:
        raise NotOnThisBench(f"no way to produce printer fault '{fault}' on a physical printer")
    if at == "during":
        raise NotOnThisBench(f"'{fault}' during a receipt cannot be timed by hand on a physical printer "
                             f"(it needs the emulated printer's byte-exact fault)")
    if operator_of(bench) is None:
        raise NotOnThisBench(f"the printer is physical and nobody at the bench is prompted to "
                             f"{PRINTER_ACTIONS[fault][0]}")
    _confirm(bench, PRINTER_ACTIONS[fault][0])


def clear_printer_fault(bench: Any, fault: str | None = None) -> None:
    """Undo `printer_fault`: cleared on an emulated printer, the operator asked to on a physical one."""
    printer = bench.printer
    if hasattr(printer, "set_fault") and getattr(printer, "core", None) is not None:
        printer.set_fault(None)
        return
    if operator_of(bench) is not None:
        undo = PRINTER_ACTIONS[fault][1] if fault in PRINTER_ACTIONS else "make the printer ready again"
        _confirm(bench, undo)


def cashier_abort(till: Any) -> None:
    """The cashier presses abort on the running sale: the till is told (its abort call), or the operator is
    prompted to press it. Raises the till's TillCannot when it cannot."""
    till.abort()


def arm_faults(bench: Any, planned: list[Any]) -> list[Any]:
    """Arm the scenario's link faults (each `.link`, `.spec`); NotOnThisBench, with nothing armed, when the rig
    lacks the link or says it is not faultable (e.g. a till-terminal link that is only watched)."""
    for f in planned:
        spec = bench.rig.links.get(f.link)
        if spec is None:
            raise NotOnThisBench(f"the rig has no link '{f.link}' to fault")
        if not spec.faultable:
            raise NotOnThisBench(f"link '{f.link}' is 'faultable: false' in the rig (watched, not faulted)")
    links = bench.links
    return [links[f.link].inject(f.spec, required=False) for f in planned]


def set_up_terminal(bench: Any, setup: Any) -> None:
    """Make the emulated terminal behave as the scenario's `TerminalSetup` says (offline and its floor limit, the
    intermediate statuses it shows, a slow end to the next payment), before the sale ahead of the faulted one.
    The default setup needs nothing; any other needs a terminal posrig can configure (NotOnThisBench)."""
    if setup.default:
        return
    terminal = bench.terminal
    if not hasattr(terminal, "configure"):
        raise NotOnThisBench("the scenario sets the terminal up (offline, floor limit, statuses, a slow end of "
                             "payment): only the emulated terminal can be told")
    terminal.configure(offline=setup.offline, floor_limit=setup.floor_limit)
    if setup.display:
        terminal.configure(display=setup.display)
    if setup.busy_after:
        terminal.finish_slowly(setup.busy_after)      # the sale before the faulted one ends slowly


def terminal_setup_problems(bench: Any, setup: Any) -> list[str]:
    """What the terminal's behaviour did not do that the scenario needed (like a fault that never fired): a busy
    terminal that never refused the till's request proved nothing."""
    if not setup.busy_after:
        return []
    refused = getattr(bench.terminal, "busy_refusals", 0)
    return [] if refused else ["the terminal was never busy when the till sent a command: nothing was refused "
                               "with 84 A0, so the scenario raced nothing"]

"""Tills: the system under test. Drivers run the reference till, call a vendor's till, or prompt an operator.

Every driver answers the same questions: sell a basket and say how the sale ended (a `SaleOutcome`, the till's
own view), show its journal, and resolve what it left open. The oracle compares that view with the host
ledger, the terminal journal and the printed receipts.

A till declares what it can do beyond selling (`capabilities()`): abort (the cashier's abort during a sale),
recover (resolve what it left open on request), journal (its own record of sales), lifecycle (posrig can cut
its power and start it again). A scenario that needs a capability the till lacks is "not applicable".
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

from harness.core.device import Device
from harness.till import endpoints as ep
from harness.till.outcome import ContractError, SaleOutcome, basket_total

__all__ = ["Till", "SaleOutcome", "ContractError", "TillCannot", "basket_total", "CAPABILITIES"]

CAPABILITIES = ("abort", "recover", "journal", "lifecycle")


class TillCannot(NotImplementedError):
    """The till does not support something a scenario asks of it (a capability it lacks)."""

    def __init__(self, capability: str, message: str):
        super().__init__(message)
        self.capability = capability


class Till(Device):
    """The point-of-sale till under test."""

    kind = "till"
    # Started before the till; drivers hand their addresses to the till (device endpoints) or ignore them.
    bindings = {"printer": "printer?", "terminal": "terminal?", "host": "host?"}
    default_capabilities: ClassVar[frozenset[str]] = frozenset()

    @abc.abstractmethod
    def sell(self, basket: list[dict[str, Any]], tender: str = "card") -> SaleOutcome:
        """Ring up a basket and take payment; return what the till reports (its own view of the sale).
        basket: [{"sku": "milk", "name": "Milk 1l", "price": "1.19", "qty": 2}, ...]; tender: card | cash."""

    def journal(self) -> list[dict[str, Any]]:
        """The till's own record of every sale, oldest first (as much as the till exposes; may be empty)."""
        return []

    def abort(self) -> None:
        """The cashier presses abort during the running sale (not every till can be told to)."""
        raise TillCannot("abort", f"{type(self).__name__} cannot abort a running sale")

    def recover(self) -> list[SaleOutcome]:
        """Let the till resolve what it left open (unknown payments, owed receipts); its updated outcomes."""
        return []

    def kill(self) -> None:
        """Cut the till's power (SIGKILL, or the rig's `kill` command): it gets no chance to clean up."""
        raise TillCannot("lifecycle", f"till {self.name!r} has no lifecycle: set `launch` in the rig")

    def restart(self) -> None:
        """Start the till again after `kill()` (same state folder, so it can recover)."""
        raise TillCannot("lifecycle", f"till {self.name!r} has no lifecycle: set `launch` in the rig")

    # -- what the till can do, where its devices are -------------------------------------------------------
    def declared_capabilities(self) -> list[str] | None:
        """What the till itself said it supports (its GET /health, its helper's health), or None."""
        return None

    def capabilities(self) -> frozenset[str]:
        """The rig's `capabilities` list, else what the till declared, else the driver's defaults."""
        chosen = (self.spec.options or {}).get("capabilities")
        if chosen is None:
            chosen = self.declared_capabilities()
        caps = set(self.default_capabilities if chosen is None else chosen)
        unknown = caps - set(CAPABILITIES)
        if unknown:
            raise ContractError(f"till {self.name!r}: unknown capabilities {sorted(unknown)}; known: "
                                f"{', '.join(CAPABILITIES)}")
        return frozenset(caps)

    def endpoint_values(self) -> dict[str, str]:
        """The device endpoints this till is told (harness.till.endpoints): terminal, printer, host, scale."""
        state = self.ctx.evidence.path / f"{self.name}-state"
        state.mkdir(parents=True, exist_ok=True)
        return ep.of_bench(terminal=getattr(self, "terminal", None), printer=getattr(self, "printer", None),
                           host=getattr(self, "host", None), timing_scale=self.ctx.timing.scale,
                           state_dir=state, evidence_dir=self.ctx.evidence.path,
                           rig_dir=self.ctx.rig.path.resolve().parent if self.ctx.rig is not None else None)

    def identity(self) -> dict[str, Any]:
        ident = super().identity()
        try:
            ident["capabilities"] = sorted(self.capabilities())
        except ContractError as exc:
            ident["capabilities"] = str(exc)
        return ident

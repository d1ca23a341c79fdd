"""Faults the link can inject, declared as data: what, at which stage, in which direction, which occurrence.

>>> FaultSpec.parse("drop 0210 host->terminal")
FaultSpec(action='drop', stage='0210', direction='host->terminal', occurrence=1, params={}, stan=None)
>>> FaultSpec.parse("hold 0210 host->terminal nth=2 ms=1500").params
{'ms': 1500.0}
>>> FaultSpec.parse("flap count=3 down_ms=200 every_ms=1000").stage is None   # no stage: starts when armed
True

What each action does once its stage comes (and for how long):

* drop: that message's segments, and every retransmission of them, are dropped while the fault is armed
  (clearing it lets a sender that still retransmits through: a late delivery). In a coalesced segment the
  other messages go with it, as on a real network.
* hold ms=N: the segment and everything after it in that direction of that connection wait N ms, then go
  in order (retransmissions made meanwhile wait too).
* blackhole [ms=N]: every packet on the link, both directions, is dropped for N ms or until cleared.
* flap count=K down_ms=N every_ms=M: K blackholes of N ms starting M ms apart (the incident's pattern).
* rst [to=both|sender|receiver|END]: the segment is dropped (deliver=true: let through) and each target gets
  a RST with exactly the sequence number it expects, then a liveness probe proves the reset was taken.
* duplicate [copies=N]: the segment goes through and N copies follow (TCP discards them; the receiver's
  D-SACK in the capture shows they arrived).
* corrupt [offset=I] [checksum=fix|keep]: one byte of the message flipped; with a fixed checksum the
  application gets it, with the old one the receiver's TCP drops it and the sender retransmits.

The same spec travels from a test (`link.inject("drop", stage="0210", ...)`), a rig or the `posrig link`
command to the engine process as JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from harness.link.layers import is_stage

# action -> (parameter -> (type, default, meaning))
ACTIONS: dict[str, dict[str, tuple[type, Any, str]]] = {
    "drop": {},
    "hold": {"ms": (float, None, "how long the message is held before it is let through")},
    "blackhole": {"ms": (float, None, "how long everything is dropped, both ways (omit: until cleared)")},
    "rst": {"to": (str, "both", "which end gets a forged reset: both, sender, receiver, or an end's name"),
            "deliver": (bool, False, "let the triggering segment through before resetting"),
            "seq_offset": (int, 0, "added to the forged sequence numbers (to prove a wrong RST is caught)"),
            "verify_ms": (float, 1000.0, "how long to wait for the receivers' answer to the liveness probe")},
    "flap": {"count": (int, 3, "number of outages"), "down_ms": (float, 200.0, "length of each outage"),
             "every_ms": (float, 1000.0, "outage starts are this far apart")},
    "duplicate": {"copies": (int, 1, "extra copies sent right after the segment")},
    "corrupt": {"offset": (int, None, "byte of the message to flip (default: the last)"),
                "checksum": (str, "fix", "'fix': the application gets bad bytes; 'keep': TCP drops it")},
}
NEEDS_STAGE = {"drop", "hold", "rst", "duplicate", "corrupt"}
EVERY = "every"


class FaultError(ValueError):
    """A fault specification is wrong; the message names the field and what is accepted."""


@dataclass(frozen=True)
class FaultSpec:
    """One fault. `occurrence` is 1-based (1 = first message of that stage after arming) or "every"."""

    action: str
    stage: str | None = None
    direction: str | None = None
    occurrence: int | str = 1
    params: dict[str, Any] = field(default_factory=dict)
    stan: str | None = None          # ISO 8583 only: just the message with this STAN (field 11)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise FaultError(f"unknown fault {self.action!r}; use one of: {', '.join(ACTIONS)}")
        if self.stage is None and self.action in NEEDS_STAGE:
            raise FaultError(f"fault {self.action!r} needs a stage, e.g. '0210', 'zvt:04 0F' or 'connect'")
        if self.stage is not None and self.stage != "any" and not is_stage(self.stage):
            raise FaultError(f"stage {self.stage!r} is not an ISO 8583 MTI ('0210'), a ZVT APDU "
                             f"('zvt:06 01'), 'connect' or 'any'")
        if self.direction is not None and "->" not in self.direction:
            raise FaultError(f"direction {self.direction!r} must read '<end>-><end>', e.g. 'host->terminal'")
        occ = self.occurrence
        if not (occ == EVERY or (isinstance(occ, int) and not isinstance(occ, bool) and occ >= 1)):
            raise FaultError(f"occurrence {occ!r} must be a number >= 1 (1 = first) or 'every'")
        known = ACTIONS[self.action]
        for key, value in self.params.items():
            if key not in known:
                raise FaultError(f"fault {self.action!r} has no parameter {key!r}; it takes: "
                                 f"{', '.join(known) or 'none'}")
            kind = known[key][0]
            widened = kind is float and isinstance(value, int)
            if value is not None and not isinstance(value, kind) and not widened:
                raise FaultError(f"{self.action} {key}={value!r}: expected {kind.__name__} ({known[key][2]})")
        if self.stan is not None and (not isinstance(self.stan, str) or not self.stan.isdigit()
                                      or self.stage is None or not self.stage.isdigit()):
            raise FaultError(f"stan={self.stan!r}: a STAN is digits (e.g. '000123'), for an ISO 8583 stage")
        if self.action == "corrupt" and self.stage == "connect":
            raise FaultError("corrupt needs a stage that carries data: a SYN has no payload to corrupt")
        if self.action == "hold" and not self.params.get("ms"):
            raise FaultError("fault 'hold' needs ms=<milliseconds>")
        if self.action == "corrupt" and self.params.get("checksum", "fix") not in ("fix", "keep"):
            raise FaultError("corrupt checksum= must be 'fix' or 'keep'")

    def param(self, name: str) -> Any:
        value = self.params.get(name)
        return ACTIONS[self.action][name][1] if value is None else value

    def describe(self) -> str:
        where = f" {self.stage}" if self.stage else " (from arming)"
        way = f" {self.direction}" if self.direction else ""
        way += f" STAN {self.stan}" if self.stan else ""
        occ = {1: "first", EVERY: "every"}.get(self.occurrence, f"#{self.occurrence}")
        extra = "".join(f" {k}={v}" for k, v in self.params.items())
        return f"{self.action}{where}{way} {occ}{extra}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultSpec:
        return cls(**data)

    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        """Parse "ACTION [STAGE] [A->B] [first|every|nth=N] [key=value ...]" ("zvt:06 01" or zvt:06_01)."""
        words = text.replace("zvt: ", "zvt:").split()
        if not words:
            raise FaultError("empty fault; e.g. 'drop 0210 host->terminal'")
        action, stage, direction, occurrence, params, stan = words[0], None, None, 1, {}, None
        i = 1
        while i < len(words):
            w = words[i]
            if w.startswith("zvt:") and len(w) == 6 and i + 1 < len(words) and len(words[i + 1]) == 2:
                w = f"{w} {words[i + 1]}"
                i += 1
            if w.startswith("zvt:"):
                w = w.replace("_", " ").upper().replace("ZVT:", "zvt:")
            if "->" in w:
                direction = w
            elif w in ("first", EVERY):
                occurrence = 1 if w == "first" else EVERY
            elif w.startswith("stan="):
                stan = w[5:]
            elif w.startswith("nth="):
                occurrence = _number(w[4:], int, "nth")
            elif "=" in w:
                key, _, raw = w.partition("=")
                kind = ACTIONS.get(action, {}).get(key, (str,))[0]
                params[key] = _number(raw, kind, key)
            elif stage is None:
                stage = w
            else:
                raise FaultError(f"unexpected word {w!r} in fault {text!r}")
            i += 1
        return cls(action=action, stage=stage, direction=direction, occurrence=occurrence, params=params,
                   stan=stan)


def _number(raw: str, kind: type, key: str) -> Any:
    if kind is bool:
        return raw.lower() in ("1", "true", "yes")
    if kind is str:
        return raw
    try:
        return kind(raw)
    except ValueError:
        raise FaultError(f"{key}={raw!r}: expected a {kind.__name__}") from None

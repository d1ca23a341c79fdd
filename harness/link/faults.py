"""Faults the link can inject, declared as data, and what the engine reports back about them.

A `FaultSpec` says what, at which stage, in which direction, which occurrence; its text form is what
`describe()` writes and `parse()` reads, so a spec written anywhere reads back as the same spec:

>>> s = FaultSpec.parse("hold zvt:04_0f terminal->till nth=2 ms=1500")
>>> s.stage, s.occurrence, s.params
('zvt:04 0F', 2, {'ms': 1500.0})
>>> s.describe()
'hold zvt:04 0F terminal->till nth=2 ms=1500.0'
>>> FaultSpec.parse(s.describe()) == s
True
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
* rst [to=both|sender|receiver|END]: the segment is dropped (deliver=true, or "rst after STAGE": let through)
  and each target gets a RST with exactly the sequence number it expects, then a liveness probe proves the
  reset was taken.
* duplicate [copies=N]: the segment goes through and N copies follow (TCP discards them; the receiver's
  D-SACK in the capture shows they arrived).
* corrupt [offset=I] [checksum=fix|keep]: one byte of the message flipped; with a fixed checksum the
  application gets it, with the old one the receiver's TCP drops it and the sender retransmits.

The same spec travels from a test (`link.inject("drop", stage="0210", ...)`), a rig or the `posrig link`
command to the engine process as JSON. The engine answers with events (`FaultArmed`, `FaultFired`,
`FaultReleased`, `ResetVerified`, `OutageEnded`, `FaultCleared`), JSON lines on its stdout that
`fault_event()` turns back into these dataclasses. Every `t` is epoch seconds (`time.time()`).

This module is light on purpose (no scapy): the rig loader imports it to validate the faults a rig arms.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, ClassVar

from harness.protocols import stages

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
_DIRECTION = re.compile(r"^[^\s=]+->[^\s=]+$")
_PARAM = re.compile(r"^([A-Za-z_]\w*)=(.*)$")


class FaultError(ValueError):
    """A fault specification is wrong; the message names the field and what is accepted."""


@dataclass(frozen=True)
class FaultSpec:
    """One fault. `occurrence` is 1-based (1 = first message of that stage after arming) or "every".

    `stage` is any spelling `harness.protocols.stages.parse` accepts, kept in its canonical form ("zvt:04 0F");
    parameters left at None are the same as not given.
    """

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
        stage = None
        if self.stage is not None:
            try:
                stage = stages.parse(self.stage)
            except stages.StageError as exc:
                raise FaultError(str(exc)) from None
            object.__setattr__(self, "stage", stage.name)
        if self.direction is not None and not (isinstance(self.direction, str) and _DIRECTION.match(self.direction)):
            raise FaultError(f"direction {self.direction!r} must read '<end>-><end>', e.g. 'host->terminal'")
        occ = self.occurrence
        if not (occ == EVERY or (isinstance(occ, int) and not isinstance(occ, bool) and occ >= 1)):
            raise FaultError(f"occurrence {occ!r} must be a number >= 1 (1 = first) or 'every'")
        if not isinstance(self.params, dict):
            raise FaultError(f"params {self.params!r} must be a mapping of parameter to value")
        known = ACTIONS[self.action]
        params = {}
        for key, value in self.params.items():
            if key not in known:
                raise FaultError(f"fault {self.action!r} has no parameter {key!r}; it takes: "
                                 f"{', '.join(known) or 'none'}")
            if value is not None:
                params[key] = _checked(self.action, key, value, known[key])
        object.__setattr__(self, "params", params)
        stan_ok = isinstance(self.stan, str) and self.stan.isascii() and self.stan.isdigit()
        if self.stan is not None and (not stan_ok or stage is None or stage.protocol != stages.ISO8583):
            raise FaultError(f"stan={self.stan!r}: a STAN is digits (e.g. '000123'), for an ISO 8583 stage")
        if self.action == "corrupt" and stage == stages.CONNECT:
            raise FaultError("corrupt needs a stage that carries data: a SYN has no payload to corrupt")
        if self.action == "hold" and not self.params.get("ms"):
            raise FaultError("fault 'hold' needs ms=<milliseconds>")
        if self.action == "corrupt" and self.params.get("checksum", "fix") not in ("fix", "keep"):
            raise FaultError("corrupt checksum= must be 'fix' or 'keep'")

    def param(self, name: str) -> Any:
        """The parameter's value, or its default (`ACTIONS`) when not given."""
        value = self.params.get(name)
        return ACTIONS[self.action][name][1] if value is None else value

    def describe(self) -> str:
        """The spec as text, in the form `parse` reads: 'drop 0210 host->terminal first stan=000123'."""
        words = [self.action]
        if self.stage is not None:
            words.append(self.stage)
        if self.direction is not None:
            words.append(self.direction)
        words.append({1: "first", EVERY: EVERY}.get(self.occurrence, f"nth={self.occurrence}"))
        if self.stan is not None:
            words.append(f"stan={self.stan}")
        words += [f"{k}={v}" for k, v in self.params.items()]
        return " ".join(words)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultSpec:
        return cls(**data)

    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        """Parse "ACTION [STAGE] [A->B] [first|every|nth=N] [stan=S] [key=value ...]"; the stage in any
        spelling of `harness.protocols.stages` ("zvt:06 01", "zvt:06_01", "06-01", "response#1"); "rst after
        STAGE" is "rst STAGE deliver=true".

        >>> FaultSpec.parse("rst after request#1").describe()
        'rst request#1 first deliver=True'
        """
        words = text.split()
        if not words:
            raise FaultError("empty fault; e.g. 'drop 0210 host->terminal'")
        action, stage, direction, occurrence, params, stan = words[0], None, None, 1, {}, None
        i = 1
        while i < len(words):
            w = words[i]
            param = _PARAM.match(w)
            if param and param.group(1) == "stan":
                stan = param.group(2)
            elif param and param.group(1) == "nth":
                occurrence = _value(param.group(2), int, "nth")
            elif param:
                key, raw = param.groups()
                kind = ACTIONS.get(action, {}).get(key, (str,))[0]
                params[key] = _value(raw, kind, key)
            elif "->" in w:
                direction = w
            elif w in ("first", EVERY):
                occurrence = 1 if w == "first" else EVERY
            elif w == "after" and action == "rst" and stage is None:
                params["deliver"] = True             # "rst after request#1": the message arrives, then the reset
            elif stage is None:
                n = _stage_words(words, i)
                stage = " ".join(words[i:i + n])
                i += n - 1
            else:
                raise FaultError(f"unexpected word {w!r} in fault {text!r}")
            i += 1
        return cls(action=action, stage=stage, direction=direction, occurrence=occurrence, params=params,
                   stan=stan)


def _stage_words(words: list[str], i: int) -> int:
    """How many words from `words[i]` spell one stage ("zvt:04 0F" is two, "zvt: 04 0F" three); 1 if none do."""
    for n in (3, 2):
        if i + n <= len(words) and stages.is_stage(" ".join(words[i:i + n])):
            return n
    return 1


def _checked(action: str, key: str, value: Any, declared: tuple[type, Any, str]) -> Any:
    """`value` if it fits the parameter's declared type (an int for a float parameter becomes a float)."""
    kind, _, meaning = declared
    ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        try:
            value, ok = float(value), True               # 300 for 300.0
        except OverflowError:
            ok = False
    if not ok:
        raise FaultError(f"{action} {key}={value!r}: expected {kind.__name__} ({meaning})")
    if kind is float and not math.isfinite(value):
        raise FaultError(f"{action} {key}={value!r}: expected a finite number ({meaning})")
    if kind is float and value < 0:
        raise FaultError(f"{action} {key}={value!r}: a duration cannot be negative ({meaning})")
    if kind is str and (not value or any(c.isspace() for c in value)):
        raise FaultError(f"{action} {key}={value!r}: expected one word ({meaning})")
    return value


def _value(raw: str, kind: type, key: str) -> Any:
    if kind is bool:
        return raw.lower() in ("1", "true", "yes")
    if kind is str:
        return raw
    try:
        return kind(raw)
    except ValueError:
        raise FaultError(f"{key}={raw!r}: expected a {kind.__name__}") from None


# -- what the engine reports back -------------------------------------------------------------------------------
@dataclass(frozen=True)
class FaultEvent:
    """Base of the engine's reports about one fault (`fault` is its id on the link)."""

    event: ClassVar[str] = ""

    fault: int
    t: float

    def to_json(self) -> dict[str, Any]:
        """The fields as JSON-ready data (the engine prints them with `"event": self.event`)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultEvent:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass(frozen=True)
class FaultArmed(FaultEvent):
    """The engine took the fault: from `t` on it watches for its stage."""

    event: ClassVar[str] = "armed"

    spec: FaultSpec | None = None

    def to_json(self) -> dict[str, Any]:
        return {"fault": self.fault, "t": self.t, "spec": self.spec.to_json() if self.spec else None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultArmed:
        spec = data.get("spec")
        return cls(fault=data["fault"], t=data["t"], spec=FaultSpec.from_json(spec) if spec else None)


@dataclass(frozen=True)
class FaultFired(FaultEvent):
    """The fault hit: on packet number `packet` of the link's capture (None: a stage-less fault, at arming),
    the `ordinal`-th message of `stage` in `direction`. `resets`: the RSTs forged ({"to", "seq", "ack",
    "expected"}); `detail`: firing (1, 2, ... for 'every'), stream_start/stream_end (the message's offsets
    in its byte stream), segment, release_at, outages, corrupted."""

    event: ClassVar[str] = "fired"

    packet: int | None = None
    stage: str | None = None
    direction: str | None = None
    ordinal: int | None = None
    stan: str | None = None
    resets: tuple[dict[str, Any], ...] = ()
    detail: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultFired:
        ev = super().from_json(data)
        return ev if isinstance(ev.resets, tuple) else replace(ev, resets=tuple(ev.resets))


@dataclass(frozen=True)
class FaultReleased(FaultEvent):
    """Held packets went through: `packets` of them, the first after `held_ms`."""

    event: ClassVar[str] = "released"

    packets: int = 0
    held_ms: float = 0.0


@dataclass(frozen=True)
class ResetVerified(FaultEvent):
    """The liveness probe after a forged RST was answered: `taken` True (the end's socket is gone), False
    (still open: the RST was refused) or None (no answer within verify_ms). `packet`: the answer's number."""

    event: ClassVar[str] = "verified"

    end: str = ""
    taken: bool | None = None
    detail: str = ""
    packet: int | None = None


@dataclass(frozen=True)
class OutageEnded(FaultEvent):
    """One blackhole or flap outage is over: traffic passes again."""

    event: ClassVar[str] = "outage_end"


@dataclass(frozen=True)
class FaultCleared(FaultEvent):
    """The fault is disarmed: ongoing blackholes ended, held packets went through."""

    event: ClassVar[str] = "cleared"


FAULT_EVENTS: dict[str, type[FaultEvent]] = {c.event: c for c in (FaultArmed, FaultFired, FaultReleased,
                                                                   ResetVerified, OutageEnded, FaultCleared)}


def fault_event(line: dict[str, Any]) -> FaultEvent | None:
    """The dataclass for an engine line `{"event": "fired", "fault": 1, ...}`; None for other lines.
    Raises FaultError for a fault event that lacks a field."""
    cls = FAULT_EVENTS.get(line.get("event", ""))
    if cls is None:
        return None
    try:
        return cls.from_json(line)
    except (KeyError, TypeError) as exc:
        raise FaultError(f"malformed {line.get('event')} event from the link engine ({exc}): {line!r}"[:300]) \
            from None


"""How the emulated acquirer answers: behaviours, the rules that pick them, magic amounts and test cards.

A `Behaviour` is orthogonal data: which response code the host decides (field 39), how long it waits before
answering, and how the answer is delivered. The host *decides and books first* and only then delivers, so a
"never answer" approval is money the acquirer holds: exactly the lost-0210 case a terminal must reverse.

    delivery   what the terminal sees
    answer     one answer (after delay_ms)
    silent     nothing, ever (the payment is still booked with `code`)
    twice      the same answer two times
    close      the connection is closed after the request, no answer

Rules are tried newest first: rules set from a test at run time (`host.behave(...)`), then the rules file,
then the test cards, then the magic amounts, else approve. A rule without `mti` applies to authorization and
financial requests (0100/0200 and their repeats) only; name an MTI (e.g. `mti: "0420"`) to misbehave on other
messages.

Magic amounts (field 4, minor units; any currency):

    amount  behaviour
    9.05    decline 05 (do not honour)
    9.51    decline 51 (insufficient funds)
    9.91    decline 91 (issuer unavailable)
    9.96    approve, then close the connection without answering
    9.97    approve and answer twice
    9.98    approve, answer after 15 s nominal (x rig timing scale: past a 10 s terminal timeout)
    9.99    approve, never answer

Test cards: the declining cards of `harness.core.cards` (4000000000000002 decline 05, 4000000000009995 decline 51,
4000000000000119 decline 91).

Rules file (YAML or JSON), a list of rules:

    - match: {amount: 1234}                 # also: pan, pan_prefix, mti, terminal, stan
      behaviour: {code: "05"}               # also: delay_ms, delivery, scaled; or a name:
                                            # approve | decline | slow | silent | twice | close,
                                            # or {name: slow, delay_ms: 15000}
      times: 1                              # optional: applies to this many requests, then expires
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.core.cards import CARDS
from harness.protocols.iso8583 import AMOUNT, PAN, STAN, TERMINAL_ID

DELIVERIES = ("answer", "silent", "twice", "close")
APPROVED = "00"
# Requests a rule without an explicit `mti` applies to.
PAYMENT_REQUESTS = ("0100", "0101", "0200", "0201")


# Behaviour names -> (default response code, delivery).
NAMED = {
    "approve": (APPROVED, "answer"),
    "decline": ("05", "answer"),
    "slow": (APPROVED, "answer"),
    "silent": (APPROVED, "silent"),
    "twice": (APPROVED, "twice"),
    "close": (APPROVED, "close"),
}


class RuleError(ValueError):
    """A behaviour or rule is malformed; the message names the key and what is expected."""


@dataclass(frozen=True)
class Behaviour:
    """The host's answer to one request: response code, delay before answering, delivery."""

    code: str = APPROVED
    delay_ms: float = 0.0
    delivery: str = "answer"
    scaled: bool = True  # delay_ms is nominal protocol time, multiplied by the rig's timing scale

    def __post_init__(self) -> None:
        if not (isinstance(self.code, str) and len(self.code) == 2 and self.code.isalnum()):
            raise RuleError(
                f"behaviour code: found {self.code!r}; expected a 2-character response code like '05'"
            )
        if self.delivery not in DELIVERIES:
            raise RuleError(
                f"behaviour delivery: found {self.delivery!r}; expected one of {', '.join(DELIVERIES)}"
            )
        if not isinstance(self.delay_ms, (int, float)) or self.delay_ms < 0:
            raise RuleError(f"behaviour delay_ms: found {self.delay_ms!r}; expected a number >= 0")

    @property
    def approves(self) -> bool:
        return self.code == APPROVED

    def delay_seconds(self, scale: float) -> float:
        """Wall-clock seconds to wait before answering."""
        return self.delay_ms / 1000.0 * (scale if self.scaled else 1.0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def named(
        cls, name: str, code: str | None = None, delay_ms: float = 0.0, scaled: bool = True
    ) -> Behaviour:
        """A behaviour by the name tests use: approve, decline, slow, silent, twice, close."""
        if name not in NAMED:
            raise RuleError(f"behaviour {name!r} unknown; expected one of {', '.join(NAMED)}")
        default_code, delivery = NAMED[name]
        return cls(code or default_code, delay_ms, delivery, scaled)

    @classmethod
    def from_dict(cls, data: Any) -> Behaviour:
        if isinstance(data, str):
            return cls.named(data)
        if isinstance(data, dict) and "name" in data:
            rest = {k: v for k, v in data.items() if k != "name"}
            unknown = set(rest) - {"code", "delay_ms", "scaled"}
            if unknown:
                raise RuleError(
                    f"behaviour: unknown keys {sorted(unknown)} beside 'name'; expected code, delay_ms, "
                    "scaled"
                )
            code = rest.get("code")
            return cls.named(
                data["name"],
                f"{code:02d}" if isinstance(code, int) else code,
                rest.get("delay_ms", 0.0),
                bool(rest.get("scaled", True)),
            )
        if not isinstance(data, dict):
            raise RuleError(
                f"behaviour: found {data!r}; expected a mapping with code, delay_ms, delivery, scaled"
            )
        unknown = set(data) - {"code", "delay_ms", "delivery", "scaled"}
        if unknown:
            raise RuleError(
                f"behaviour: unknown keys {sorted(unknown)}; expected code, delay_ms, delivery, scaled"
            )
        code = data.get("code", APPROVED)
        return cls(
            code=f"{code:02d}" if isinstance(code, int) else str(code),
            delay_ms=data.get("delay_ms", 0.0),
            delivery=data.get("delivery", "answer"),
            scaled=bool(data.get("scaled", True)),
        )

    # Named behaviours, as tests say them.
    @classmethod
    def approve(cls, delay_ms: float = 0.0) -> Behaviour:
        return cls(APPROVED, delay_ms)

    @classmethod
    def decline(cls, code: str = "05", delay_ms: float = 0.0) -> Behaviour:
        return cls(code, delay_ms)

    @classmethod
    def slow(cls, delay_ms: float, code: str = APPROVED, scaled: bool = True) -> Behaviour:
        return cls(code, delay_ms, scaled=scaled)

    @classmethod
    def silent(cls, code: str = APPROVED) -> Behaviour:
        return cls(code, delivery="silent")

    @classmethod
    def twice(cls, code: str = APPROVED) -> Behaviour:
        return cls(code, delivery="twice")

    @classmethod
    def close(cls, code: str = APPROVED) -> Behaviour:
        return cls(code, delivery="close")


def amount_value(value: Any) -> int:
    """An amount in minor units from an int, '9.99'-style decimal string or a 12-digit field 4."""
    if isinstance(value, bool):
        raise RuleError(f"amount: found {value!r}; expected minor units (999) or a decimal string ('9.99')")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if "." in text:
        whole, _, frac = text.partition(".")
        if whole.isdigit() and frac.isdigit() and len(frac) == 2:
            return int(whole) * 100 + int(frac)
    elif text.isdigit():
        return int(text)
    raise RuleError(f"amount: found {value!r}; expected minor units (999) or a decimal string ('9.99')")


@dataclass(frozen=True)
class Match:
    """Which requests a rule applies to; every given key must match."""

    amount: int | None = None
    pan: str | None = None
    pan_prefix: str | None = None
    mti: str | None = None
    terminal: str | None = None
    stan: str | None = None

    def matches(self, fields: dict[str, Any]) -> bool:
        mti = fields.get("t", "")
        if self.mti is None:
            if mti not in PAYMENT_REQUESTS:
                return False
        elif mti != self.mti and not (mti[:3] == self.mti[:3] and mti[3] == "1" and self.mti[3] == "0"):
            return False  # '0420' also matches its repeat '0421'
        if self.amount is not None:
            try:
                if amount_value(fields.get(AMOUNT, "")) != self.amount:
                    return False
            except RuleError:
                return False
        pan = fields.get(PAN, "")
        if self.pan is not None and pan != self.pan:
            return False
        if self.pan_prefix is not None and not pan.startswith(self.pan_prefix):
            return False
        if self.terminal is not None and fields.get(TERMINAL_ID, "").strip() != self.terminal:
            return False
        return self.stan is None or fields.get(STAN) == self.stan

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: Any) -> Match:
        if not isinstance(data, dict):
            raise RuleError(
                f"match: found {data!r}; expected a mapping of amount, pan, pan_prefix, mti, terminal, stan"
            )
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise RuleError(
                f"match: unknown keys {sorted(unknown)}; expected amount, pan, pan_prefix, mti, "
                "terminal, stan"
            )
        kw = {k: (str(v) if v is not None else None) for k, v in data.items() if k != "amount"}
        if "stan" in kw and kw["stan"] is not None:
            kw["stan"] = kw["stan"].zfill(6)
        if data.get("amount") is not None:
            kw["amount"] = amount_value(data["amount"])
        return cls(**kw)


@dataclass
class Rule:
    """A match and the behaviour it selects; `times` = how many requests it still applies to (None = all)."""

    match: Match
    behaviour: Behaviour
    times: int | None = None
    label: str = ""
    id: int | None = None  # the ledger's rule id, for rules set at run time
    source: str = "test"

    def to_dict(self) -> dict[str, Any]:
        return {
            "match": self.match.to_dict(),
            "behaviour": self.behaviour.to_dict(),
            "times": self.times,
            "label": self.label,
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "file") -> Rule:
        if not isinstance(data, dict) or "behaviour" not in data:
            raise RuleError(f"rule: found {data!r}; expected a mapping with 'match' and 'behaviour'")
        unknown = set(data) - {"match", "behaviour", "times", "label"}
        if unknown:
            raise RuleError(f"rule: unknown keys {sorted(unknown)}; expected match, behaviour, times, label")
        times = data.get("times")
        if times is not None and (not isinstance(times, int) or times < 1):
            raise RuleError(f"rule times: found {times!r}; expected a positive integer or nothing")
        return cls(
            Match.from_dict(data.get("match") or {}),
            Behaviour.from_dict(data["behaviour"]),
            times,
            str(data.get("label", "")),
            source=source,
        )


MAGIC_AMOUNTS: dict[int, tuple[str, Behaviour]] = {
    905: ("magic amount 9.05: do not honour", Behaviour.decline("05")),
    951: ("magic amount 9.51: insufficient funds", Behaviour.decline("51")),
    991: ("magic amount 9.91: issuer unavailable", Behaviour.decline("91")),
    996: ("magic amount 9.96: close after request", Behaviour.close()),
    997: ("magic amount 9.97: answer twice", Behaviour.twice()),
    998: ("magic amount 9.98: slow (15 s nominal)", Behaviour.slow(15000)),
    999: ("magic amount 9.99: never answer", Behaviour.silent()),
}
# The test cards the host declines, from the one card table (harness.core.cards).
TEST_CARDS: dict[str, tuple[str, Behaviour]] = {
    c.pan: (f"test card: {c.host_reason}", Behaviour.decline(c.host_code))
    for c in CARDS.values() if c.host_code != APPROVED
}


@dataclass
class Choice:
    """What the rule book picked for one request, and why (kept in the ledger and the transcript)."""

    behaviour: Behaviour
    reason: str
    rule: Rule | None = None


@dataclass
class RuleBook:
    """Rules in precedence order: run-time rules (newest first), file rules, test cards, magic amounts."""

    runtime: list[Rule] = field(default_factory=list)
    file_rules: list[Rule] = field(default_factory=list)

    def choose(self, fields: dict[str, Any]) -> Choice:
        for rule in [*reversed(self.runtime), *self.file_rules]:
            if (rule.times is None or rule.times > 0) and rule.match.matches(fields):
                why = rule.label or f"{rule.source} rule {rule.match.to_dict()}"
                return Choice(rule.behaviour, why, rule)
        if fields.get("t") in PAYMENT_REQUESTS:
            card = TEST_CARDS.get(fields.get(PAN, ""))
            if card:
                return Choice(card[1], card[0])
            try:
                magic = MAGIC_AMOUNTS.get(amount_value(fields.get(AMOUNT, "")))
            except RuleError:
                magic = None
            if magic:
                return Choice(magic[1], magic[0])
        return Choice(Behaviour.approve(), "default: approve")


def load_rules(path: str | Path) -> list[Rule]:
    """Rules from a YAML or JSON file (a list of rules, or a mapping with key 'rules'). Raises RuleError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleError(f"{path}: cannot read the rules file: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise RuleError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from None
    if isinstance(data, dict) and "rules" in data:
        data = data["rules"]
    if data is None:
        return []
    if not isinstance(data, list):
        raise RuleError(f"{path}: found {type(data).__name__}; expected a list of rules")
    rules = []
    for i, item in enumerate(data):
        try:
            rules.append(Rule.from_dict(item, source=f"{path.name}#{i}"))
        except RuleError as exc:
            raise RuleError(f"{path}: rule {i}: {exc}") from None
    return rules

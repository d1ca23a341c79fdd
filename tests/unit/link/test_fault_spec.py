"""Fault specs (text, JSON, validation, round trips) and the typed events the engine reports back."""

from __future__ import annotations

import ast
import json
import string
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.link.faults import (
    ACTIONS,
    EVERY,
    FAULT_EVENTS,
    NEEDS_STAGE,
    FaultArmed,
    FaultCleared,
    FaultError,
    FaultFired,
    FaultReleased,
    FaultSpec,
    OutageEnded,
    ResetVerified,
    fault_event,
)
from harness.protocols import stages


def test_fault_spec_parse_and_errors():
    s = FaultSpec.parse("hold 0210 host->terminal nth=2 ms=1500")
    assert (s.action, s.stage, s.direction, s.occurrence, s.params) == ("hold", "0210", "host->terminal", 2,
                                                                         {"ms": 1500.0})
    assert FaultSpec.parse("rst zvt:04 0F terminal->till every to=both").stage == "zvt:04 0F"
    assert FaultSpec.parse("drop zvt:06_01").stage == "zvt:06 01"
    assert FaultSpec.parse("flap count=3 down_ms=200 every_ms=1000").stage is None
    for bad, why in [("explode 0210", "unknown fault"), ("drop", "needs a stage"), ("hold 0210", "needs ms"),
                     ("drop 210", "not an ISO 8583 MTI"), ("drop 0210 nth=0", "occurrence"),
                     ("drop 0210 ms=3", "has no parameter 'ms'"), ("hold 0210 ms=abc", "expected a float"),
                     ("", "empty fault"), ("drop 0210 0200", "unexpected word '0200'"),
                     ("hold 0210 ms=nan", "finite"), ("blackhole ms=-5", "cannot be negative"),
                     ("corrupt connect", "SYN has no payload"), ("corrupt 0200 checksum=maybe", "'fix' or 'keep'"),
                     ("drop 0210 host->", "must read '<end>-><end>'")]:
        with pytest.raises(FaultError, match=why):
            FaultSpec.parse(bad)
    assert FaultSpec.from_json(s.to_json()) == s


def test_stage_names_are_the_stage_grammars():
    """Every spelling `harness.protocols.stages` accepts names the same stage, kept canonical."""
    for spelling in ("zvt:04 0F", "zvt:04_0F", "zvt:040F", "zvt:04 0f", "04-0F", "zvt: 04 0F"):
        assert FaultSpec.parse(f"drop {spelling} terminal->till").stage == "zvt:04 0F", spelling
        assert FaultSpec("drop", stage=spelling).stage == "zvt:04 0F", spelling
    assert FaultSpec("drop", stage="connect").stage == "connect"
    assert FaultSpec("hold", stage="any", params={"ms": 5}).stage == "any"
    for bad in ("210", "zvt:4 0F", "zvt:04", "0F"):
        with pytest.raises(FaultError, match="is not an ISO 8583 MTI"):
            FaultSpec("drop", stage=bad)


def test_fault_spec_stan():
    s = FaultSpec.parse("drop 0210 host->terminal stan=000123")
    assert s.stan == "000123" and "stan=000123" in s.describe()
    with pytest.raises(FaultError, match="for an ISO 8583 stage"):
        FaultSpec.parse("drop zvt:04_0F stan=000123")
    with pytest.raises(FaultError, match="a STAN is digits"):
        FaultSpec.parse("drop 0210 stan=12a")


def test_describe_reads_back():
    for text in ("drop 0210 host->terminal first", "blackhole every ms=300.0", "rst zvt:04 0F nth=3 to=both",
                 "hold 0200 terminal->host every stan=000042 ms=1.5", "flap first count=2 down_ms=150.0"):
        assert FaultSpec.parse(text).describe() == text
        assert FaultSpec.parse(FaultSpec.parse(text).describe()) == FaultSpec.parse(text)


def test_parameters_are_normalised():
    s = FaultSpec("hold", "0210", params={"ms": 300})
    assert s.params == {"ms": 300.0} and isinstance(s.params["ms"], float)
    assert FaultSpec("rst", "0210", params={"to": None}).params == {}
    assert FaultSpec("rst", "0210").param("to") == "both"
    with pytest.raises(FaultError, match="expected int"):
        FaultSpec("duplicate", "0210", params={"copies": True})
    with pytest.raises(FaultError, match="expected one word"):
        FaultSpec("rst", "0210", params={"to": "the host"})


# -- property: every valid spec reads back from its text ----------------------------------------------------
ISO_MTIS = st.text(string.digits, min_size=4, max_size=4)
ZVT_CODES = st.tuples(st.integers(0, 255), st.integers(0, 255))


@st.composite
def zvt_spellings(draw) -> tuple[str, str]:
    """(a spelling, the canonical name) of a ZVT stage."""
    cls, ins = draw(ZVT_CODES)
    a, b = f"{cls:02X}", f"{ins:02X}"
    if draw(st.booleans()):
        a, b = a.lower(), b.lower()
    spelled = draw(st.sampled_from([f"zvt:{a} {b}", f"zvt:{a}_{b}", f"zvt:{a}{b}", f"zvt: {a} {b}", f"{a}-{b}",
                                    f"ZVT:{a}-{b}"]))
    return spelled, f"zvt:{cls:02X} {ins:02X}"


STAGES = st.one_of(ISO_MTIS.map(lambda m: (m, m)), zvt_spellings(),
                   st.sampled_from([("connect", "connect"), ("CONNECT", "connect"), ("any", "any")]))
WORD = st.text(string.ascii_letters + string.digits + "_-.:>#/äöüé", min_size=1, max_size=8) \
    .filter(lambda w: "->" not in w)
ENDS = st.sampled_from(["till", "terminal", "host", "printer"]) | WORD
VALUES = {
    float: st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False) | st.integers(0, 10**6),
    int: st.integers(-10**6, 10**6),
    bool: st.booleans(),
}


@st.composite
def fault_specs(draw) -> tuple[FaultSpec, str]:
    """A valid FaultSpec, and the text a person could have typed for it (any stage spelling)."""
    action = draw(st.sampled_from(sorted(ACTIONS)))
    staged = draw(st.booleans()) or action in NEEDS_STAGE
    spelled, stage = draw(STAGES) if staged else (None, None)
    if action == "corrupt" and stage == "connect":
        spelled, stage = "0200", "0200"
    direction = None
    if draw(st.booleans()):
        direction = f"{draw(ENDS)}->{draw(ENDS)}"
    occurrence = draw(st.sampled_from([1, EVERY]) | st.integers(1, 10**6))
    params = {}
    for key, (kind, _, _) in ACTIONS[action].items():
        if not draw(st.booleans()) and not (action == "hold" and key == "ms"):
            continue
        if key == "to":
            params[key] = draw(st.sampled_from(["both", "sender", "receiver"]) | ENDS)
        elif key == "checksum":
            params[key] = draw(st.sampled_from(["fix", "keep"]))
        elif action == "hold" and key == "ms":
            params[key] = draw(st.floats(min_value=0.001, max_value=1e6) | st.integers(1, 10**6))
        else:
            params[key] = draw(VALUES[kind])
    stan = None
    if stage is not None and stage.isdigit() and draw(st.booleans()):
        stan = draw(st.text(string.digits, min_size=1, max_size=12))
    spec = FaultSpec(action, stage, direction, occurrence, params, stan)
    words = [action] + ([spelled] if spelled else []) + ([direction] if direction else [])
    words.append({1: draw(st.sampled_from(["first", "nth=1", ""])), EVERY: "every"}.get(occurrence,
                                                                                        f"nth={occurrence}"))
    words += [f"stan={stan}"] if stan else []
    words += [f"{k}={v}" for k, v in params.items()]
    typed = " ".join([action, *draw(st.permutations([w for w in words[1:] if w]))])   # any order after the action
    return spec, typed


@given(fault_specs())
def test_every_valid_spec_reads_back_from_its_description(case):
    spec, typed = case
    assert FaultSpec.parse(spec.describe()) == spec
    assert FaultSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    assert FaultSpec.parse(typed) == spec, typed
    if spec.stage is not None:
        assert spec.stage == stages.canonical(spec.stage)


# -- typed events -----------------------------------------------------------------------------------------------
def test_engine_lines_become_typed_events():
    spec = FaultSpec.parse("rst 0210 host->terminal")
    lines = [{"event": "armed", "fault": 1, "t": 10.0, "spec": spec.to_json()},
             {"event": "fired", "fault": 1, "t": 10.5, "packet": 7, "stage": "0210", "direction": "host->terminal",
              "ordinal": 1, "stan": "000001", "resets": [{"to": "host", "seq": 5, "ack": 6, "expected": 5}],
              "detail": {"firing": 1, "stream_start": 0, "stream_end": 40}},
             {"event": "verified", "fault": 1, "t": 10.6, "end": "host", "taken": True, "detail": "gone",
              "packet": 9},
             {"event": "released", "fault": 1, "t": 11.0, "packets": 2, "held_ms": 500.2},
             {"event": "outage_end", "fault": 1, "t": 11.5},
             {"event": "cleared", "fault": 1, "t": 12.0}]
    events = [fault_event(line) for line in lines]
    assert [type(e) for e in events] == [FaultArmed, FaultFired, ResetVerified, FaultReleased, OutageEnded,
                                         FaultCleared]
    armed, fired = events[0], events[1]
    assert armed.spec == spec
    assert fired.packet == 7 and fired.resets == ({"to": "host", "seq": 5, "ack": 6, "expected": 5},)
    assert fired.detail["stream_end"] == 40
    for line, ev in zip(lines, events, strict=True):
        back = json.loads(json.dumps({"event": ev.event, **ev.to_json()}))      # as the engine prints it
        assert back == line and fault_event(back) == ev
    assert fault_event({"event": "status", "stats": {}}) is None
    assert set(FAULT_EVENTS) == {"armed", "fired", "released", "verified", "outage_end", "cleared"}
    with pytest.raises(FaultError, match="malformed fired event"):
        fault_event({"event": "fired", "t": 1.0})


def test_faults_module_is_light():
    """The rig loader imports faults.py to validate a rig's faults: it must not pull in scapy (nor the link's
    layers, which do). Checked on the module's own imports: the unit tier starts no fresh interpreter."""
    import harness.link.faults as faults

    tree = ast.parse(Path(faults.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | \
               {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any("scapy" in m or m.startswith("harness.link.") for m in imported), imported

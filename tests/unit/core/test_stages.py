"""The one stage grammar: every spelling people write maps to one canonical name and one id label."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.protocols import stages
from harness.protocols.stages import Stage, StageError

hexbyte = st.integers(0, 255)


@pytest.mark.parametrize("text", ["zvt:04 0F", "zvt:040F", "zvt:04_0F", "zvt: 04 0f", "ZVT:04-0f", "04-0F", "04_0f"])
def test_every_zvt_spelling_is_the_same_stage(text):
    s = stages.parse(text)
    assert (s.protocol, s.name, s.label, str(s)) == ("zvt", "zvt:04 0F", "04-0F", "zvt:04 0F")


def test_iso8583_connect_and_any():
    assert stages.parse("0210") == stages.iso8583_stage(b"0210") == Stage("iso8583", "0210")
    assert stages.parse("0210").label == "0210"
    assert stages.parse("connect") is stages.CONNECT and stages.parse("ANY") is stages.ANY


@pytest.mark.parametrize("bad", ["", "021", "02100", "zvt:4 0F", "04 0F", "zvt:GG 01", "0210x", "connected"])
def test_what_is_not_a_stage_is_refused_naming_the_forms(bad):
    with pytest.raises(StageError, match="not an ISO 8583 MTI"):
        stages.parse(bad)
    assert not stages.is_stage(bad)


@given(hexbyte, hexbyte)
def test_zvt_stage_name_and_label_parse_back(cls, ins):
    s = stages.zvt_stage(cls, ins)
    assert stages.parse(s.name) == s == stages.parse(s.label) == stages.parse(s.name.lower())
    assert stages.canonical(s.label) == s.name


@given(st.from_regex(r"\A\d{4}\Z"))
def test_mti_round_trip(mti):
    assert stages.parse(mti).name == mti and stages.parse(stages.parse(mti).label) == stages.iso8583_stage(mti)

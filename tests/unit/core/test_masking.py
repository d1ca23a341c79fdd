"""Card numbers are masked to first 6 + last 4 wherever posrig writes them."""

import json

from hypothesis import given
from hypothesis import strategies as st

from harness.core.evidence import Evidence
from harness.core.masking import find_unmasked_pans, luhn_ok, mask_pan, mask_pans, mask_raw


def _luhn_complete(body: str) -> str:
    for d in "0123456789":
        if luhn_ok(body + d):
            return body + d
    raise AssertionError


def test_mask_pan_keeps_bin_and_last_four():
    assert mask_pan("4111111111111111") == "411111******1111"
    assert mask_pan("5500 0000 0000 0004") == "550000******0004"


def test_free_text_masking_only_touches_card_numbers():
    text = "PAN 4111111111111111 STAN 000123 amount 000000001000 RRN 123456789012"
    assert mask_pans(text) == "PAN 411111******1111 STAN 000123 amount 000000001000 RRN 123456789012"
    assert find_unmasked_pans(text) == ["411111******1111"]
    assert find_unmasked_pans(mask_pans(text)) == []


@given(st.text(alphabet="0123456789", min_size=12, max_size=18), st.text(max_size=20), st.text(max_size=20))
def test_no_luhn_valid_pan_survives_masking(body, before, after):
    pan = _luhn_complete(body)
    masked = mask_pans(f"{before} {pan} {after}")
    assert pan not in masked
    assert find_unmasked_pans(masked) == []


def test_transcripts_are_masked(tmp_path):
    ev = Evidence(tmp_path / "t")
    with ev.transcript("host") as t:
        t.write("rx", fields={"2": "4111111111111111", "4": "000000001000"}, note="card 4111111111111111")
    line = (tmp_path / "t" / "host.jsonl").read_text()
    assert "4111111111111111" not in line
    rec = json.loads(line)
    assert rec["fields"]["2"] == "411111******1111" and rec["note"] == "card 411111******1111"
    assert [a.name for a in ev.attachments] == ["host.jsonl"]


def test_llvar_length_glued_to_the_pan_is_still_masked():
    assert mask_pans("x164111111111111111y") == "x16411111******1111y"
    raw = "0200723C040000C08000164111111111111111000000000000000488112203421800000103421811222812"
    assert "4111111111111111" not in mask_raw(raw)
    assert "0800016411111******1111000000" in mask_raw(raw)
    assert find_unmasked_pans("164111111111111111") == ["411111******1111"]


def test_the_hidden_range_is_what_mask_pan_stars():
    from harness.core.masking import hidden_range

    for n in (8, 10, 11, 13, 16, 19):
        a, b = hidden_range(n)
        assert "".join("*" if a <= i < b else "0" for i in range(n)) == mask_pan("0" * n)

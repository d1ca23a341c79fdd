"""Evidence paths stay inside the evidence folder, whatever name a device or a test id brings."""

from __future__ import annotations

import pytest

from harness.core.evidence import Evidence, EvidenceError, safe_name


@pytest.mark.parametrize("text", ["..", ".", "...", "../..", "/../../etc"])
def test_safe_name_is_never_a_dot_folder(text):
    name = safe_name(text)
    assert name not in (".", "..") and "/" not in name and not name.startswith(".")


def test_safe_name_keeps_test_ids_readable():
    assert safe_name("tests/x.py::test_a[terminal-host/0210-lost]") == "tests_x.py_test_a_terminal-host_0210-lost"


@pytest.mark.parametrize("name", ["../../../../../tmp/trav/P/receipt.json", "../P.jsonl", "/tmp/trav/P.jsonl",
                                  "printer/../../P.jsonl", ".", ""])
def test_a_name_that_leaves_the_folder_is_refused_and_nothing_is_written(tmp_path, name):
    ev = Evidence(tmp_path / "run" / "evidence" / "test_sale")
    with pytest.raises(EvidenceError, match="is not inside the evidence folder"):
        ev.file(name)
    with pytest.raises(EvidenceError):
        ev.write_text(name, "4111111111111111")
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == []
    assert ev.attachments == []


def test_a_device_named_to_climb_out_gets_no_transcript_outside(tmp_path):
    ev = Evidence(tmp_path / "evidence")
    with pytest.raises(EvidenceError, match=r"'\.\./\.\./P\.jsonl' is not inside the evidence folder"):
        ev.transcript("../../P")
    with pytest.raises(EvidenceError):
        ev.inside("../../P")                                          # a printer's receipt journal folder
    assert list(tmp_path.rglob("P*")) == []


def test_names_inside_the_folder_are_kept(tmp_path):
    ev = Evidence(tmp_path / "ev")
    assert ev.file("printer/receipt-0001.json") == tmp_path / "ev" / "printer" / "receipt-0001.json"
    assert ev.inside("printer") == tmp_path / "ev" / "printer"
    assert ev.write_text("a/../host.log", "x") == tmp_path / "ev" / "host.log"


def test_long_test_ids_that_differ_only_at_the_end_get_their_own_folders():
    """Two parametrized ids cut at the same length shared one folder, so parallel workers wiped each other's
    evidence (the power-cut tests through http and command)."""
    stem = "tests/acceptance/test_vendor_till.py::test_vendor_till_recovers_from_a_power_cut_mid_payment"
    http, command = (safe_name(f"{stem}[till/power-cut-authorizing/decline-{d}]") for d in ("http", "command"))
    assert http != command and len(http) <= 120 and len(command) <= 120
    assert http.startswith("tests_acceptance_test_vendor_till.py_test_vendor_till_recovers")
    assert safe_name(f"{stem}[till/power-cut-authorizing/decline-http]") == http        # stable across runs

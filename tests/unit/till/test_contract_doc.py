"""The contract's worked example is the example vendor till's code, verbatim, and its tables name every device
endpoint posrig hands out: the documentation cannot drift from what runs."""

from __future__ import annotations

import re

from harness.till.endpoints import ENDPOINTS
from tests.support import ROOT

DOC = (ROOT / "docs" / "till-contract.md").read_text()
EXAMPLE = (ROOT / "examples" / "vendor_till" / "till.py").read_text()


def test_every_python_block_is_the_example_tills_code():
    blocks = re.findall(r"```python\n(.*?)```", DOC, re.S)
    assert len(blocks) >= 3
    for block in blocks:
        assert block in EXAMPLE, f"docs/till-contract.md shows code that is not examples/vendor_till/till.py:\n{block}"


def test_every_endpoint_is_documented():
    for name in ENDPOINTS:
        assert f"| `{name}` | `POSRIG_{name.upper()}` |" in DOC


def test_the_rig_entries_shown_load(tmp_path):
    from harness.core.rig import load_rig

    for rig in ("rig-http.yaml", "rig-command.yaml"):
        till = load_rig(ROOT / "examples" / "vendor_till" / rig).devices["till"]
        assert till.address is None and ("launch" in till.options or "serve" in till.options)

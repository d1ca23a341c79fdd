"""Fixtures: the reference till as a real subprocess, wired to test peers on loopback."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from harness.core.device import DeviceContext
from harness.core.evidence import Evidence
from harness.core.rig import load_rig
from harness.till.reference import ReferenceTill
from tests.support import ROOT
from tests.support.till_peers import MiniPrinter, ScriptedTerminal, till_spec


@pytest.fixture
def rig_emulated():
    return load_rig(ROOT / "rigs" / "emulated.yaml")


@pytest.fixture
def make_till(tmp_path, rig_emulated, monkeypatch):
    """make_till(profile, terminal=ScriptedTerminal(...), printer=MiniPrinter(...)) -> (till, terminal,
    printer)."""
    monkeypatch.delenv("POSRIG_TILL_PROFILE", raising=False)
    made: list = []

    def make(profile: str = "correct", terminal: ScriptedTerminal | None = None,
             printer: MiniPrinter | None = None):
        terminal = terminal or ScriptedTerminal("approve")
        printer = printer or MiniPrinter()
        made.extend([terminal, printer])
        ctx = DeviceContext(rig=rig_emulated, evidence=Evidence(tmp_path / f"ev-{len(made)}"),
                            timing=rig_emulated.timing)
        till = ReferenceTill(till_spec(profile), ctx,
                             printer=SimpleNamespace(address={"tcp": "{}:{}".format(*printer.address)}),
                             terminal=SimpleNamespace(ecr_address=terminal.address))
        made.insert(0, till)
        till.start()
        return till, terminal, printer

    yield make
    for thing in made:
        thing.close()

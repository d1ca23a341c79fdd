"""The terminal notes every message the ECR did not acknowledge within T3, and whether the 80 00 came later (I9)."""

from __future__ import annotations

import time

from harness.core.events import wait_until
from tests.support.ecr_client import SCALE, Ecr

T3 = 5.0 * SCALE


def _pay(ecr: Ecr, amount: int, *, skip: tuple[int, int] | None = None, late: tuple[int, int] | None = None):
    """An authorization served to its end; messages of class `skip` are never acknowledged, those of class `late`
    are acknowledged after T3 (and after the terminal's next message, when it sends one meanwhile)."""
    ecr.send(ecr.authorization(amount))
    ecr.expect_ack()
    seen = []
    while True:
        msg = ecr.receive()
        seen.append(msg.control)
        if msg.control != skip:
            if msg.control == late:
                time.sleep(T3 * 2)
            ecr.ack()
        if msg.control in ((0x06, 0x0F), (0x06, 0x1E)):
            return seen


def test_an_ecr_that_acknowledges_everything_owes_nothing(terminal, ecr):
    seen = _pay(ecr, 478)
    assert (0x04, 0xFF) in seen and seen[-1] == (0x06, 0x0F)
    time.sleep(T3 * 1.5)
    assert [e for e in terminal.core.unacknowledged if not e["late"]] == []   # (a loaded machine may be late)


def test_a_completion_never_acknowledged_is_noted(terminal):
    before = time.time()
    ecr = Ecr(terminal.ecr_address)
    _pay(ecr, 478, skip=(0x06, 0x0F))
    ecr.close()                                            # hangs up instead of 80 00
    assert wait_until(lambda: terminal.core.unacknowledged, timeout=5 * T3)
    [entry] = terminal.core.unacknowledged
    assert entry["apdu"] == "06 0F completion" and not entry["late"]
    assert before <= entry["opened"] < entry["t"]          # its connection's time: older ones are not a later sale's


def test_intermediate_statuses_never_acknowledged_are_noted(terminal, ecr):
    seen = _pay(ecr, 478, skip=(0x04, 0xFF))
    owed = [e for e in terminal.core.unacknowledged if not e["late"]]
    assert len(owed) == seen.count((0x04, 0xFF)) > 0
    assert {e["apdu"] for e in owed} == {"04 FF intermediate_status"}


def test_a_late_acknowledgement_settles_its_message(terminal, ecr):
    """Late 80 00s, even ones that arrive after the terminal sent its next message, leave nothing owed."""
    seen = _pay(ecr, 478, late=(0x04, 0xFF))
    time.sleep(T3 * 1.5)
    entries = terminal.core.unacknowledged
    assert entries and all(e["late"] for e in entries), entries
    assert seen[-1] == (0x06, 0x0F)

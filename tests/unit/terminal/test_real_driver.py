"""RealTerminal (the driver for a physical ZVT terminal) with the emulated terminal standing in for the hardware,
over TCP and over RS-232 (a pty)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.core.device import DeviceContext
from harness.core.evidence import Evidence
from harness.core.rig import DeviceSpec, Timing
from harness.terminal.real import RealTerminal, TerminalError


def real_terminal(address: str, tmp_path: Path, transport: str = "tcp") -> RealTerminal:
    """The real-terminal driver pointed at `address` ("IP:PORT", or a serial device for transport serial)."""
    spec = DeviceSpec(name="pt", kind="terminal", mode="real", driver="real", transport=transport, address=address,
                      node="terminal", options={})
    return RealTerminal(spec, DeviceContext(rig=None, evidence=Evidence(tmp_path / "real"), timing=Timing(0.05)))


def started(address: tuple[str, int], tmp_path: Path) -> RealTerminal:
    term = real_terminal(f"{address[0]}:{address[1]}", tmp_path)
    term.start()
    return term


def test_real_driver_reads_status_and_repeats_the_last_receipt(terminal, acquirer, tmp_path):
    real = started(terminal.ecr_address, tmp_path)
    try:
        status = real.status()
        assert status["ok"] and status["terminal_status"] == 0 and status["sw_version"].startswith("posrig")
        assert real.register()["ok"]  # config 0x8A: receipts to the ECR as print lines
        paid = real.authorize(4321)
        assert paid["ok"] and paid["status"]["result_code"] == 0 and paid["receipt"]
        receipt = real.repeat_last_receipt()
        assert receipt["ok"]
        assert receipt["status"]["amount"] == 4321
        assert receipt["status"]["receipt_no"] == terminal.journal.last("sale")["receipt_no"]
        assert receipt["status"]["pan"] == "411111******1111"
        assert receipt["receipt"] == paid["receipt"]  # the same slip, printed again
        terminal.present_card("decline")
        declined = real.authorize(100)
        assert not declined["ok"] and declined["result_code"] == 5
        assert len(real.observed) == 5
        assert real.journal is None              # no rig link to read a capture from, no export named
    finally:
        real.close()
    text = (tmp_path / "real" / "pt.jsonl").read_text()
    assert "06:20" in text and "4111111111111111" not in text


def test_real_driver_explains_an_unreachable_terminal(tmp_path):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    term = real_terminal(f"127.0.0.1:{port}", tmp_path)
    term.start()                                 # no ECR session of its own: starting reaches nothing
    with pytest.raises(TerminalError, match="cannot reach the ZVT terminal"):
        term.status()
    term.close()


def test_real_driver_over_rs232(make_terminal, acquirer, tmp_path):
    emulated = make_terminal(name="serial-pt", transport="serial")
    real = real_terminal(emulated.ecr_device, tmp_path, transport="serial")
    real.start()
    try:
        assert real.ecr_device == emulated.ecr_device
        assert real.status()["terminal_status"] == 0
        paid = real.authorize(1111)
        assert paid["ok"] and paid["status"]["amount"] == 1111
        assert real.repeat_last_receipt()["status"]["trace"] == paid["status"]["trace"]
    finally:
        real.close()
    assert [r["state"] for r in acquirer.ledger()] == ["approved"]

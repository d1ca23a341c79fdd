"""RealTerminal (the driver for a physical ZVT terminal) with the emulator standing in for the hardware, and
`posrig terminal serve|status|receipt` as a separate process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness.core.device import DeviceContext
from harness.core.evidence import Evidence
from harness.core.process import die_with_parent
from harness.core.rig import DeviceSpec, Timing
from harness.protocols import zvt
from harness.terminal.real import RealTerminal, TerminalError
from tests.support import ROOT
from tests.support.ecr_client import Ecr

POSRIG = [sys.executable, "-c", "import sys; from harness.cli import main; sys.exit(main())"]


def real_terminal(address: tuple[str, int], tmp_path: Path) -> RealTerminal:
    spec = DeviceSpec(
        name="pt",
        kind="terminal",
        mode="real",
        driver="real",
        transport="tcp",
        address=f"{address[0]}:{address[1]}",
        node="terminal",
        options={},
    )
    term = RealTerminal(
        spec, DeviceContext(rig=None, evidence=Evidence(tmp_path / "real"), timing=Timing(0.05))
    )
    term.start()
    return term


def test_real_driver_reads_status_and_repeats_the_last_receipt(terminal, acquirer, tmp_path):
    real = real_terminal(terminal.ecr_address, tmp_path)
    try:
        status = real.status()
        assert status["ok"] and status["terminal_status"] == 0 and status["sw_version"].startswith("posrig")
        assert real.register()["ok"]  # config 0x0A: receipts to the ECR
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
        assert len(real.journal) == 5
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
    spec = DeviceSpec(
        name="pt",
        kind="terminal",
        mode="real",
        driver="real",
        transport="tcp",
        address=f"127.0.0.1:{port}",
        node="terminal",
        options={},
    )
    term = RealTerminal(spec, DeviceContext(rig=None, evidence=Evidence(tmp_path), timing=Timing(0.05)))
    with pytest.raises(TerminalError, match="cannot reach the ZVT terminal"):
        term.start()
    term.close()


@pytest.fixture
def served(acquirer, tmp_path):
    cmd = [
        *POSRIG,
        "terminal",
        "serve",
        "--ecr",
        "127.0.0.1:0",
        "--host",
        f"{acquirer.address[0]}:{acquirer.address[1]}",
        "--journal",
        str(tmp_path / "cli-journal.sqlite"),
        "--evidence",
        str(tmp_path / "cli-evidence"),
        "--scale",
        "0.05",
        "--ecr-receipts",
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=die_with_parent,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        ready = json.loads(line)
        yield proc, ready
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_cli_serve_runs_a_payment(served, acquirer, tmp_path):
    proc, ready = served
    assert ready["ready"] is True and ready["card"] == "approve"
    host, port = ready["ecr"].rsplit(":", 1)
    with Ecr((host, int(port))) as ecr:
        d = ecr.converse(ecr.authorization(999))
    assert d.completed and d.print_lines
    assert [r["state"] for r in acquirer.ledger()] == ["approved"]
    out = subprocess.run(
        [*POSRIG, "terminal", "receipt", "--ecr", ready["ecr"]], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    receipt = json.loads(out.stdout)
    assert receipt["status"]["amount"] == 999 and any("APPROVED" in line for line in receipt["receipt"])
    out = subprocess.run(
        [*POSRIG, "terminal", "status", "--ecr", ready["ecr"]], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0 and json.loads(out.stdout)["terminal_status"] == 0
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(5) == 0
    transcript = (tmp_path / "cli-evidence" / "terminal.jsonl").read_text()
    assert "status_information" in transcript and "4111111111111111" not in transcript


def test_cli_rejects_bad_arguments(acquirer):
    out = subprocess.run(
        [*POSRIG, "terminal", "serve", "--host", "nowhere", "--card", "gold"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2 and "gold" in out.stderr and "approve" in out.stderr
    out = subprocess.run(
        [*POSRIG, "terminal", "status", "--ecr", "127.0.0.1:1"], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 1 and "cannot reach the ZVT terminal" in out.stderr


def test_cli_serves_zvt_on_a_pty(acquirer, tmp_path):
    import serial

    cmd = [
        *POSRIG,
        "terminal",
        "serve",
        "--ecr",
        "pty",
        "--host",
        f"{acquirer.address[0]}:{acquirer.address[1]}",
        "--journal",
        str(tmp_path / "j.sqlite"),
        "--scale",
        "0.05",
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=die_with_parent
    )
    try:
        ready = json.loads(proc.stdout.readline() or proc.stderr.read())
        assert ready["ecr"].startswith("/dev/")
        with serial.Serial(ready["ecr"], 9600, timeout=2) as port:
            status_enquiry = bytes.fromhex("050103000000")
            c = zvt.crc16(status_enquiry + b"\x03")
            port.write(b"\x10\x02" + status_enquiry + b"\x10\x03" + bytes([c & 0xFF, c >> 8]))
            assert port.read(1) == b"\x06"  # link-level ACK
            assert port.read(2) == b"\x10\x02"  # then the 80 00 00 frame
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0


def test_real_driver_over_rs232(make_terminal, acquirer, tmp_path):
    emulated = make_terminal(name="serial-pt", transport="serial")
    spec = DeviceSpec(
        name="pt",
        kind="terminal",
        mode="real",
        driver="real",
        transport="serial",
        address=emulated.ecr_device,
        node="terminal",
        options={},
    )
    real = RealTerminal(
        spec, DeviceContext(rig=None, evidence=Evidence(tmp_path / "rs232"), timing=Timing(0.05))
    )
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


def test_stored_reversal_survives_sigkill(acquirer, tmp_path):
    """The terminal dies right after storing a reversal; restarted on the same journal, it repeats it."""
    journal = tmp_path / "killed.sqlite"
    host = f"{acquirer.address[0]}:{acquirer.address[1]}"
    acquirer.drop_responses("0210")
    acquirer.drop_responses("0430", 1000)  # nothing acknowledges the reversal before the kill

    def serve(*extra):
        cmd = [
            *POSRIG,
            "terminal",
            "serve",
            "--ecr",
            "127.0.0.1:0",
            "--host",
            host,
            "--journal",
            str(journal),
            "--scale",
            "0.05",
            *extra,
        ]
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, preexec_fn=die_with_parent
        )
        return proc, json.loads(proc.stdout.readline())

    proc, ready = serve()
    try:
        h, p = ready["ecr"].rsplit(":", 1)
        with Ecr((h, int(p))) as ecr:
            assert ecr.converse(ecr.authorization(6600)).abort_code == 0xA1
        assert acquirer.wait_for(lambda: "0420" in acquirer.mtis())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
    assert acquirer.ledger()[0]["state"] == "reversed"  # the host got it, the terminal never heard back
    acquirer.drop.clear()
    seen = len(acquirer.mtis())
    from harness.terminal.journal import Journal

    proc, _ = serve("--timer", "reversal_retry=2")  # repeats every 0.1 s at this scale
    j = Journal(journal)  # a second reader of the live journal (WAL)
    try:
        assert acquirer.wait_for(lambda: "0421" in acquirer.mtis()[seen:], timeout=10)
        assert acquirer.wait_for(lambda: j.last("sale")["state"] == "reversed", timeout=10)
        assert [s["state"] for s in j.saf_all()] == ["acknowledged"]
    finally:
        j.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0

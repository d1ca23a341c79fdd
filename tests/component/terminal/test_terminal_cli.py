"""`posrig terminal serve|status|receipt` as separate processes: the emulated terminal's command line, its ready
line, its journal across a SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from harness.core.process import die_with_parent
from harness.protocols import zvt
from tests.support import ROOT
from tests.support.ecr_client import Ecr

POSRIG = [sys.executable, "-c", "import sys; from harness.cli import main; sys.exit(main())"]


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
    assert ready["event"] == "ready" and ready["pid"] == proc.pid and ready["card"] == "approve"
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


def test_cli_rejects_bad_arguments(acquirer, tmp_path):
    out = subprocess.run(
        [*POSRIG, "terminal", "serve", "--host", "nowhere", "--card", "gold", "--journal", str(tmp_path / "j.sqlite")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2 and "gold" in out.stderr and "approve" in out.stderr
    failed = json.loads(out.stdout.splitlines()[0])  # the supervisor's side: posrig's one readiness dialect
    assert failed["event"] == "failed" and "gold" in failed["error"]
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
        assert ready["event"] == "ready" and ready["ecr"].startswith("/dev/")
        with serial.Serial(ready["ecr"], 9600, timeout=2) as port:
            status_enquiry = bytes.fromhex("050103000000")
            c = zvt.crc16(status_enquiry + b"\x03")
            port.write(b"\x10\x02" + status_enquiry + b"\x10\x03" + bytes([c & 0xFF, c >> 8]))
            assert port.read(1) == b"\x06"  # link-level ACK
            assert port.read(2) == b"\x10\x02"  # then the 80 00 00 frame
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0


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
    assert ready["event"] == "ready"
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


def test_cli_serve_needs_an_explicit_journal(acquirer, tmp_path):
    """No journal in whatever folder the terminal was started from: --journal is required and named."""
    host = f"{acquirer.address[0]}:{acquirer.address[1]}"
    out = subprocess.run(
        [*POSRIG, "terminal", "serve", "--ecr", "127.0.0.1:0", "--host", host],
        capture_output=True, text=True, timeout=30, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.returncode == 2 and "--journal" in out.stderr
    assert list(tmp_path.iterdir()) == []
    help_text = subprocess.run([*POSRIG, "terminal", "serve", "--help"], capture_output=True, text=True,
                               timeout=30, cwd=ROOT).stdout
    assert "--journal FILE" in help_text and "password" in help_text


def test_cli_serve_checks_the_password_it_is_given(acquirer, tmp_path):
    host = f"{acquirer.address[0]}:{acquirer.address[1]}"
    bad = subprocess.run(
        [*POSRIG, "terminal", "serve", "--host", host, "--journal", str(tmp_path / "j.sqlite"), "--password", "12ab"],
        capture_output=True, text=True, timeout=30, cwd=ROOT,
    )
    assert bad.returncode == 2 and "6 decimal digits" in bad.stderr
    cmd = [*POSRIG, "terminal", "serve", "--ecr", "127.0.0.1:0", "--host", host, "--journal",
           str(tmp_path / "j.sqlite"), "--scale", "0.05", "--password", "123456"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=die_with_parent, cwd=ROOT)
    try:
        ready = json.loads(proc.stdout.readline() or proc.stderr.read())
        address, port = ready["ecr"].rsplit(":", 1)
        with Ecr((address, int(port))) as ecr:
            ecr.send(bytes.fromhex("06 00 06 654321 08 0978"))
            assert ecr.receive().control == (0x84, 0x83)          # wrong password: function not possible
            assert ecr.converse(bytes.fromhex("06 00 06 123456 08 0978")).completed
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(5)

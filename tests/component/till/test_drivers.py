"""The command till driver running a vendor's command line (its own process per action), and `posrig till serve`
as a process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request

import pytest

from harness.core.device import DeviceContext
from harness.core.evidence import Evidence
from harness.core.rig import DeviceSpec
from harness.till.command import CommandTill
from harness.till.outcome import ContractError
from tests.support import ROOT
from tests.support.till_peers import BASKET, TOTAL, MiniPrinter, ScriptedTerminal

VENDOR = ROOT / "tests" / "support" / "vendor_cli.py"


def command_till(tmp_path, rig, url: str, **options) -> CommandTill:
    spec = DeviceSpec(name="till", kind="till", mode="real", driver="command", transport="command",
                      address=f"{sys.executable} {VENDOR} {url}", node="till", options=options)
    ctx = DeviceContext(rig=rig, evidence=Evidence(tmp_path / "ev"), timing=rig.timing)
    return CommandTill(spec, ctx)


def test_command_till_sells_through_a_vendor_cli(make_till, tmp_path, rig_emulated):
    ref, terminal, printer = make_till("correct")
    url = ref.client.url
    till = command_till(tmp_path, rig_emulated, url,
                        journal=f"{sys.executable} {VENDOR} {url} journal",
                        health=f"{sys.executable} {VENDOR} {url} health")
    with till:
        out = till.sell(BASKET)
        assert out.status == "paid" and out.amount_cents == TOTAL and out.receipt == "printed"
        assert [s["id"] for s in till.journal()] == [out.sale_id]
        assert till.recover() == []                                   # no recover command configured
    record = json.loads((tmp_path / "ev" / "till-commands.json").read_text())
    assert [r["action"] for r in record] == ["health", "sell", "journal"]


@pytest.mark.parametrize("action, message",
                         [("broken", "must print JSON"), ("fail", "exited 3: printer jammed")])
def test_command_till_failures_name_the_command(tmp_path, rig_emulated, action, message):
    till = command_till(tmp_path, rig_emulated, "http://127.0.0.1:9",
                        sell=f"{sys.executable} {VENDOR} x {action}")
    till.start()
    with pytest.raises(ContractError, match=message):
        till.sell(BASKET)


def test_posrig_till_serve_reports_ready_and_stops_on_sigterm(tmp_path):
    terminal, printer = ScriptedTerminal("approve"), MiniPrinter()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; from harness.cli import main; sys.exit(main())",
             "till", "serve",
             "--ecr", "{}:{}".format(*terminal.address), "--printer", "{}:{}".format(*printer.address),
             "--profile", "correct", "--control", "127.0.0.1:0",
             "--journal", str(tmp_path / "till.sqlite"), "--timing-scale", "0.05"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready = json.loads(proc.stdout.readline())
        assert ready["event"] == "ready" and ready["identity"]["profile"] == "correct"
        req = urllib.request.Request(f"http://{ready['control']}/sale", method="POST",
                                     data=json.dumps({"basket": BASKET, "tender": "cash"}).encode())
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert json.loads(resp.read())["status"] == "paid"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()
        terminal.close()
        printer.close()


def test_serve_refuses_an_unknown_profile(tmp_path):
    out = subprocess.run([sys.executable, "-m", "harness.reference_till", "serve", "--ecr", "127.0.0.1:1",
                          "--printer", "127.0.0.1:2", "--profile", "sloppy",
                          "--journal", str(tmp_path / "j")],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "unknown till profile 'sloppy'" in out.stdout

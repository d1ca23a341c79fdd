"""The command and operator till drivers, and the `posrig till serve` command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request

import pytest

from harness.core.device import DeviceContext
from harness.core.evidence import Evidence
from harness.core.rig import DeviceSpec
from harness.till.command import CommandTill
from harness.till.operator import ConsoleOperator, OperatorTill
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


def test_command_till_unknown_placeholder(tmp_path, rig_emulated):
    till = command_till(tmp_path, rig_emulated, "x", sell="echo {colour}")
    with pytest.raises(ContractError, match="unknown placeholder 'colour'"):
        till.sell(BASKET)


def _operator(tmp_path, rig, answers: str):
    r_in, w_in = os.pipe()
    r_out, w_out = os.pipe()
    os.write(w_in, answers.encode())
    op = ConsoleOperator(os.fdopen(r_in, encoding="utf-8"), os.fdopen(w_out, "w", encoding="utf-8"))
    spec = DeviceSpec(name="till", kind="till", mode="real", driver="operator", transport="operator",
                      address=None, node="till", options={"answer_timeout": 2})
    ctx = DeviceContext(rig=rig, evidence=Evidence(tmp_path / "ev"), timing=rig.timing,
                        extra={"operator": op})
    screen = os.fdopen(r_out, encoding="utf-8")
    return OperatorTill(spec, ctx), op, screen, w_in


def test_operator_till_prompts_and_records_the_answer(tmp_path, rig_emulated):
    till, op, screen, w_in = _operator(tmp_path, rig_emulated, "x\np\ny\n")
    with till:
        out = till.sell(BASKET, "card")
    op.close()
    os.close(w_in)
    shown = screen.read()
    assert "Milk 1l" in shown and "TOTAL 4.88" in shown and "please type one of" in shown
    assert out.status == "paid" and out.receipt == "printed" and out.amount_cents == TOTAL
    assert json.loads((tmp_path / "ev" / "till-operator.json").read_text())["sales"][0]["status"] == "paid"


def test_operator_silence_is_unknown(tmp_path, rig_emulated):
    till, op, screen, w_in = _operator(tmp_path, rig_emulated, "")
    till.options["answer_timeout"] = 0.2
    with till:
        out = till.sell(BASKET)
    assert out.status == "unknown" and out.receipt == "none" and "no answer" in out.message
    op.close()
    os.close(w_in)


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


_ = threading

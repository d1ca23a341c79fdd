"""The command and operator till drivers, where no process is started: a bad command template, and a person at
the bench answering on a console (pipes)."""

from __future__ import annotations

import json
import os
import sys

import pytest

from harness.core.device import DeviceContext
from harness.core.evidence import Evidence
from harness.core.rig import DeviceSpec
from harness.till.command import CommandTill
from harness.till.operator import ConsoleOperator, OperatorTill
from harness.till.outcome import ContractError
from tests.support import ROOT
from tests.support.till_peers import BASKET, TOTAL

VENDOR = ROOT / "tests" / "support" / "vendor_cli.py"


def command_till(tmp_path, rig, url: str, **options) -> CommandTill:
    spec = DeviceSpec(name="till", kind="till", mode="real", driver="command", transport="command",
                      address=f"{sys.executable} {VENDOR} {url}", node="till", options=options)
    ctx = DeviceContext(rig=rig, evidence=Evidence(tmp_path / "ev"), timing=rig.timing)
    return CommandTill(spec, ctx)


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


def test_operator_answers_through_fifos(tmp_path, rig_emulated):
    """A remote console: posrig prompts on one FIFO and reads the person's letter from another; the outcome
    says it came from a person."""
    import threading

    to_person, from_person = tmp_path / "prompt.fifo", tmp_path / "answer.fifo"
    os.mkfifo(to_person)
    os.mkfifo(from_person)
    shown: list[str] = []

    def person():
        with open(from_person, "w") as answer, open(to_person) as screen:
            for line in screen:
                shown.append(line)
                if "type one letter" in line:
                    answer.write("d\n")
                    answer.flush()
                if "Did a sale receipt" in line:
                    answer.write("n\n")
                    answer.flush()

    t = threading.Thread(target=person, daemon=True)
    t.start()
    spec = DeviceSpec(name="till", kind="till", mode="real", driver="operator", transport="operator", address=None,
                      node="till", options={"answer_timeout": 5, "input": str(from_person),
                                            "output": str(to_person)})
    till = OperatorTill(spec, DeviceContext(rig=rig_emulated, evidence=Evidence(tmp_path / "ev"),
                                            timing=rig_emulated.timing))
    with till:
        out = till.sell(BASKET, "card")
    t.join(5)
    text = "".join(shown)
    assert "Milk 1l" in text and "TOTAL 4.88" in text and "payment by CARD" in text
    assert out.status == "declined" and out.receipt == "none" and out.extra["source"] == "operator"

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
from harness.till.operator import ConsoleOperator, OperatorTill, close_consoles
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
    close_consoles()                         # kept for the run; closing it ends the person's reading loop
    t.join(5)
    text = "".join(shown)
    assert "Milk 1l" in text and "TOTAL 4.88" in text and "payment by CARD" in text
    assert out.status == "declined" and out.receipt == "none" and out.extra["source"] == "operator"


def _fifo_till(tmp_path, rig, **options):
    spec = DeviceSpec(name="till", kind="till", mode="real", driver="operator", transport="operator", address=None,
                      node="till", options={"answer_timeout": 5, "input": str(tmp_path / "answers"),
                                            "output": str(tmp_path / "prompts"), **options})
    return OperatorTill(spec, DeviceContext(rig=rig, evidence=Evidence(tmp_path / "ev"), timing=rig.timing))


def _read_until(fd: int, word: str, timeout: float = 5.0) -> str:
    import select
    import time

    got, deadline = b"", time.monotonic() + timeout
    while word.encode() not in got and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            got += os.read(fd, 4096)
    assert word.encode() in got, got
    return got.decode()


def test_operator_fifos_made_by_posrig_either_open_order_kept_and_reconnect(tmp_path, rig_emulated):
    """posrig makes the FIFOs; a console opening the answer side first (the order that used to deadlock) works;
    the console may go away and come back; the second scenario's till reuses the same console."""
    import stat
    import threading

    first = _fifo_till(tmp_path, rig_emulated)
    first.start()                                        # nobody is connected yet: must not block
    try:
        for name in ("answers", "prompts"):
            assert stat.S_ISFIFO(os.stat(tmp_path / name).st_mode)
        answers = os.open(tmp_path / "answers", os.O_WRONLY)          # answer side first
        prompts = os.open(tmp_path / "prompts", os.O_RDONLY)
        first.next_card = "decline"
        result = {}
        seller = threading.Thread(target=lambda: result.update(out=first.sell(BASKET, "card")))
        seller.start()
        shown = _read_until(prompts, "[p=paid")
        assert "present the DECLINE test card" in shown and "400000******0002" in shown
        os.close(answers)                                # the console goes away mid-question ...
        answers = os.open(tmp_path / "answers", os.O_WRONLY)           # ... and comes back
        os.write(answers, b"d\n")
        _read_until(prompts, "Did a sale receipt")
        os.write(answers, b"n\n")
        seller.join(5)
        assert result["out"].status == "declined"
        first.close()
        second = _fifo_till(tmp_path, rig_emulated)
        second.start()
        assert second.operator is first_operator(first, second)
        os.close(answers)
        os.close(prompts)
    finally:
        close_consoles()


def first_operator(first, second):
    """The console the second till got: the same object the module keeps for the run."""
    from harness.till.operator import _consoles

    assert len(_consoles) == 1
    return next(iter(_consoles.values()))

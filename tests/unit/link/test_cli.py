"""`posrig link` arguments and fault text, checked before anything is started."""

from __future__ import annotations

from harness.cli import main
from tests.support.link_peers import BENCH_RIG


def test_posrig_link_command_rejects_bad_faults(tmp_path, capsys):
    rig = tmp_path / "bench.yaml"
    rig.write_text(BENCH_RIG)
    assert main(["link", "--rig", str(rig), "till-terminal", "drop 0210 till->nowhere x"]) == 2
    assert "unexpected word 'x'" in capsys.readouterr().err
    assert main(["link", "--rig", str(rig), "nolink", "drop 0210"]) == 2
    assert main(["link", "--rig", str(rig), "till-terminal", "hold zvt:06 01"]) == 2
    assert "needs ms" in capsys.readouterr().err


def test_posrig_link_lists_actions(capsys):
    assert main(["link", "--actions"]) == 0
    out = capsys.readouterr().out
    assert "hold" in out and "ms=" in out and "flap" in out

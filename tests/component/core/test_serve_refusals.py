"""Every `serve` command refuses an address it cannot use: one line on stderr, a failed line (or none) for its
supervisor, a non-zero exit; never a ready line."""

from __future__ import annotations

import json
import subprocess

import pytest

from harness.core.process import posrig_command

POSRIG = posrig_command()


@pytest.mark.parametrize("command,named", [
    (["terminal", "serve", "--host", "nonsense", "--ecr", "127.0.0.1:0"], "--host 'nonsense:5000': cannot resolve"),
    (["terminal", "serve", "--host", "127.0.0.1:5000", "--ecr", "nonsense:0"], "cannot listen on nonsense:0"),
    (["host", "serve", "--listen", "nonsense:0"], "cannot listen on nonsense:0"),
    (["host", "serve", "--listen", "nonsense"], "--listen 'nonsense'"),
    (["printer", "serve", "--tcp", "nonsense:0"], "cannot listen"),
    (["printer", "serve", "--tcp", "nonsense"], "address 'nonsense'"),
    (["printer", "serve", "--tcp", "127.0.0.1:0", "--control", "nonsense:0"], "cannot listen"),
    (["till", "serve", "--ecr", "127.0.0.1:1", "--printer", "127.0.0.1:1", "--control", "nonsense:0"],
     "cannot listen on --control nonsense:0"),
], ids=["terminal-host", "terminal-ecr", "host-name", "host-form", "printer-tcp", "printer-form",
        "printer-control", "till-control"])
def test_serve_on_a_bad_address_says_so_in_one_line_and_exits(tmp_path, command, named):
    files = {"terminal": ["--journal", str(tmp_path / "t.sqlite")], "host": ["--ledger", str(tmp_path / "l.sqlite")],
             "till": ["--journal", str(tmp_path / "till.sqlite")], "printer": []}[command[0]]
    out = subprocess.run([*POSRIG, *command, *files], capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert out.returncode != 0, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], out.stderr
    assert "(port in use? try port 0)" not in lines[0]               # a name error is not a busy port
    events = [json.loads(line)["event"] for line in out.stdout.splitlines()]
    assert "ready" not in events and events in ([], ["failed"])

"""`posrig run` as a person watches it: one log line per scenario when the output is not a terminal, one line
rewritten in place on a terminal (a pty, under xdist), no pytest dots, and the report's title names the rig and
the verdict."""

import html
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import time

import pytest

from tests.support import ROOT

pytestmark = [pytest.mark.acceptance, pytest.mark.needs_netns]
TWO = ["terminal-host/0210-slow/approve", "printer/paper-out-during/approve"]
FIGURES = r"\(fail 0, \d+\.\d/min, ETA \d+:\d\d\)"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)")


def _posrig_run(report, *extra) -> list[str]:
    return [sys.executable, "-m", "harness.cli", "run", "--report", str(report), "-k", " or ".join(TWO), *extra]


def test_not_on_a_terminal_each_scenario_is_one_log_line_and_the_title_names_rig_and_verdict(tmp_path):
    report = tmp_path / "report"
    run = subprocess.run(_posrig_run(report), cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=600)
    out = run.stdout
    assert run.returncode == 0, out[-3000:] + run.stderr[-2000:]
    lines = [line for line in out.splitlines() if line.startswith("[")]
    assert len(lines) == 2, out[-3000:]
    for n, line in enumerate(lines, 1):
        m = re.fullmatch(rf"\[{n}/2\] OK    (\S+)  \d+\.\d s  {FIGURES}", line)
        assert m and m.group(1) in TWO, line
    assert {re.split(r"\s+", line)[2] for line in lines} == set(TWO)
    assert lines[-1].endswith("ETA 0:00)")
    assert "\r" not in out and not re.search(r"^[.sFE]+\s*(\[\s*\d+%\])?$", out, re.M), out[-3000:]   # no dots
    assert "posrig acceptance: OK 2" in out and re.search(r"^2 passed", out, re.M), out[-3000:]

    page = (report / "report.html").read_text()
    title = "posrig acceptance: emulated rig: PASSED 2/2"
    assert f"<title id=\"head-title\">{html.escape(title)}</title>" in page
    assert f"<h1 id=\"title\">{html.escape(title)}</h1>" in page
    assert json.loads((report / "acceptance.json").read_text())["summary"]["passed"] is True


def _run_in_pty(argv: list[str], cwd, columns: int = 200, timeout: float = 600) -> tuple[int, str]:
    """Run `argv` with a pty as its stdout and stderr (a terminal `columns` wide); everything it wrote, raw."""
    import fcntl
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen(argv, cwd=cwd, env={**env, "PYTHONPATH": str(ROOT), "TERM": "xterm"},
                            stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:                       # EIO: every writer closed the pty
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        return proc.wait(timeout=30), b"".join(chunks).decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def test_on_a_terminal_one_line_is_rewritten_in_place_also_under_xdist(tmp_path):
    rc, raw = _run_in_pty(_posrig_run(tmp_path / "report", "-n", "2"), cwd=tmp_path)
    out = ANSI.sub("", raw)
    assert rc == 0, out[-3000:]
    live = [part.split("\n")[0].rstrip() for part in out.replace("\r\n", "\n").split("\r")[1:]]  # each \r's
    live = [text for text in live if text.startswith("posrig: ")]
    assert any(text.startswith("posrig: 0/2 scenarios, fail 0, ?/min, ETA ?") for text in live), live
    assert any(re.match(r"posrig: 1/2 scenarios, fail 0, \d+\.\d/min, ETA \d+:\d\d \| last: OK ", t)
               for t in live), live
    finals = [text for text in live if text.startswith("posrig: 2/2")]
    assert finals, live
    final = finals[-1]
    assert re.fullmatch(rf"posrig: 2/2 scenarios, fail 0, \d+\.\d/min, ETA 0:00 \| last: OK ({'|'.join(TWO)})",
                        final), final
    assert not re.search(r"^\[\d/2\]", out, re.M), out[-3000:]                  # no log lines on a terminal
    assert not re.search(r"^[.sFE]+\s*$", out, re.M), out[-3000:]               # and no pytest dots
    assert "posrig acceptance: OK 2" in out, out[-3000:]

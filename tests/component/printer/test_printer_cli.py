"""`posrig printer serve|fault|status|tap` and `posrig receipt render`, run as real processes (a repeated call of a
one-shot command goes through `harness.cli.main` in this process: ~0.3 s less each).

Long-running ones (`serve`, `tap`) are supervised with `harness.core.process.Child` and say they are ready with
the one readiness line, `{"event": "ready", "pid": ..., ...}`.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from escpos.printer import Network, Serial, Usb

from harness.core.process import Child, ChildFailed, posrig_command
from harness.printer.pyusb_usbip import get_backend

POSRIG = posrig_command()


def run(*args: str, timeout: float = 30, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*POSRIG, *args], capture_output=True, text=True, timeout=timeout, env=env)


def in_process(capsys: pytest.CaptureFixture, *args: str) -> subprocess.CompletedProcess:
    """The same command through `harness.cli.main` in this process, its output as `run` gives it."""
    from harness.cli import main

    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["posrig", *args], code, out, err)


def supervised(tmp_path: Path, name: str, *args: str) -> Child:
    return Child(name, [*POSRIG, *args], log=tmp_path / f"{name}.log")


@pytest.fixture
def served(tmp_path):
    """`posrig printer serve` on every transport, its ready line; stopped (and checked to exit 0) afterwards."""
    journal = tmp_path / "journal"
    child = supervised(tmp_path, "printer-serve", "printer", "serve", "--tcp", "127.0.0.1:0", "--serial",
                       "--usbip", "127.0.0.1:0", "--journal", str(journal), "--profile", "gb18030-clone")
    ready = child.start(timeout=30)
    try:
        yield ready, journal
    finally:
        code = child.stop(timeout=10)
    assert code == 0, child.log.read_text()


def test_serve_announces_ready_and_journals_receipts(served):
    ready, journal = served
    assert ready["event"] == "ready" and isinstance(ready["pid"], int)
    assert set(ready) >= {"profile", "tcp", "serial", "usb", "usbip", "control", "journal"}
    assert ready["profile"] == "gb18030-clone" and ready["journal"] == str(journal.resolve())
    host, port = ready["tcp"].split(":")
    p = Network(host, int(port), timeout=5)
    p.open()
    p.text("网络 1.00\n")
    p.cut()
    p.close()
    _wait_for_files(journal, 4)          # one printer, three interfaces: let each receipt finish first
    s = Serial(devfile=ready["serial"], timeout=0.3)
    s.open()
    s.text("串口 2.00\n")
    s.cut()
    s.close()
    _wait_for_files(journal, 8)
    h, up = ready["usbip"].split(":")
    u = Usb(0x0416, 0x5011, usb_args={"backend": get_backend(h, int(up))})
    u.text("USB 3.00\n")
    u.cut()
    u.close()
    files = _wait_for_files(journal, 12)
    texts = sorted((journal / f"receipt-000{i}.txt").read_text() for i in (1, 2, 3))
    assert [t.splitlines()[0] for t in texts] == ["USB 3.00", "串口 2.00", "网络 1.00"]
    assert {f.suffix for f in files} == {".json", ".txt", ".png", ".bin"}


def _wait_for_files(folder: Path, count: int, timeout: float = 10) -> list[Path]:
    deadline = time.monotonic() + timeout
    files: list[Path] = []
    while time.monotonic() < deadline:
        files = sorted(folder.glob("receipt-*")) if folder.exists() else []
        if len(files) >= count:
            return files
        time.sleep(0.05)
    raise AssertionError(f"journal {folder} has {len(files)} files, expected {count}")


def test_fault_control_and_status_reader(served, capsys):
    ready, _ = served
    out = run("printer", "fault", "--control", ready["control"], "paper_out")
    assert out.returncode == 0 and json.loads(out.stdout)["status"]["faults"] == ["paper_out"]
    st = run("printer", "status", "--tcp", ready["tcp"], "--timeout", "2")
    assert st.returncode == 0, st.stderr
    assert json.loads(st.stdout)["paper"] == "end"
    st = in_process(capsys, "printer", "status", "--usb", ready["usb"], "--usbip", ready["usbip"])
    assert json.loads(st.stdout)["online"] is False
    bad = in_process(capsys, "printer", "fault", "--control", ready["control"], "on_fire")
    assert bad.returncode == 2 and "known faults" in bad.stdout
    assert in_process(capsys, "printer", "fault", "--control", ready["control"], "none").returncode == 0
    assert json.loads(in_process(capsys, "printer", "status", "--serial", ready["serial"]).stdout)["online"] is True


def test_serve_on_a_busy_port_announces_why_it_failed(tmp_path, served):
    ready, _ = served
    busy = supervised(tmp_path, "printer-busy", "printer", "serve", "--tcp", ready["tcp"])
    with pytest.raises(ChildFailed, match="cannot listen"):
        busy.start(timeout=30)
    assert not busy.alive


def test_tap_announces_ready_and_passes_a_receipt_through(tmp_path, served):
    ready, _ = served
    tap = supervised(tmp_path, "printer-tap", "printer", "tap", "--listen", "127.0.0.1:0", "--to-tcp",
                     ready["tcp"], "--journal", str(tmp_path / "tapped"))
    tapped = tap.start(timeout=30)
    try:
        assert tapped["event"] == "ready" and tapped["printer"] == f"tcp {ready['tcp']}"
        host, port = tapped["tap"].split(":")
        p = Network(host, int(port), timeout=5)
        p.open()
        assert p.is_online()                                     # answered by the printer behind the tap
        p.text("tapped 5.00\n")
        p.cut()
        p.close()
        (txt,) = [f for f in _wait_for_files(tmp_path / "tapped", 4) if f.suffix == ".txt"]
        assert txt.read_text().splitlines()[0] == "tapped 5.00"
    finally:
        assert tap.stop(timeout=10) == 0, tap.log.read_text()


def test_receipt_render_formats(tmp_path, capsys):
    raw = tmp_path / "r.bin"
    raw.write_bytes(b"\x1b@\x1ba\x01\x1bE\x01SHOP\n\x1bE\x00\x1ba\x00Tea  2.50\n"
                    b"\x1d(k\x04\x001A2\x00\x1d(k\x08\x001P0abcde\x1d(k\x03\x001Q0\x1dV\x00")
    text = run("receipt", "render", str(raw), "--format", "text")
    assert text.returncode == 0 and "SHOP" in text.stdout and "[QR abcde]" in text.stdout
    html = in_process(capsys, "receipt", "render", str(raw), "--format", "html")
    assert '<span class="b">SHOP</span>' in html.stdout and "data:image/png;base64," in html.stdout
    png = tmp_path / "r.png"
    assert in_process(capsys, "receipt", "render", str(raw), "--format", "png", "-o", str(png)).returncode == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    missing = in_process(capsys, "receipt", "render", str(tmp_path / "nope.bin"))
    assert missing.returncode == 1 and "nope.bin" in missing.stderr


def test_render_names_the_missing_cjk_font(tmp_path):
    raw = tmp_path / "cn.bin"
    raw.write_bytes(b"\x1c&" + "收据".encode("gb18030") + b"\n\x1dV\x00")
    env = {**os.environ, "POSRIG_CJK_FONT": str(tmp_path / "absent.ttc")}
    out = run("receipt", "render", str(raw), "--format", "png", "-o", str(tmp_path / "x.png"), env=env)
    assert out.returncode == 1 and "apt-get install fonts-wqy-zenhei" in out.stderr


def test_render_of_any_code_page_or_garbage_never_shows_a_traceback(tmp_path):
    raw = tmp_path / "farsi.bin"
    raw.write_bytes(b"\x1b@\x1bt\x29Hi \xe0\n\x1dV\x00")                      # ESC t 41: cp1098, no Python codec
    out = run("receipt", "render", str(raw))
    assert out.returncode == 0 and out.stdout.startswith("Hi \ufffd\n"), out.stderr
    assert "cp1098 has no code table" in out.stderr and "Traceback" not in out.stderr
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(bytes(range(256)) * 4 + b"\x1dV\x00" + b"\x1d(k\xff")
    for fmt in ("text", "html"):
        out = run("receipt", "render", str(garbage), "--format", fmt)
        assert "Traceback" not in out.stderr and len(out.stderr.splitlines()) <= 2, out.stderr

"""The acceptance report as a person sees it: `posrig run` writes it, headless Chromium renders it, the receipt
images and the stage x fault grid are on the page, and a screenshot is kept as evidence."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.acceptance, pytest.mark.needs_netns]
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("headless Chromium is not installed (./bootstrap installs Debian's chromium)")


def test_posrig_run_report_renders_receipts_in_chromium(tmp_path, evidence, rig):
    browser = _chromium()
    report = tmp_path / "report"
    run = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--rig", str(rig.path), "--report",
                          str(report), "-k", "terminal-host/0210-slow/approve or printer/paper-out-during/approve"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    doc = json.loads((report / "acceptance.json").read_text())
    assert doc["summary"]["scenarios"] == 2 and doc["summary"]["passed"] is True
    assert all(s["receipts"] and s["receipts"][0]["png"] for s in doc["scenarios"])
    assert (report / "junit.xml").is_file()

    page = (report / "report.html").resolve().as_uri()
    profile = tmp_path / "chromium-profile"
    dom = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000",
                          "--dump-dom", page], capture_output=True, text=True, timeout=120).stdout
    assert "Stage x fault" in dom                                      # the summary grid
    assert dom.count("class=\"posrig-receipt\"") >= 2 or dom.count("posrig-receipt") >= 2, dom[:2000]
    assert "data:image/png;base64," in dom                             # receipt images, inline
    shot = evidence.file("report-screenshot.png", "the acceptance report in headless Chromium")
    subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1400,2200",
                    "--virtual-time-budget=5000", f"--screenshot={shot}", page], capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 10_000

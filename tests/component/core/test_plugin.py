"""The pytest plugin as a user meets it: options, rig errors, evidence paths, report metadata."""

import xml.etree.ElementTree as ET

import pytest

from tests.support import IN_PROCESS, ROOT

RIG = ROOT / "rigs" / "emulated.yaml"

USES_RIG = """
def test_uses_rig(rig):
    assert rig.name == "emulated"

def test_fails_with_evidence(evidence):
    evidence.write_text("note.txt", "card 4111111111111111")
    assert False, "deliberate"
"""


def test_rig_option_and_evidence_path_on_failure(pytester: pytest.Pytester):
    pytester.makepyfile(USES_RIG)
    ev = pytester.path / "ev"
    result = pytester.runpytest_inprocess(*IN_PROCESS, f"--rig={RIG}", f"--evidence-dir={ev}")
    result.assert_outcomes(passed=1, failed=1)
    folder = ev / "test_rig_option_and_evidence_path_on_failure.py_test_fails_with_evidence"
    result.stdout.fnmatch_lines(["*posrig evidence*", f"*evidence for this test: {folder}*"])
    assert (folder / "note.txt").read_text() == "card 411111******1111"


def test_bad_rig_fails_tests_naming_the_key(pytester: pytest.Pytester):
    bad = pytester.path / "bad.yaml"
    bad.write_text(RIG.read_text().replace("faultable: true", "faultible: true", 1))
    pytester.makepyfile(USES_RIG)
    result = pytester.runpytest_inprocess(*IN_PROCESS, f"--rig={bad}", "-k", "uses_rig")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*posrig: bad rig: *bad.yaml: links.till-terminal.faultible: found 'faultible'*"
                                 "did you mean 'faultable'*"])


def test_env_var_selects_the_rig(pytester: pytest.Pytester, monkeypatch):
    monkeypatch.setenv("POSRIG_RIG", str(RIG))
    pytester.makepyfile(USES_RIG)
    pytester.runpytest_inprocess(*IN_PROCESS, "-k", "uses_rig").assert_outcomes(passed=1)


def test_rig_recorded_in_junit_and_html(pytester: pytest.Pytester):
    pytester.makepyfile(USES_RIG)
    junit, html = pytester.path / "junit.xml", pytester.path / "report.html"
    result = pytester.runpytest_inprocess(*IN_PROCESS, f"--rig={RIG}", "-k", "uses_rig", f"--junitxml={junit}",
                                          f"--html={html}", "--self-contained-html")
    result.assert_outcomes(passed=1)
    props = {p.get("name"): p.get("value") for p in ET.parse(junit).getroot().iter("property")}
    assert props["posrig_rig"] == "emulated"
    assert props["posrig_rig_file"] == str(RIG)
    assert len(props["posrig_rig_sha256"]) == 64
    page = html.read_text()
    assert "Rig sha256" in page and props["posrig_rig_sha256"] in page


SLEEPER = """
import time
def test_holds_the_topology(topology, tmp_path_factory):
    (tmp_path_factory.getbasetemp().parent / "label").write_text(topology.run_label)
    time.sleep(120)

def test_quick():
    pass
"""


@pytest.mark.needs_netns
def test_sigkilled_run_then_normal_run_leaves_no_namespace(pytester: pytest.Pytester):
    import os
    import signal
    import subprocess
    import sys
    import time

    from harness import topology as netns

    if not (os.geteuid() == 0 and netns.in_initial_user_ns()):
        pytest.skip("named namespaces exist only as root; unnamed ones die with the process")
    pytester.makepyfile(SLEEPER)
    base = pytester.path / "bt"
    killed = subprocess.Popen([sys.executable, "-m", "pytest", f"--rig={RIG}", "-k", "holds", "-p", "no:cacheprovider",
                               f"--basetemp={base}"], cwd=pytester.path, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    label_file = pytester.path / "label"
    while not label_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    label = label_file.read_text()
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait(5)
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert label in names                                  # SIGKILL ran no teardown...
    pytester.runpytest_inprocess(*IN_PROCESS, f"--rig={RIG}", "-k", "quick").assert_outcomes(passed=1)
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert label not in names                              # ...the next normal run reaped it

"""`posrig run` checks the machine and the rig before pytest starts (the checks of `posrig doctor`): each problem
is one line naming the file, the key, what was found and what to do; exit 2, nothing built, no report."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.core.doctor import Options, preflight
from harness.core.rig import load_rig
from harness.topology import probe
from tests.support import RIGS, ROOT


def _run(tmp_path, *args, env=None, wrap=()):
    p = subprocess.run([*wrap, sys.executable, "-m", "harness.cli", "run", "-k", "0210-lost",
                        "--report", str(tmp_path / "report"), *args], capture_output=True, text=True, cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, timeout=120)
    assert not (tmp_path / "report").exists(), "the preflight failed, yet the run began"
    return p


def _rig(tmp_path, old, new):
    rig = tmp_path / "rig.yaml"
    rig.write_text((RIGS / "emulated.yaml").read_text().replace(old, new))
    return rig


def test_unknown_till_driver_is_one_line(tmp_path):
    rig = _rig(tmp_path, "driver: reference ", "driver: refrence ")
    p = _run(tmp_path, "--rig", str(rig))
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.splitlines() == [
        f"posrig run: {rig}: devices.till.driver: found 'refrence': no till driver named 'refrence'; registered "
        "till drivers: command, http, operator, reference. Fix the rig's 'driver'/'mode', or install the package "
        "that provides it."]


def test_unknown_till_profile_is_one_line(tmp_path):
    p = _run(tmp_path, "--till-profile", "print-on-timout")
    assert p.returncode == 2
    [line] = p.stderr.splitlines()
    assert line.startswith("posrig run: --till-profile: unknown till profile 'print-on-timout'; known: correct, ")


def test_a_bad_rig_is_one_line(tmp_path):
    rig = _rig(tmp_path, "  profile: tm-t88", "  profil: tm-t88")
    p = _run(tmp_path, "--rig", str(rig))
    assert p.returncode == 2
    [line] = p.stderr.splitlines()
    assert f"{rig}: devices.printer.profil: found 'profil'" in line and "did you mean 'profile'" in line


def test_missing_iptables_is_one_line(tmp_path):
    """A PATH with every tool of this machine but iptables."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for folder in ("/usr/sbin", "/sbin"):
        for tool in Path(folder).iterdir() if Path(folder).is_dir() else ():
            if not tool.name.startswith(("iptables", "ip6tables")) and not (bin_dir / tool.name).exists():
                (bin_dir / tool.name).symlink_to(tool)
    p = _run(tmp_path, env={"PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin"})
    assert p.returncode == 2
    [line] = p.stderr.splitlines()
    assert line.endswith("emulated.yaml: links.till-terminal.faultable: true, but iptables is missing here: "
                         "apt-get install iptables"), line


@pytest.mark.skipif(not shutil.which("capsh"), reason="capsh drops capabilities for this test")
def test_without_namespace_privileges_nothing_runs_and_it_says_why(tmp_path):
    """As a user without CAP_NET_ADMIN and no user namespace, every scenario would be skipped: refused."""
    p = _run(tmp_path, wrap=("capsh", "--drop=cap_net_admin,cap_sys_admin", "--", "-c", 'exec "$@"', "capsh"))
    assert p.returncode == 2
    [line] = p.stderr.splitlines()
    assert "emulated.yaml: network.mode: needs CAP_NET_ADMIN and CAP_SYS_ADMIN" in line and "unshare -Urn" in line


def test_doctor_and_run_share_the_checks():
    rig = load_rig(RIGS / "emulated.yaml")
    if probe()[0]:
        assert preflight(rig, Options(till_profile="trust-abort")) == []
    [line] = preflight(rig, Options(till_profile="nope"))
    assert line.startswith("--till-profile: unknown till profile 'nope'")
    p = subprocess.run([sys.executable, "-m", "harness.cli", "doctor", "--till-profile", "nope"], cwd=ROOT,
                       capture_output=True, text=True)
    assert p.returncode == 1 and "unknown till profile 'nope'" in p.stdout

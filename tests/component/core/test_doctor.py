"""`posrig doctor`: names what a rig needs and what is missing; exit 0 only when ready."""

import json
import subprocess
import sys

from harness.core.doctor import diagnose
from harness.core.rig import load_rig
from harness.topology import probe
from tests.support import ROOT


def _doctor(*args):
    return subprocess.run([sys.executable, "-m", "harness.cli", "doctor", *args], capture_output=True, text=True,
                          cwd=ROOT)


def test_emulated_rig_needs_namespaces_and_nfqueue():
    checks = {c.name: c for c in diagnose(load_rig(ROOT / "rigs" / "emulated.yaml"))}
    assert {"privileges", "network namespaces", "iptables NFQUEUE"} <= set(checks)
    assert checks["network namespaces"].ok == probe()[0]


def test_misspelled_key_fails_naming_it(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "rigs" / "emulated.yaml").read_text().replace("profile: tm-t88", "profil: tm-t88"))
    p = _doctor("--rig", str(bad))
    assert p.returncode == 1
    assert f"{bad}: devices.printer.profil: found 'profil'" in p.stderr
    assert "did you mean 'profile'" in p.stderr


def test_missing_bench_hardware_is_reported_and_fails(tmp_path):
    rig = tmp_path / "bench.yaml"
    rig.write_text((ROOT / "rigs" / "bench-example.yaml").read_text()
                   .replace("transport: tcp\n    address: 192.0.2.20:20007",
                            "transport: serial\n    address: /dev/ttyPOSRIG-absent")
                   .replace("transport: tcp              # or", "transport: usb              # or")
                   .replace("address: 192.0.2.130:9100", 'address: "04b8:0202"'))
    p = _doctor("--rig", str(rig), "--json")
    assert p.returncode == 1
    report = json.loads(p.stdout)
    failed = {c["name"]: c["detail"] for c in report["checks"] if not c["ok"]}
    assert "does not exist" in failed["terminal terminal (serial /dev/ttyPOSRIG-absent)"]
    assert "no interface eth3" in failed["interface eth3 (link terminal-host)"]
    assert "a tap forwards to a TCP or serial printer" in failed["printer tap 192.0.2.65:9100"]
    assert any(name.startswith("printer printer (usb 04b8:0202)") for name in failed)


def test_emulated_rig_is_ready_here():
    if not probe()[0]:
        import pytest

        pytest.skip(f"namespaces unavailable: {probe()[1]}")
    p = _doctor("--rig", "rigs/emulated.yaml")
    assert p.returncode == 0, p.stdout
    assert p.stdout.rstrip().endswith("ready") and "MISSING" not in p.stdout

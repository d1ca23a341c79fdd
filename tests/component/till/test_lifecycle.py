"""Third-party tills under posrig's lifecycle, on loopback peers: the example vendor till (examples/vendor_till)
launched over HTTP and as a command-driver helper, told where its devices are, aborted mid-sale, killed and
restarted; and the command driver never letting a basket reach a shell."""

from __future__ import annotations

import json
import sys
import time
from types import SimpleNamespace

import pytest

from harness.acceptance.scenario import sell_then_abort
from harness.core.device import DeviceContext
from harness.core.evidence import Evidence
from harness.core.rig import DeviceSpec
from harness.till.command import CommandTill
from harness.till.http import HttpTill, TillUnreachable
from harness.till.outcome import ContractError
from tests.support import ROOT
from tests.support.till_peers import BASKET, TOTAL, MiniPrinter, ScriptedTerminal

ACME = ROOT / "examples" / "vendor_till" / "till.py"
RECORDER = """import json, sys
open(sys.argv[1], "w").write(json.dumps(sys.argv[2:]))
print(json.dumps({"sale_id": "S1", "status": "failed", "tender": "card", "amount_cents": 1}))
"""


@pytest.fixture
def peers():
    terminal, printer = ScriptedTerminal("approve"), MiniPrinter()
    yield terminal, printer
    terminal.close()
    printer.close()


def _till(cls, tmp_path, rig, peers, driver: str, address=None, **options):
    terminal, printer = peers
    spec = DeviceSpec(name="till", kind="till", mode="real", driver=driver, transport=driver, address=address,
                      node="till", options=options)
    ctx = DeviceContext(rig=rig, evidence=Evidence(tmp_path / "ev"), timing=rig.timing)
    return cls(spec, ctx, terminal=SimpleNamespace(ecr_address=terminal.address),
               printer=SimpleNamespace(address={"tcp": "{}:{}".format(*printer.address)}))


def test_a_quoted_placeholder_never_reaches_a_shell(tmp_path, rig_emulated, peers):
    """Before: `'{basket}'` put the shell-quoted basket inside quotes, so `$(touch ...)` in an item name ran."""
    marker = tmp_path / "pwned"
    basket = [{"sku": "x", "name": f"$(touch {marker})", "price": "1.00"}]
    till = _till(CommandTill, tmp_path, rig_emulated, peers, "command",
                 sell=f"{sys.executable} -c 'import sys' --basket '{{basket}}'")
    with pytest.raises(ContractError, match="inside quotes"):
        till.start()
        till.sell(basket)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["'; touch {m}; '", "$(touch {m})", "`touch {m}`"])
def test_a_bare_placeholder_is_one_argument(tmp_path, rig_emulated, peers, name):
    marker, seen, script = tmp_path / "pwned", tmp_path / "argv.json", tmp_path / "vendor.py"
    script.write_text(RECORDER)
    basket = [{"sku": "x", "name": name.format(m=marker), "price": "1.00"}]
    till = _till(CommandTill, tmp_path, rig_emulated, peers, "command",
                 sell=f"{sys.executable} {script} {seen} --basket {{basket}} --tender={{tender}} {{terminal}}")
    with till:
        till.sell(basket)
    argv = json.loads(seen.read_text())
    assert json.loads(argv[1]) == basket and argv[2] == "--tender=card"
    assert argv[3] == "{}:{}".format(*peers[0].address)                  # the endpoint, as a placeholder
    assert not marker.exists()


def test_launched_http_till_finds_its_devices_and_survives_a_power_cut(tmp_path, rig_emulated, peers):
    till = _till(HttpTill, tmp_path, rig_emulated, peers, "http", launch=f"{{python}} {ACME} --http 127.0.0.1:0")
    with till:
        assert till.capabilities() == {"abort", "recover", "journal", "lifecycle"}
        out = till.sell(BASKET)
        assert out.status == "paid" and out.receipt == "printed" and out.amount_cents == TOTAL
        assert "SUMME EUR" in peers[1].text and "411111" in peers[1].text
        pid = till.launcher.proc.pid
        till.kill()
        with pytest.raises(TillUnreachable):
            till.journal()
        till.restart()
        assert till.launcher.proc.pid != pid
        assert [s["sale_id"] for s in till.journal()] == [out.sale_id]          # its journal survived
    events = [e["event"] for e in json.loads((tmp_path / "ev" / "till-lifecycle.json").read_text())]
    assert events == ["launch", "killed", "launch", "stopped"]
    assert till.launcher.proc is None and '"event": "ready"' in (tmp_path / "ev" / "till-stdout.log").read_text()


def test_command_helper_sells_aborts_and_recovers(tmp_path, rig_emulated, peers):
    terminal = peers[0]
    terminal.behaviour, terminal.delay = "slow-approve", 1.0
    till = _till(CommandTill, tmp_path, rig_emulated, peers, "command", serve=f"{{python}} {ACME} --stdio")
    with till:
        assert {"abort", "recover", "lifecycle"} <= till.capabilities()
        out = sell_then_abort(till, BASKET, pause=0.1, timeout=15)
        assert out.status == "cancelled" and out.receipt == "none", out
        assert terminal.charged == [] and "SUMME" not in peers[1].text
        assert till.recover() == []
        terminal.behaviour = "approve"
        t0 = time.monotonic()
        for _ in range(5):
            assert till.sell(BASKET).status == "paid"
        per_sale = (time.monotonic() - t0) / 5
        assert len(till.journal()) == 6
    runs = json.loads((tmp_path / "ev" / "till-commands.json").read_text())
    assert all(r["helper"] for r in runs) and per_sale < 5            # one process for every action


def test_a_till_that_never_says_ready_is_stopped_with_its_output(tmp_path, rig_emulated, peers):
    till = _till(HttpTill, tmp_path, rig_emulated, peers, "http",
                 launch="{python} -c 'print(\"booting\", flush=True); import time; time.sleep(60)'",
                 ready_timeout=1)
    t0 = time.monotonic()
    with pytest.raises(Exception, match="not ready within 1s.*booting"):
        till.start()
    assert time.monotonic() - t0 < 10 and till.launcher.proc is None


def test_cut_now_kills_the_till_at_once_and_kill_reaps_it(tmp_path):
    """The crash points' power cut: SIGKILL from any thread without waiting (the till cannot run one more line),
    then `kill()` reaps it; a till whose power is cut by a command must be killed the slow way."""
    from harness.till.lifecycle import Launcher

    script = tmp_path / "till.py"
    script.write_text("import json, time\nprint(json.dumps({'event': 'ready'}), flush=True)\ntime.sleep(60)\n")
    launcher = Launcher("till", {"launch": f"{sys.executable} {script}"}, {}, evidence=Evidence(tmp_path / "ev"))
    launcher.start()
    proc = launcher.proc
    assert launcher.cut_now()
    assert proc.wait(timeout=5) == -9
    launcher.kill()
    assert [h["event"] for h in launcher.history] == ["launch", "killed"] and launcher.proc is None
    by_plug = Launcher("till", {"launch": f"{sys.executable} {script}", "kill": "true"}, {})
    assert not by_plug.cut_now()                      # not started, and its power is a plug's anyway

"""`posrig host serve` and `posrig host ledger` from the command line: readiness, reports, clear errors."""

from __future__ import annotations

import json
import socket
import subprocess

import pytest

from harness.core.process import Child, ChildFailed, posrig_command
from tests.support.iso_client import Client, sale, serve_host

POSRIG = posrig_command()


def test_serve_announces_ready_in_the_one_dialect(tmp_path):
    ledger_path = tmp_path / "ledger.sqlite"
    child, address = serve_host(ledger_path, tmp_path / "serve.log", 0, "--framing", "4ascii")
    try:
        ready = child.ready
        assert ready["event"] == "ready" and ready["pid"] == child.pid
        assert (ready["ledger"], ready["spec"], ready["framing"]) == (str(ledger_path), "ascii", "4ascii")
        assert ready["listen"] == f"{address[0]}:{address[1]}" and address[1] != 0
        assert Client(address, framing="4ascii").exchange(sale(1))["39"] == "00"
    finally:
        assert child.stop() == 0  # SIGTERM: a clean stop


def test_cli_ledger_report(tmp_path):
    ledger_path, log = tmp_path / "ledger.sqlite", tmp_path / "serve.log"
    child, address = serve_host(ledger_path, log)
    try:
        c = Client(address)
        c.exchange(sale(1, amount=1234))
        c.exchange(sale(2, amount=905))
        c.close()
    finally:
        code = child.stop(timeout=10)
    assert code == 0  # SIGTERM: a clean stop
    out = subprocess.run(
        [*POSRIG, "host", "ledger", str(ledger_path), "--json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    doc = json.loads(out)
    assert [(p["stan"], p["state"]) for p in doc["payments"]] == [
        ("000001", "approved"),
        ("000002", "declined"),
    ]
    assert doc["totals"]["held"] == {"count": 1, "amount": 1234}
    text = subprocess.run(
        [*POSRIG, "host", "ledger", str(ledger_path), "--messages"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert (
        "12.34" in text
        and "declined" in text
        and "411111******1111" in text
        and "4111111111111111" not in text
    )


def test_cli_errors_are_clear(tmp_path):
    missing = subprocess.run(
        [*POSRIG, "host", "ledger", str(tmp_path / "nope.sqlite")], capture_output=True, text=True, timeout=30
    )
    assert missing.returncode == 2 and "no ledger file" in missing.stderr
    bad = tmp_path / "rules.yaml"
    bad.write_text("- behaviour: {delivery: sometimes}\n")
    p = subprocess.run(
        [
            *POSRIG,
            "host",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--ledger",
            str(tmp_path / "l.db"),
            "--rules",
            str(bad),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert p.returncode == 2 and "delivery" in p.stderr
    said = json.loads(p.stdout)
    assert said["event"] == "failed" and "delivery" in said["error"]


@pytest.mark.parametrize("listen", ["taken", "127.0.0.1", "127.0.0.1:99999"])
def test_serve_that_cannot_listen_announces_failed(tmp_path, listen):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        if listen == "taken":
            listen = f"127.0.0.1:{taken.getsockname()[1]}"
        child = Child(
            "posrig host serve",
            [*POSRIG, "host", "serve", "--listen", listen, "--ledger", str(tmp_path / "l.db")],
            log=tmp_path / "serve.log",
        )
        with pytest.raises(ChildFailed, match=f"--listen {listen!r}|cannot listen on {listen}"):
            child.start(timeout=20)
    assert "posrig host serve: " in (tmp_path / "serve.log").read_text()  # also said on stderr, for people

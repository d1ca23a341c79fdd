"""`posrig host serve` as a child process: SIGKILL amid a stream of authorizations loses nothing."""

from __future__ import annotations

import signal
import threading
import time

from harness.host.ledger import Ledger
from tests.support.iso_client import Client, sale, serve_host


def test_sigkill_mid_stream_loses_no_approved_payment(tmp_path):
    ledger_path, log = tmp_path / "ledger.sqlite", tmp_path / "serve.log"
    child, address = serve_host(ledger_path, log)
    approved: list[tuple[str, str, str]] = []  # (terminal, stan, rrn) of every 0210 approval received
    lock = threading.Lock()
    go = threading.Event()

    def terminal(n: int) -> None:
        try:
            c = Client(address, timeout=5)
        except OSError:
            return
        go.wait()
        stan = 0
        try:
            while True:
                stan += 1
                answer = c.exchange(sale(stan, amount=100 + stan, terminal=f"TERM{n:04d}"))
                if answer["39"] == "00":
                    with lock:
                        approved.append((answer["41"], answer["11"], answer["37"]))
        except (EOFError, OSError, AssertionError):
            pass  # the host died: this terminal's stream ends here
        finally:
            c.close()

    threads = [threading.Thread(target=terminal, args=(n,)) for n in range(4)]
    try:
        for t in threads:
            t.start()
        go.set()
        deadline = time.monotonic() + 30
        while len(approved) < 80 and time.monotonic() < deadline:
            time.sleep(0.005)
        child.kill()  # SIGKILL mid-stream: requests are in flight right now
        for t in threads:
            t.join(10)
    finally:
        child.stop()
    assert child.proc.returncode == -signal.SIGKILL
    assert len(approved) >= 80
    with Ledger(ledger_path) as ledger:
        for terminal_id, stan, rrn in approved:
            p = ledger.payment(stan=stan, terminal=terminal_id)
            assert p is not None, f"approved payment {terminal_id}/{stan} lost"
            assert (p.state, p.rrn) == ("approved", rrn)
        booked = len(ledger.payments())
    assert booked >= len(approved)

    # Restarted on the same ledger: it remembers answers (a repeat is not charged again) and carries on.
    child, address = serve_host(ledger_path, log)
    try:
        terminal_id, stan, rrn = approved[0]
        c = Client(address)
        n = int(terminal_id[4:])
        again = c.exchange(sale(int(stan), amount=100 + int(stan), terminal=terminal_id, mti="0201"))
        assert again["37"] == rrn
        assert c.exchange(sale(999999, terminal="TERM0099"))["39"] == "00"
        c.close()
        assert n in range(4)
    finally:
        child.stop()
    with Ledger(ledger_path) as ledger:
        assert len(ledger.payments()) == booked + 1

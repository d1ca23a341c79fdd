"""The ledger file: durable settings, state model against a reference model, nothing left running."""

from __future__ import annotations

import sqlite3
import threading

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.iso_client import Client, reversal, sale


def test_ledger_is_wal_and_commits_with_full_sync(srv):
    srv.client().exchange(sale(1))
    db = sqlite3.connect(srv.ledger_path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    sync = srv.server.bookkeeper.call(lambda books: books.db.execute("PRAGMA synchronous").fetchone()[0])
    assert sync == 2  # FULL


def test_close_leaves_no_thread_behind(make_host):
    before = set(threading.enumerate())
    srv = make_host(timing_scale=1.0)
    c = srv.client()
    c.exchange(sale(1))
    c.send(sale(2, amount=998))  # a delayed answer still pending (15 s)
    srv.close()
    left = [t for t in set(threading.enumerate()) - before if t.is_alive()]
    assert left == [], left


# A model of what the acquirer should hold: each step is a sale, a reversal of an earlier sale, a repeat of an
# earlier sale, or a reconciliation. The ledger must agree with the model after every sequence.
STEP = st.one_of(
    st.tuples(st.just("sale"), st.sampled_from([100, 250, 905, 951, 4000])),
    st.tuples(st.just("reverse"), st.integers(0, 20)),
    st.tuples(st.just("repeat"), st.integers(0, 20)),
    st.tuples(st.just("settle"), st.just(0)),
)
_terminals = iter(range(1, 10**6))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(STEP, min_size=1, max_size=12))
def test_ledger_agrees_with_a_model(srv, steps):
    terminal = f"P{next(_terminals):07d}"
    c = Client(srv.address)
    model: dict[str, dict] = {}  # stan -> {"amount", "state"}
    sales: list[str] = []
    stan = 0
    try:
        for kind, arg in steps:
            stan += 1
            if kind == "sale":
                answer = c.exchange(sale(stan, amount=arg, terminal=terminal))
                approved = answer["39"] == "00"
                assert approved == (arg not in (905, 951))
                model[f"{stan:06d}"] = {
                    "amount": arg,
                    "state": "approved" if approved else "declined",
                    "code": answer["39"],
                }
                sales.append(f"{stan:06d}")
            elif kind == "reverse" and sales:
                target = sales[arg % len(sales)]
                answer = c.exchange(
                    reversal(stan, int(target), amount=model[target]["amount"], terminal=terminal)
                )
                if model[target]["state"] == "approved":
                    model[target]["state"] = "reversed"
                expected = "12" if model[target]["state"] == "settled" else "00"
                assert answer["39"] == expected
            elif kind == "repeat" and sales:
                target = sales[arg % len(sales)]
                answer = c.exchange(
                    sale(int(target), amount=model[target]["amount"], terminal=terminal, mti="0201")
                )
                assert answer["39"] == model[target]["code"]  # the first answer, whatever happened since
            elif kind == "settle":
                answer = c.exchange({"t": "0500", "11": f"{stan:06d}", "41": terminal})
                held = [m for m in model.values() if m["state"] == "approved"]
                assert int(answer["76"]) == len(held)
                assert int(answer["88"]) == sum(m["amount"] for m in held)
                for m in held:
                    m["state"] = "settled"
    finally:
        c.close()
    booked = {p.stan: (p.amount, p.state) for p in srv.ledger.payments(terminal=terminal)}
    assert booked == {s: (m["amount"], m["state"]) for s, m in model.items()}
    held = sum(m["amount"] for m in model.values() if m["state"] in ("approved", "settled"))
    assert srv.ledger.totals(terminal=terminal)["held"]["amount"] == held

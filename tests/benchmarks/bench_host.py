"""Benchmark: authorizations per second through the emulated acquirer host with its durable ledger.

    .venv/bin/python tests/benchmarks/bench_host.py [--rounds 3] [--per-conn 50]

The host runs as `posrig host serve` (its own process, so clients and host do not share a GIL); clients are
plain pyiso8583 + 2-byte framing. Figures: one connection sequentially, and 20 concurrent connections, with
synchronous=FULL (the default: every commit fsyncs) and, as the same-process baseline, synchronous=NORMAL.
Median of the rounds; latency percentiles over every request of the median round. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

import iso8583
from iso8583.specs import default_ascii

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from harness.core.process import Child, ChildFailed, posrig_command  # noqa: E402


def start_host(ledger: Path, synchronous: str) -> tuple[Child, tuple[str, int]]:
    child = Child(
        "posrig host serve",
        [*posrig_command(), "host", "serve", "--listen", "127.0.0.1:0", "--ledger", str(ledger),
         "--synchronous", synchronous],
    )
    try:
        ready = child.start(timeout=20)
    except ChildFailed as exc:
        raise SystemExit(f"bench_host: {exc}") from None
    host, port = ready["listen"].rsplit(":", 1)
    return child, (host, int(port))


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("host closed the connection")
        buf += chunk
    return buf


def terminal(
    address: tuple[str, int], tid: int, count: int, latencies: list[float], go: threading.Event
) -> None:
    sock = socket.create_connection(address)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    go.wait()
    for stan in range(1, count + 1):
        raw, _ = iso8583.encode(
            {
                "t": "0200",
                "2": "4111111111111111",
                "3": "000000",
                "4": "000000001000",
                "11": f"{stan:06d}",
                "41": f"T{tid:07d}",
                "49": "978",
            },
            default_ascii,
        )
        t0 = time.perf_counter()
        sock.sendall(struct.pack(">H", len(raw)) + raw)
        (n,) = struct.unpack(">H", recv_exact(sock, 2))
        answer, _ = iso8583.decode(bytearray(recv_exact(sock, n)), default_ascii)
        latencies.append(time.perf_counter() - t0)
        assert answer["39"] == "00", answer
    sock.close()


def run(synchronous: str, connections: int, per_conn: int) -> dict:
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parents[2]) as tmp:
        host, address = start_host(Path(tmp) / "ledger.sqlite", synchronous)
        try:
            latencies: list[float] = []
            go = threading.Event()
            threads = [
                threading.Thread(target=terminal, args=(address, i, per_conn, latencies, go))
                for i in range(connections)
            ]
            for t in threads:
                t.start()
            time.sleep(0.2)
            t0 = time.perf_counter()
            go.set()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - t0
        finally:
            host.stop(timeout=10)
    lat = sorted(latencies)
    return {
        "auth_per_s": len(lat) / elapsed,
        "p50_ms": 1000 * lat[len(lat) // 2],
        "p99_ms": 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))],
        "requests": len(lat),
    }


def median_round(rounds: list[dict]) -> dict:
    rate = statistics.median(r["auth_per_s"] for r in rounds)
    best = min(rounds, key=lambda r: abs(r["auth_per_s"] - rate))
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in best.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--per-conn", type=int, default=50, help="authorizations per connection with 20 connections"
    )
    ap.add_argument("--single", type=int, default=300, help="authorizations on the single connection")
    args = ap.parse_args()
    figures: dict[str, dict] = {}
    for sync in ("FULL", "NORMAL"):
        for name, conns, per in (("1conn", 1, args.single), ("20conn", 20, args.per_conn)):
            rounds = [run(sync, conns, per) for _ in range(args.rounds)]
            figures[f"{name}_{sync.lower()}"] = median_round(rounds)
            r = figures[f"{name}_{sync.lower()}"]
            print(
                f"{name:6} synchronous={sync:6}: {r['auth_per_s']:8.1f} auth/s  p50 {r['p50_ms']:6.2f} ms  "
                f"p99 {r['p99_ms']:6.2f} ms  ({r['requests']} requests, median of {args.rounds})"
            )
    figures["ratio_20conn_vs_1conn_full"] = round(
        figures["20conn_full"]["auth_per_s"] / figures["1conn_full"]["auth_per_s"], 2
    )
    figures["ratio_full_vs_normal_1conn"] = round(
        figures["1conn_full"]["auth_per_s"] / figures["1conn_normal"]["auth_per_s"], 2
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

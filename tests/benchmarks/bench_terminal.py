"""Benchmark: a whole ZVT payment through the emulated terminal, against the bare ISO 8583 round trip in it.

    .venv/bin/python tests/benchmarks/bench_terminal.py [--rounds 3] [--payments 100]

The acquirer is `posrig host serve` (its own process, durable ledger). Baseline, in the same process: a plain
pyiso8583 0200/0210 exchange with that host. Measured: an ECR (hand-framed ZVT over TCP) running 06 01 ... 06
0F through `posrig terminal serve` (its own process, timing scale 1.0, default card presented at once), and
the same over the emulator's RS-232 pty. Medians of the rounds; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

import iso8583
from iso8583.specs import default_ascii

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from harness.core.process import Child, ChildFailed, posrig_command  # noqa: E402
from harness.protocols import zvt  # noqa: E402


def start(args: list[str]) -> tuple[Child, dict]:
    child = Child(" ".join(args[:2]), [*posrig_command(), *args])
    try:
        return child, child.start(timeout=20)
    except ChildFailed as exc:
        raise SystemExit(f"bench_terminal: {exc}") from None


def iso_round_trips(address: tuple[str, int], n: int, first_stan: int) -> list[float]:
    out = []
    with socket.create_connection(address) as s:
        for i in range(n):
            raw, _ = iso8583.encode(
                {
                    "t": "0200",
                    "2": "4111111111111111",
                    "3": "000000",
                    "4": "000000000100",
                    "11": f"{(first_stan + i) % 999999 + 1:06d}",
                    "41": "BENCH001",
                    "49": "978",
                },
                default_ascii,
            )
            t0 = time.perf_counter()
            s.sendall(struct.pack(">H", len(raw)) + bytes(raw))
            (n_bytes,) = struct.unpack(">H", s.recv(2, socket.MSG_WAITALL))
            s.recv(n_bytes, socket.MSG_WAITALL)
            out.append(time.perf_counter() - t0)
    return out


def zvt_payments(read, write, n: int) -> list[float]:
    """Run n payments with an ECR given raw read(n)/write(bytes) functions (TCP or serial)."""
    out = []
    auth = bytes.fromhex("06010a") + bytes.fromhex("04000000000100") + bytes.fromhex("490978")
    for _ in range(n):
        t0 = time.perf_counter()
        write(auth)
        while True:
            cls, ins, length = read(3)
            data = read(length) if length != 0xFF else read(int.from_bytes(read(2), "little"))
            del data
            if (cls, ins) == (0x80, 0x00):
                continue
            write(b"\x80\x00\x00")
            if (cls, ins) in ((0x06, 0x0F), (0x06, 0x1E)):
                break
        out.append(time.perf_counter() - t0)
        if (cls, ins) != (0x06, 0x0F):
            raise SystemExit("bench_terminal: a payment did not complete")
    return out


def over_tcp(address: str, n: int) -> list[float]:
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port))) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a till writes small APDUs: no Nagle wait
        return zvt_payments(lambda k: s.recv(k, socket.MSG_WAITALL), s.sendall, n)


def over_pty(path: str, n: int) -> list[float]:
    import serial

    with serial.Serial(path, 115200, timeout=5) as port:
        decoder = zvt.SerialDecoder()
        pending: list[bytes] = []
        buf = bytearray()

        def read(k: int) -> bytes:
            while len(buf) < k:
                while not pending:
                    for ev in decoder.feed(port.read(1) + port.read(port.in_waiting)):
                        if ev.kind == "frame":
                            port.write(bytes([zvt.LINK_ACK]))
                            pending.append(ev.apdu)
                buf.extend(pending.pop(0))
            out = bytes(buf[:k])
            del buf[:k]
            return out

        def write(apdu: bytes) -> None:
            port.write(zvt.serial_frame(apdu))
            while True:  # wait for the link-level ACK
                for ev in decoder.feed(port.read(1)):
                    if ev.kind == "ack":
                        return
                    if ev.kind == "frame":
                        port.write(bytes([zvt.LINK_ACK]))
                        pending.append(ev.apdu)

        return zvt_payments(read, write, n)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--payments", type=int, default=100)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        host, ready = start(["host", "serve", "--listen", "127.0.0.1:0", "--ledger", f"{tmp}/ledger.sqlite"])
        hh, hp = ready["listen"].rsplit(":", 1)
        procs = [host]
        try:
            term, tready = start(
                [
                    "terminal",
                    "serve",
                    "--ecr",
                    "127.0.0.1:0",
                    "--host",
                    ready["listen"],
                    "--journal",
                    f"{tmp}/t.sqlite",
                    "--terminal-id",
                    "29000001",
                ]
            )
            procs.append(term)
            pty, pready = start(
                [
                    "terminal",
                    "serve",
                    "--ecr",
                    "pty",
                    "--host",
                    ready["listen"],
                    "--journal",
                    f"{tmp}/p.sqlite",
                    "--terminal-id",
                    "29000002",
                ]
            )
            procs.append(pty)
            rounds = {"iso": [], "tcp": [], "pty": []}
            for r in range(a.rounds):
                rounds["iso"].append(
                    statistics.median(iso_round_trips((hh, int(hp)), a.payments, r * a.payments))
                )
                rounds["tcp"].append(statistics.median(over_tcp(tready["ecr"], a.payments)))
                rounds["pty"].append(statistics.median(over_pty(pready["ecr"], a.payments)))
        finally:
            for p in procs:
                p.stop(timeout=5)
    iso_ms = statistics.median(rounds["iso"]) * 1000
    tcp_ms = statistics.median(rounds["tcp"]) * 1000
    pty_ms = statistics.median(rounds["pty"]) * 1000
    print(f"ISO 8583 0200/0210 round trip (baseline): median {iso_ms:.2f} ms")
    print(
        f"ZVT payment over TCP 06 01..06 0F:        median {tcp_ms:.2f} ms ({tcp_ms / iso_ms:.1f}x baseline)"
    )
    print(
        f"ZVT payment over RS-232 pty:              median {pty_ms:.2f} ms ({pty_ms / iso_ms:.1f}x baseline)"
    )
    print(
        json.dumps(
            {
                "iso_round_trip_ms": round(iso_ms, 3),
                "zvt_tcp_payment_ms": round(tcp_ms, 3),
                "zvt_pty_payment_ms": round(pty_ms, 3),
                "tcp_vs_baseline": round(tcp_ms / iso_ms, 2),
                "pty_vs_baseline": round(pty_ms / iso_ms, 2),
                "payments_per_round": a.payments,
                "rounds": a.rounds,
                "pid": os.getpid(),
            }
        )
    )


if __name__ == "__main__":
    main()

"""Benchmark of the link engine on ISO 8583 over TLS (1.2 and 1.3; passthrough: no keys, and terminating in the
link node) beside plaintext, on one emulated topology (terminal and host namespaces, link between them):

1. added round-trip latency: 0200/0210 round trips on one connection without the engine, then with it (median,
   p99), per mode (plain, TLS 1.2, TLS 1.3);
2. stage exactness of `drop response#1 host->terminal` (plaintext: `drop 0210`): RUNS runs, each on a new
   connection (TLS: a new handshake, half of them resuming the last session; the request sent right after the
   handshake or 20 ms later, whole or split across two segments). A run is exact when the fault fired once,
   on response#1 of that connection, at the stream offset where the response record starts (the bytes the
   terminal received before the hole the drop left), and the terminal never got the answer.

The acquirer is a separate process in the host namespace (Python's ssl, a bench CA from harness.host.tls).

    sudo .venv/bin/python tests/benchmarks/bench_link_tls.py [--rtts 1000] [--runs 1000] \
        [--modes plain,1.2,1.3,1.2-terminate,1.3-terminate]

The last line printed is one JSON object with every figure. Figures taken on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import socket
import ssl
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from harness.core.bench import Bench
from harness.core.evidence import Evidence
from harness.core.rig import LinkTls, load_rig
from harness.host.tls import BenchPki, TlsStream, offer, withdraw
from harness.link.driver import FaultNotFired
from harness.protocols import iso8583 as iso
from harness.topology import build_topology

ROOT = Path(__file__).resolve().parents[2]
PORT = 5000
MODES = ("plain", "1.2", "1.3", "1.2-terminate", "1.3-terminate")

# The acquirer: answers every framed 0200 with the same frame, MTI rewritten to 0210 (TLS when given a version).
SERVER = r"""
import socket, ssl, struct, sys, threading
mode, cert, key = sys.argv[1:4]
ctx = None
if mode != "plain":
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    v = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}[mode]
    ctx.minimum_version = ctx.maximum_version = v
    ctx.load_cert_chain(cert, key)
def serve(c):
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        if ctx is not None:
            c = ctx.wrap_socket(c, server_side=True)
        buf = b""
        while True:
            d = c.recv(65536)
            if not d:
                return
            buf += d
            while len(buf) >= 2 and len(buf) >= 2 + struct.unpack(">H", buf[:2])[0]:
                n = 2 + struct.unpack(">H", buf[:2])[0]
                c.sendall(buf[:2] + b"0210" + buf[6:n])
                buf = buf[n:]
    except (OSError, ssl.SSLError):
        return
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", PORT)); s.listen(64)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
""".replace("PORT", str(PORT))


class CountingSocket:
    """A TCP socket that counts the bytes it received (the TLS stream offset the terminal has reached)."""

    def __init__(self, sock: socket.socket):
        self.sock, self.received = sock, 0

    def recv(self, n: int) -> bytes:
        data = self.sock.recv(n)
        self.received += len(data)
        return data

    def __getattr__(self, name):
        return getattr(self.sock, name)


class Terminal:
    """One connection to the acquirer, plaintext or TLS (resuming `session` when given)."""

    def __init__(self, topo, context: ssl.SSLContext | None, session=None, split_handshake_pause: float = 0.0):
        raw = topo.nodes["terminal"].connect((topo.ip("host"), PORT), timeout=5.0)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.raw = CountingSocket(raw)
        self.stream = self.raw
        if context is not None:
            self.stream = TlsStream(self.raw, context, server_side=False, server_hostname=topo.ip("host"),
                                    session=session)
            self.stream.handshake(5.0)
        self.reader = iso.FrameReader()
        self.pending: list[bytes] = []

    def send(self, data: bytes, split: bool = False) -> None:
        if split and isinstance(self.stream, TlsStream):
            s = self.stream
            with s._wire:                                  # the record's bytes in two TCP segments
                with s._state:
                    s.tls.write(data)
                    out = s.outgoing.read()
                cut = random.randint(1, len(out) - 1)
                self.raw.sendall(out[:cut])
                time.sleep(0.0005)
                self.raw.sendall(out[cut:])
        elif split:
            cut = random.randint(1, len(data) - 1)
            self.raw.sendall(data[:cut])
            time.sleep(0.0005)
            self.raw.sendall(data[cut:])
        else:
            self.stream.sendall(data)

    def recv(self, timeout: float = 5.0) -> bytes | None:
        self.raw.settimeout(timeout)
        while not self.pending:
            try:
                data = self.stream.recv(65536)
            except TimeoutError:
                return None
            if not data:
                raise ConnectionError("acquirer closed the connection")
            self.pending.extend(self.reader.feed(data))
        return self.pending.pop(0)

    @property
    def session(self):
        return self.stream.session if isinstance(self.stream, TlsStream) else None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.raw.close()


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


def request(stan: int) -> bytes:
    return iso.encode_frame({"t": "0200", "11": f"{stan % 1000000:06d}", "4": "000000001000", "41": "TERM0001"})


def round_trips(t: Terminal, n: int) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        t.send(request(i))
        t.recv()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def exactness(link, topo, context, mode: str, runs: int) -> dict:
    terminating = mode.endswith("-terminate")
    stage = "0210" if mode == "plain" or terminating else "response#1"
    exact, misses, session = 0, [], None
    shapes = {"resumed": 0, "paused": 0, "split": 0}
    for run in range(runs):
        resume = context is not None and session is not None and random.random() < 0.5
        pause, split = random.random() < 0.5, random.random() < 0.5
        t = Terminal(topo, context, session=session if resume else None)
        shapes["resumed"] += bool(resume and t.stream.resumed)
        shapes["paused"] += pause
        shapes["split"] += split
        fault = link.inject("drop", stage=stage, direction="host->terminal")
        if pause:
            time.sleep(0.02)
        t.send(request(run), split=split)
        with contextlib.suppress(FaultNotFired):
            fault.wait_fired(2.0)
        got = t.recv(0.05)                                # what arrived before the hole (tickets, handshake)
        fault.clear()
        shot = fault.fired[0] if fault.fired else None
        want = 0 if terminating else t.raw.received        # the hop is a new plaintext connection per run
        ok = (got is None and len(fault.fired) == 1 and shot.stage == stage
              and shot.detail["stream_start"] == want)
        exact += ok
        if not ok and len(misses) < 5:
            misses.append({"run": run, "resumed": resume, "paused": pause, "split": split, "want": want,
                           "answered": got is not None, "fired": [e.to_json() for e in fault.fired]})
        if context is not None:
            session = t.session or session
        t.close()
    print(f"  {mode}: drop {stage} exact {exact}/{runs} ({shapes})")
    return {"stage": stage, "runs": runs, "exact": exact, "shapes": shapes, "misses": misses}


def measure(rig, topo, tmp: Path, mode: str, pki: BenchPki, args) -> dict:
    version, _, terminate = mode.partition("-")
    server = topo.nodes["host"].popen([sys.executable, "-c", SERVER, version, str(pki.cert), str(pki.key)],
                                      stdout=-1, text=True)
    host = (topo.ip("host"), PORT)
    try:
        assert server.stdout.readline().strip() == "ready"
        context = None if mode == "plain" else pki.client_context(version)
        if terminate:                                      # what the emulated host offers a terminating link
            offer(host, context, pki.server_context(version))
        base = Terminal(topo, context)
        round_trips(base, 200)
        without = round_trips(base, args.rtts)
        base.close()
        links = dict(rig.links)
        tls = None if mode == "plain" else LinkTls(version, terminate or "passthrough", (2, 1))
        links["terminal-host"] = replace(links["terminal-host"], tls=tls)
        bench = Bench(replace(rig, links=links), Evidence(tmp / mode), topo)
        try:
            link = bench.device("terminal-host")
            t = Terminal(topo, context)
            round_trips(t, 200)
            with_engine = round_trips(t, args.rtts)
            t.close()
            m0, m1 = statistics.median(without), statistics.median(with_engine)
            print(f"  {mode}: RTT median {m0:.3f} -> {m1:.3f} ms (+{m1 - m0:.3f} ms); "
                  f"p99 {pct(without, 99):.3f} -> {pct(with_engine, 99):.3f} ms")
            figures = {"rtt_ms_without": {"median": round(m0, 4), "p99": round(pct(without, 99), 4)},
                       "rtt_ms_with_engine": {"median": round(m1, 4), "p99": round(pct(with_engine, 99), 4)},
                       "added_ms_median": round(m1 - m0, 4), "samples": args.rtts}
            figures["exactness"] = exactness(link, topo, context, mode, args.runs)
        finally:
            bench.close()
        return figures
    finally:
        withdraw(host)
        server.kill()
        server.wait()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rtts", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--modes", default=",".join(MODES))
    args = ap.parse_args()
    os.environ["POSRIG_LINK_WARM"] = "0"                 # each mode its own engine; baselines without any
    random.seed(8583)
    rig = load_rig(ROOT / "rigs/emulated.yaml")
    topo = build_topology(["terminal", "host"])
    tmp = Path(tempfile.mkdtemp(prefix="bench-link-tls-"))
    pki = BenchPki("host", topo.ip("host"))
    figures: dict = {"cores": len(os.sched_getaffinity(0)), "loadavg_at_start": os.getloadavg()}
    try:
        for mode in args.modes.split(","):
            figures[mode] = measure(rig, topo, tmp, mode, pki, args)
    finally:
        pki.close()
        topo.close()
    figures["loadavg_at_end"] = os.getloadavg()
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())

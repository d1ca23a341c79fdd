"""Benchmark of the link engine, in one run on one emulated topology (terminal and host namespaces, link
between them):

1. added round-trip latency in pass-through: ISO 8583 0200/0210 round trips without the engine, then with it
   (median, p99, ratio);
2. delay precision: hold faults of 20/50/100 ms, |measured extra delay - requested| (median, p99), at least
   1,000 samples so the p99 rests on ten or more of them. The link's figure times the held 0210 from the moment
   the acquirer sent it (its clock, right after sendall) to its arrival at the terminal's socket (kernel receive
   timestamp, SO_TIMESTAMPNS), less that one-way time without a hold: what the link added, not when the measuring
   process happened to be scheduled, nor how long the request path and the host took to wake after D ms idle.
   The full round trip to the arrival, the client's own view and the engine's own hold are printed beside it;
3. stage-trigger exactness: 1000 runs, each arming "hold <stage> nth=k ms=1" for a random stage (0200 or 0210)
   and k, with the requests sent whole, coalesced or split; a run is exact when the fault fired once, on the
   k-th message of that stage after arming (checked by stream offset and STAN);
4. packets per second through the engine: a bulk transfer across the link.

Figures 1-3 are taken twice: on the machine as it is ("quiet"), then under a CPU hog ("hog": HOGS busy-loop
processes the benchmark starts and kills at the end), the load a shared CI runner or a busy bench PC puts on
the engine. `--hog no` or `--hog only` takes one of the two.

    sudo .venv/bin/python tests/benchmarks/bench_link.py [--rtts 2000] [--runs 1000] [--delays 340] [--hog both]

The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import random
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from harness.core.bench import Bench
from harness.core.evidence import Evidence
from harness.core.rig import load_rig
from harness.link.driver import FaultNotFired
from harness.link.emulated import EmulatedLink
from harness.protocols import iso8583 as iso
from harness.topology import build_topology

ROOT = Path(__file__).resolve().parents[2]
PORT, BULK_PORT = 5000, 9000
DELAYS_MS = (20, 50, 100)
HOGS = 2                     # busy-loop processes of the CPU hog
# A busy loop at normal priority (the benchmark itself runs SCHED_FIFO, which its children would inherit: a FIFO
# busy loop would starve the whole machine instead of loading it like a CI job does).
HOG = "import os\nos.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))\nwhile True:\n    pass\n"

# The acquirer side: a separate process in the host namespace (no GIL shared with the measuring client).
# Answers every framed 0200 with the same frame, MTI rewritten to 0210; sinks bulk data on BULK_PORT.
SERVER = r"""
import socket, struct, threading, time
def serve(c):
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    while True:
        d = c.recv(65536)
        if not d:
            return
        buf += d
        out = b""
        while len(buf) >= 2 and len(buf) >= 2 + struct.unpack(">H", buf[:2])[0]:
            n = 2 + struct.unpack(">H", buf[:2])[0]
            out += buf[:2] + b"0210" + buf[6:n]
            buf = buf[n:]
        if out:
            c.sendall(out)
            print("sent", repr(time.time()), flush=True)     # when each answer left the host (one per request)
def sink(c):
    while c.recv(1 << 20):
        pass
def bound(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(16)
    return s
def listen(s, handler):
    while True:
        c, _ = s.accept()
        threading.Thread(target=handler, args=(c,), daemon=True).start()
bulk, echo = bound(BULK_PORT), bound(ECHO_PORT)
threading.Thread(target=listen, args=(bulk, sink), daemon=True).start()
print("ready", flush=True)
listen(echo, serve)
""".replace("BULK_PORT", str(BULK_PORT)).replace("ECHO_PORT", str(PORT))


SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)     # Linux; Python 3.11 does not name it


CLOCK: HostClock            # set once the acquirer is up


class HostClock:
    """When the acquirer sent each answer (its own `time.time()` right after `sendall`), read from its stdout."""

    def __init__(self, stream):
        self.lines: queue.Queue[float] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            if line.startswith("sent "):
                self.lines.put(float(line.split()[1]))

    def clear(self) -> None:
        while not self.lines.empty():
            self.lines.get_nowait()

    def next(self) -> float:
        return self.lines.get(timeout=2.0)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


class Client:
    def __init__(self, topo):
        self.sock = topo.nodes["terminal"].connect((topo.ip("host"), PORT))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(5)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)   # when each segment reached the socket
        self.arrived = 0.0       # kernel receive time (CLOCK_REALTIME) of the last segment read
        self.reader = iso.FrameReader()
        self.pending: list[bytes] = []
        self.sent = 0            # bytes sent on this connection (stream offsets of the requests)
        self.received = 0

    def send(self, data: bytes, split: bool = False) -> None:
        if split:
            cut = random.randint(1, len(data) - 1)
            self.sock.sendall(data[:cut])
            time.sleep(0.0005)
            self.sock.sendall(data[cut:])
        else:
            self.sock.sendall(data)
        self.sent += len(data)

    def recv(self) -> bytes:
        while not self.pending:
            data, ancdata, _, _ = self.sock.recvmsg(65536, socket.CMSG_SPACE(16))
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", payload[:16])
                    self.arrived = sec + nsec / 1e9
            if not data:
                raise ConnectionError("the link closed the connection")
            self.pending.extend(self.reader.feed(data))
        msg = self.pending.pop(0)
        self.received += len(msg) + 2
        return msg


def request(stan: int) -> bytes:
    return iso.encode_frame({"t": "0200", "11": f"{stan:06d}", "4": "000000001000", "41": "TERM0001"})


def round_trips(client: Client, n: int, arrival: list[float] | None = None) -> list[float]:
    """Round trips in ms as the client sees them (its own wake-up included); with `arrival`, also until the
    answer reached the client's socket (kernel receive timestamp): the link's part, without the wake-up."""
    out = []
    for i in range(n):
        frame = request(i % 999999)
        t0, w0 = time.perf_counter(), time.time()
        client.send(frame)
        client.recv()
        out.append((time.perf_counter() - t0) * 1000)
        if arrival is not None:
            arrival.append((client.arrived - w0) * 1000)
    return out


def bulk(topo, seconds: float = 2.0) -> tuple[int, float]:
    s = topo.nodes["terminal"].connect((topo.ip("host"), BULK_PORT))
    chunk = b"\0" * 65536
    sent = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        s.sendall(chunk)
        sent += len(chunk)
    s.close()
    return sent, time.perf_counter() - t0


@contextlib.contextmanager
def cpu_hog(n: int):
    """`n` processes spinning at normal priority for the duration of the block; killed however it ends."""
    procs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(n)]
    try:
        time.sleep(0.5)                                              # spinning before the first sample
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def latency(topo, c: Client, without: list[float], rtts: int) -> tuple[dict, float]:
    """Pass-through round trips with the engine, against `without` (same topology, no engine)."""
    round_trips(c, 200)                                              # warm-up
    with_engine = round_trips(c, rtts)
    m0, m1 = statistics.median(without), statistics.median(with_engine)
    print(f"  pass-through RTT median {m0:.3f} -> {m1:.3f} ms (+{m1 - m0:.3f} ms, x{m1 / m0:.2f}); "
          f"p99 {pct(without, 99):.3f} -> {pct(with_engine, 99):.3f} ms")
    return {"rtt_ms_without": {"median": round(m0, 4), "p99": round(pct(without, 99), 4)},
            "rtt_ms_with_engine": {"median": round(m1, 4), "p99": round(pct(with_engine, 99), 4)},
            "added_ms_median": round(m1 - m0, 4),
            "added_ms_p99": round(pct(with_engine, 99) - pct(without, 99), 4),
            "ratio_median": round(m1 / m0, 3), "samples": rtts}, m1


def delay(link: EmulatedLink, c: Client, rtt_ms: float, per_delay: int) -> dict:
    """Hold every 0210 for D ms; the extra delay the client sees (its round trip less the median pass-through
    round trip), and the hold the engine reports, against D. `bias_ms` is the signed median (late > 0): the
    client's includes waking up after D ms asleep, which a back-to-back pass-through round trip never pays."""
    signed, engine_signed, arrival_signed, link_signed = [], [], [], []
    time.sleep(0.2)
    CLOCK.clear()                                   # answers of the earlier phases
    base, one_way = [], []
    for _ in range(200):                            # pass-through, timed to the answer's arrival at the socket
        w0 = time.time()
        c.send(request(1))
        c.recv()
        base.append((c.arrived - w0) * 1000)
        one_way.append((c.arrived - CLOCK.next()) * 1000)     # from the host's send to the terminal's socket
    base_ms, one_way_ms = statistics.median(base), statistics.median(one_way)
    for wanted in DELAYS_MS:
        fault = link.inject("hold", stage="0210", direction="host->terminal", occurrence="every", ms=wanted)
        for _ in range(per_delay):
            t0, w0 = time.perf_counter(), time.time()
            c.send(request(1))
            c.recv()
            signed.append((time.perf_counter() - t0) * 1000 - rtt_ms - wanted)
            arrival_signed.append((c.arrived - w0) * 1000 - base_ms - wanted)
            link_signed.append((c.arrived - CLOCK.next()) * 1000 - one_way_ms - wanted)
        fault.clear()
        engine_signed += [r.held_ms - wanted for r in fault.released]
    errors, engine_errors = [abs(e) for e in signed], [abs(e) for e in engine_signed]
    arrival_errors, link_errors = [abs(e) for e in arrival_signed], [abs(e) for e in link_signed]
    print(f"  link delay error (0210 from the host's send to its arrival at the terminal's socket, less the "
          f"pass-through one way {one_way_ms:.3f} ms) median {statistics.median(link_errors):.3f} ms, p99 "
          f"{pct(link_errors, 99):.3f} ms, max {max(link_errors):.3f} ms over {len(link_errors)} samples "
          f"(bias {statistics.median(link_signed):+.3f} ms)")
    print(f"  round trip to the answer's arrival (request path and host included) median "
          f"{statistics.median(arrival_errors):.3f} ms, p99 {pct(arrival_errors, 99):.3f} ms (bias "
          f"{statistics.median(arrival_signed):+.3f} ms)")
    print(f"  as the client process sees it (its wake-up included) median {statistics.median(errors):.3f} ms, "
          f"p99 {pct(errors, 99):.3f} ms, max {max(errors):.3f} ms (bias {statistics.median(signed):+.3f} ms); "
          f"engine-side p99 {pct(engine_errors, 99):.3f} ms (bias {statistics.median(engine_signed):+.3f} ms)")
    return {"requested_ms": list(DELAYS_MS), "samples": len(errors),
            "link_abs_error_ms": {"median": round(statistics.median(link_errors), 4),
                                  "p99": round(pct(link_errors, 99), 4), "max": round(max(link_errors), 4)},
            "link_bias_ms": round(statistics.median(link_signed), 4),
            "arrival_abs_error_ms": {"median": round(statistics.median(arrival_errors), 4),
                                     "p99": round(pct(arrival_errors, 99), 4), "max": round(max(arrival_errors), 4)},
            "arrival_bias_ms": round(statistics.median(arrival_signed), 4),
            "abs_error_ms": {"median": round(statistics.median(errors), 4), "p99": round(pct(errors, 99), 4),
                             "max": round(max(errors), 4)},
            "bias_ms": round(statistics.median(signed), 4),
            "engine_held_abs_error_ms": {"samples": len(engine_errors),
                                         "median": round(statistics.median(engine_errors), 4),
                                         "p99": round(pct(engine_errors, 99), 4),
                                         "max": round(max(engine_errors), 4)},
            "engine_bias_ms": round(statistics.median(engine_signed), 4)}


def exactness(link: EmulatedLink, c: Client, runs: int) -> dict:
    """Arm "hold <stage> nth=k ms=1" and check the shot landed on the k-th message of that stage."""
    exact, shapes = 0, {"whole": 0, "coalesced": 0, "split": 0}
    misses = []
    stan = 100000
    for run in range(runs):
        stage = random.choice(["0200", "0210"])
        k = random.randint(1, 3)
        shape = random.choice(list(shapes))
        shapes[shape] += 1
        direction = "terminal->host" if stage == "0200" else "host->terminal"
        fault = link.inject("hold", stage=stage, direction=direction, occurrence=k, ms=1)
        frames = [request(stan + i) for i in range(3)]
        offsets = []                                            # stream offset of each request / response
        if shape == "coalesced":
            offsets = [c.sent + sum(len(f) for f in frames[:i]) for i in range(3)]
            c.send(b"".join(frames))
            resp_offsets = [c.received + sum(len(f) for f in frames[:i]) for i in range(3)]
            for _ in frames:
                c.recv()
        else:
            resp_offsets = []
            for f in frames:
                offsets.append(c.sent)
                resp_offsets.append(c.received)
                c.send(f, split=shape == "split")
                c.recv()
        want_start = (offsets if stage == "0200" else resp_offsets)[k - 1]
        with contextlib.suppress(FaultNotFired):              # counted as a miss below
            fault.wait_fired(2.0)
        fault.clear()
        shot = fault.fired[0] if fault.fired else None
        ok = (len(fault.fired) == 1 and shot.stage == stage and shot.detail["stream_start"] == want_start
              and shot.stan in (None, f"{stan + k - 1:06d}"))
        exact += ok
        if not ok:
            misses.append({"run": run, "stage": stage, "k": k, "shape": shape, "want": want_start,
                           "fired": [e.to_json() for e in fault.fired]})
        stan += 3
    print(f"  stage-trigger exactness {exact}/{runs} ({shapes})")
    return {"runs": runs, "exact": exact, "ratio": exact / runs, "shapes": shapes, "misses": misses[:5]}


def measure(rig, topo, tmp: Path, args, throughput: bool) -> dict:
    """Figures 1-3 (and 4 when `throughput`) on a fresh engine; the baseline is taken before it starts."""
    base = Client(topo)
    round_trips(base, 200)                                       # warm-up
    without = round_trips(base, args.rtts)
    base.sock.close()
    if throughput:
        base_sent, base_secs = bulk(topo)
    bench = Bench(rig, Evidence(tmp), topo)
    try:
        link: EmulatedLink = bench.device("terminal-host")
        c = Client(topo)
        figures: dict = {}
        figures["latency"], rtt_ms = latency(topo, c, without, args.rtts)
        figures["delay"] = delay(link, c, rtt_ms, args.delays)
        figures["exactness"] = exactness(link, c, args.runs)
        c.sock.close()
        if throughput:
            before = link.status()["stats"]["packets"]
            sent, secs = bulk(topo)
            time.sleep(0.2)
            packets = link.status()["stats"]["packets"] - before
            figures["throughput"] = {"packets_per_s": round(packets / secs), "packets": packets,
                                     "mbit_s_with_engine": round(sent * 8 / secs / 1e6, 1),
                                     "mbit_s_without": round(base_sent * 8 / base_secs / 1e6, 1)}
            print(f"  engine: {packets / secs:,.0f} packets/s ({sent * 8 / secs / 1e6:.0f} Mbit/s; "
                  f"without engine {base_sent * 8 / base_secs / 1e6:.0f} Mbit/s)")
    finally:
        bench.close()
    figures["goals"] = {"added_median_ms_lt_0.15": figures["latency"]["added_ms_median"] < 0.15,
                        "delay_error_p99_ms_lt_1": figures["delay"]["link_abs_error_ms"]["p99"] < 1,
                        "delay_samples_ge_1000": figures["delay"]["samples"] >= 1000,
                        "exactness_100pct": figures["exactness"]["exact"] == args.runs}
    return figures


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rtts", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--delays", type=int, default=340,
                    help=f"samples per requested delay (x{len(DELAYS_MS)}: at least 1,000 for the p99)")
    ap.add_argument("--hog", choices=["both", "no", "only"], default="both",
                    help=f"take the figures without and with a CPU hog ({HOGS} busy loops), or only one")
    args = ap.parse_args()
    random.seed(8583)
    from harness.link.engine import sharpen_timing

    figures_timing = sharpen_timing(realtime=True)        # the measuring client: same treatment as the engine
    rig = load_rig(ROOT / "rigs/emulated.yaml")
    topo = build_topology(["terminal", "host"])
    tmp = Path(tempfile.mkdtemp(prefix="bench-link-"))
    server = topo.nodes["host"].popen([sys.executable, "-c", SERVER], stdout=-1, text=True)
    figures: dict = {"client_timing": figures_timing, "cores": len(os.sched_getaffinity(0)),
                     "loadavg_at_start": os.getloadavg()}
    try:
        assert server.stdout.readline().strip() == "ready"
        global CLOCK
        CLOCK = HostClock(server.stdout)
        if args.hog in ("both", "no"):
            print("quiet (the machine as it is):")
            figures["quiet"] = measure(rig, topo, tmp / "quiet", args, throughput=True)
        if args.hog in ("both", "only"):
            with cpu_hog(HOGS) as pids:
                print(f"under a CPU hog ({HOGS} busy loops, pids {pids}):")
                figures["hog"] = measure(rig, topo, tmp / "hog", args, throughput=False)
            figures["hog"]["busy_loops"] = HOGS
    finally:
        server.kill()
        server.wait()
        topo.close()
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Decode throughput of the ESC/POS decoder, in MB/s, for a text-heavy and an image-heavy receipt mix.

    .venv/bin/python tests/benchmarks/bench_printer_decode.py

Each mix is decoded 5 times, fed in 4 KiB chunks (as a TCP printer reads), median reported; also with receipt
assembly, and one baseline in the same process (a bare scan of the same bytes for ESC, i.e. memory speed) to
quote ratios. Goals: >= 10 MB/s text-heavy, >= 100 MB/s image-heavy. The last line is one JSON object.
"""

from __future__ import annotations

import json
import random
import statistics
import time

from harness.protocols.escpos.decoder import Decoder
from harness.protocols.escpos.receipt import ReceiptBuilder

RUNS = 5
CHUNK = 4096


def text_receipt(rng: random.Random, n: int) -> bytes:
    out = [b"\x1b@\x1bt\x10\x1ba\x01\x1bE\x01\x1d!\x11CORNER SHOP %d\n\x1d!\x00\x1bE\x00\x1ba\x00" % n]
    total = 0
    for _ in range(40):
        price = rng.randint(50, 9999)
        total += price
        name = rng.choice([b"Milk 1L", b"Bread", b"Caf\xe9 au lait", b"Apples 1kg", b"Butter 250g"])
        out.append(b"%-28s %8d.%02d\n" % (name, price // 100, price % 100))
        if rng.random() < 0.1:
            out.append(b"\x1b-\x01  offer -0.50\x1b-\x00\n")
    out.append(b"\x1bE\x01TOTAL %31d.%02d\n\x1bE\x00" % (total // 100, total % 100))
    out.append(b"\x1dh\x50\x1dw\x02\x1dH\x02\x1dk\x02400638133393\x00")
    out.append(b"\x1bd\x06\x1dV\x00")
    return b"".join(out)


def image_receipt(rng: random.Random, n: int) -> bytes:
    w_bytes, h = 64, 400                                   # a 512 x 400 logo, raster
    logo = rng.randbytes(w_bytes * h)
    payload = b"https://pay.example/r/%d" % n
    qr = (b"\x1d(k\x04\x001A2\x00\x1d(k\x03\x001C\x06\x1d(k\x03\x001E1"
          + b"\x1d(k" + (len(payload) + 3).to_bytes(2, "little") + b"1P0" + payload + b"\x1d(k\x03\x001Q0")
    size = (512).to_bytes(2, "little") + (200).to_bytes(2, "little")
    body = b"0p0\x01\x011" + size + rng.randbytes(64 * 200)
    graphics = b"\x1d(L" + len(body).to_bytes(2, "little") + body + b"\x1d(L\x02\x0002"
    return (b"\x1b@\x1dv0\x00" + w_bytes.to_bytes(2, "little") + h.to_bytes(2, "little") + logo
            + b"Thank you\n" + qr + graphics + b"TOTAL 12.50\n\x1dV\x01")


def mix(kind: str, target: int) -> bytes:
    rng = random.Random(42)
    make = text_receipt if kind == "text" else image_receipt
    parts, size, n = [], 0, 0
    while size < target:
        r = make(rng, n)
        parts.append(r)
        size += len(r)
        n += 1
    return b"".join(parts)


def decode_run(data: bytes, build: bool) -> float:
    d = Decoder()
    b = ReceiptBuilder() if build else None
    t0 = time.perf_counter()
    for i in range(0, len(data), CHUNK):
        events = d.feed(data[i:i + CHUNK])
        if b is not None:
            b.add(events)
    d.finish()
    return time.perf_counter() - t0


def baseline_run(data: bytes) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(data), CHUNK):
        data[i:i + CHUNK].count(b"\x1b")
    return time.perf_counter() - t0


def median_mbps(data: bytes, fn) -> float:
    return statistics.median(len(data) / fn() / 1e6 for _ in range(RUNS))


def main() -> None:
    figures = {}
    for kind, size in (("text", 4 << 20), ("image", 32 << 20)):
        data = mix(kind, size)
        decode = median_mbps(data, lambda d=data: decode_run(d, False))
        receipts = median_mbps(data, lambda d=data: decode_run(d, True))
        base = median_mbps(data, lambda d=data: baseline_run(d))
        figures[f"{kind}_heavy_decode_mb_s"] = round(decode, 1)
        figures[f"{kind}_heavy_decode_and_receipts_mb_s"] = round(receipts, 1)
        figures[f"{kind}_heavy_baseline_scan_mb_s"] = round(base, 1)
        figures[f"{kind}_heavy_decode_vs_scan"] = round(decode / base, 4)
        figures[f"{kind}_heavy_bytes"] = len(data)
        print(f"{kind}-heavy: {len(data) / 1e6:.1f} MB, decode {decode:.1f} MB/s, decode+receipts "
              f"{receipts:.1f} MB/s, baseline scan {base:.1f} MB/s (median of {RUNS})")
    figures["goal_text_met"] = figures["text_heavy_decode_mb_s"] >= 10
    figures["goal_image_met"] = figures["image_heavy_decode_mb_s"] >= 100
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

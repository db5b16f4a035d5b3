#!/usr/bin/env python3
"""Load test for `microcash serve` (loopback only, bounded in count and time).

N concurrent clients post single deposits (taken from a batch file's records) for a fixed
time while, optionally, batches are uploaded; reports throughput, p50/p99 latency, the
status mix (200/422 verdicts, 503/429 back-pressure) and the server's memory.

    microcash serve --store STORE --deposit-queue 32 &
    python3 scripts/loadtest.py --server http://127.0.0.1:8080 \\
        --batch datasets/samples/mixed-day1.mcb --clients 64 --seconds 20 --uploads 4 --pid $!

Standard library only. Refuses non-loopback servers.
"""
import argparse
import collections
import json
import struct
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

REQUESTS_MAX = 1_000_000


def deposits_from_batch(path):
    """Hex of every decodable-looking deposit in a batch file (kinds 1 and 2)."""
    data = open(path, "rb").read()
    pos, out = 64, []
    while pos + 16 <= len(data):
        magic, length, _crc, kind = struct.unpack_from("<IIIB", data, pos)
        if magic != 0x3152434D or pos + 16 + length > len(data):  # "MCR1"
            break
        payload = data[pos + 16 : pos + 16 + length]
        if kind == 2 and len(payload) >= 4:
            (n,) = struct.unpack_from("<I", payload, 0)
            payload = payload[4 : 4 + n]
        out.append(payload.hex())
        pos += 16 + length + (-length % 8)
    return out


def rss_kib(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", default="http://127.0.0.1:8080")
    ap.add_argument("--batch", required=True, help="batch file whose records are posted as deposits")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--uploads", type=int, default=0, help="batches uploaded during the test")
    ap.add_argument("--token", default="", help="clearing-partner upload token (microcash partner create)")
    ap.add_argument("--pid", type=int, help="server pid, to sample its RSS")
    a = ap.parse_args()
    host = urllib.parse.urlparse(a.server).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("loopback servers only")
    pool = deposits_from_batch(a.batch)
    if not pool:
        sys.exit("no records in the batch")
    deadline = time.monotonic() + min(a.seconds, 600)
    lat = collections.defaultdict(list)
    status = collections.Counter()
    lock = threading.Lock()
    sent = [0]
    rss = []

    def client(k):
        i = k
        while time.monotonic() < deadline:
            with lock:
                if sent[0] >= REQUESTS_MAX:
                    return
                sent[0] += 1
            body = json.dumps({"deposit": pool[i % len(pool)]}).encode()
            i += a.clients
            req = urllib.request.Request(a.server + "/v1/deposits", data=body, headers={"content-type": "application/json"})
            t = time.monotonic()
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    code = r.status
                    r.read()
            except urllib.error.HTTPError as e:
                code = e.code
                e.read()
            except OSError:
                code = "error"
            with lock:
                status[code] += 1
                lat["deposit"].append(time.monotonic() - t)

    def uploader():
        raw = open(a.batch, "rb").read()
        for _ in range(a.uploads):
            if time.monotonic() >= deadline:
                return
            req = urllib.request.Request(a.server + "/v1/batches", data=raw, headers={"content-type": "application/octet-stream", "authorization": "Bearer " + a.token})
            t = time.monotonic()
            try:
                with urllib.request.urlopen(req, timeout=60) as r:
                    code = r.status
            except urllib.error.HTTPError as e:
                code = e.code
            with lock:
                status[f"batch {code}"] += 1
                lat["upload"].append(time.monotonic() - t)

    def sampler():
        while time.monotonic() < deadline and a.pid:
            v = rss_kib(a.pid)
            if v:
                rss.append(v)
            time.sleep(0.5)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(a.clients)]
    threads += [threading.Thread(target=uploader), threading.Thread(target=sampler)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start

    def pct(xs, p):
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(p * len(xs)))] * 1000 if xs else float("nan")

    d = lat["deposit"]
    report = {
        "clients": a.clients,
        "seconds": round(elapsed, 2),
        "deposits": len(d),
        "deposits_per_s": round(len(d) / elapsed, 1),
        "p50_ms": round(pct(d, 0.50), 2),
        "p99_ms": round(pct(d, 0.99), 2),
        "status": {str(k): v for k, v in sorted(status.items(), key=str)},
        "server_rss_mib_max": round(max(rss) / 1024, 1) if rss else None,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

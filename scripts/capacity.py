#!/usr/bin/env python3
"""Capacity planning for the microcash batch redemption engine.

From benchmark records (``scripts/bench-run.sh`` → ``benches/record/<arch>/<date>.json``)
and a workload, computes the cores, RAM, disk and servers a deployment needs, prints a
table and writes PNG plots (throughput vs cores, storage vs days).

    python3 scripts/capacity.py --record benches/record/x86_64/latest.json \\
        --coins-per-day 10000000 --peak-to-average 4 --hops-mix 1:80,2:15,3:5 \\
        --retention-epochs 3 --plots /tmp/capacity

The cost model (every figure comes from the record; see docs/engine.md):

* a coin with h hops carries h + 1 RedPallas signatures (h links, 1 deposit) and one σ;
  ``kernels_1t_us`` measures a one-hop coin: hash_to_g1 + 3 units (σ's MSM share, two
  signatures), so one unit u = (kernels_1t_us − hash_to_g1) / 3 and
  cost(h) = (hash_to_g1 + (h + 2)·u) × (engine_1t_us / kernels_1t_us);
* with allowance, every received coin also carries one allowance token (σ + signature):
  + (hash_to_g1 + 2u) per hop ≥ 1 and on the deposit;
* threads scale with the measured 2-thread efficiency, held for larger core counts;
* ``--cluster RECORD`` (``scripts/cluster-bench.sh``) adds the multi-machine plan: worker
  cores from the same per-coin cost, NATS stream load from the measured bytes per coin
  (raw records on MC_WORK, verified chunks on MC_SEQ, votes on MC_VOTES; three replicas
  each), one MC_SEQ read per partition owner, PostgreSQL rows (one verdict per record, one
  receipt per acceptance), partitions from the spent-set RAM per owner; capacities of one
  stream, one NIC and one PostgreSQL primary are stated assumptions (``ClusterLimits``),
  and the bottleneck is the resource with the highest demand over capacity;
* the spent set holds, per key epoch, a table of 40-byte slots at load ≤ 3/4 rounded to
  a power of two, plus a 2-byte-per-serial bloom filter; the journal takes
  ~(98 + 32·(h + 1) + 36·a) bytes per receipt (a = allowance tokens).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import dataclass, field

SECONDS_PER_DAY = 86_400


@dataclass
class Record:
    """The figures of one `microcash bench --json` run."""

    engine_1t_us: float
    kernels_1t_us: float
    hash_to_g1_us: float
    thread_scaling: float
    threads: int
    arch: str = "unknown"
    cpu: str = "unknown"
    # Per-coin µs of each clearing stage on one thread (`stages_1t_us`; older records lack it).
    stages: dict = field(default_factory=dict)

    @staticmethod
    def from_json(doc: dict) -> "Record":
        return Record(
            engine_1t_us=doc["per_coin"]["engine_1t_us"],
            kernels_1t_us=doc["per_coin"]["kernels_1t_us"],
            hash_to_g1_us=doc["primitives_us"]["hash_to_g1"],
            thread_scaling=doc["ratios"]["thread_scaling"],
            threads=doc["threads"],
            arch=doc.get("machine", {}).get("arch", "unknown"),
            cpu=doc.get("machine", {}).get("cpu", "unknown"),
            stages=dict(doc.get("stages_1t_us", {})),
        )


@dataclass
class Workload:
    coins_per_day: float
    peak_to_average: float = 4.0
    hops_mix: dict = field(default_factory=lambda: {1: 80.0, 2: 15.0, 3: 5.0})
    allowance: bool = False
    retention_epochs: int = 3
    epoch_days: int = 30
    batch_retention_days: int = 7
    record_bytes: float = 900.0  # a hinted one-hop deposit record with framing
    utilisation: float = 0.7  # plan for this fraction of capacity at peak
    cores_per_server: int = 16


def parse_hops_mix(text: str) -> dict:
    mix = {}
    for part in text.split(","):
        hops, weight = part.split(":")
        mix[int(hops)] = float(weight)
    if sum(mix.values()) <= 0:
        raise ValueError("hop weights sum to zero")
    return mix


def signature_unit_us(r: Record) -> float:
    return (r.kernels_1t_us - r.hash_to_g1_us) / 3.0


def coin_cost_us(r: Record, hops: int, allowance: bool) -> float:
    """CPU microseconds on one core to clear one coin with `hops` links."""
    u = signature_unit_us(r)
    kernels = r.hash_to_g1_us + (hops + 2) * u
    if allowance:
        tokens = hops  # links 1..h-1 and the deposit each carry one token when h >= 1
        kernels += tokens * (r.hash_to_g1_us + 2 * u)
    return kernels * (r.engine_1t_us / r.kernels_1t_us)


def mean_cost_us(r: Record, w: Workload) -> float:
    total = sum(w.hops_mix.values())
    return sum(weight / total * coin_cost_us(r, h, w.allowance) for h, weight in w.hops_mix.items())


def efficiency(r: Record) -> float:
    """Per-core efficiency when adding cores (measured at r.threads)."""
    return min(1.0, r.thread_scaling / max(1, r.threads))


def throughput(r: Record, w: Workload, cores: int) -> float:
    """Coins per second `cores` cores clear."""
    per_core = 1e6 / mean_cost_us(r, w)
    return per_core * (1 if cores <= 1 else cores * efficiency(r))


def peak_rate(w: Workload) -> float:
    return w.coins_per_day / SECONDS_PER_DAY * w.peak_to_average


def cores_needed(r: Record, w: Workload) -> int:
    per_core = 1e6 / mean_cost_us(r, w) * efficiency(r)
    return max(1, math.ceil(peak_rate(w) / (per_core * w.utilisation)))


def mean_hops(w: Workload) -> float:
    total = sum(w.hops_mix.values())
    return sum(h * weight / total for h, weight in w.hops_mix.items())


def serials_per_epoch(w: Workload) -> float:
    tokens = mean_hops(w) if w.allowance else 0.0
    return w.coins_per_day * w.epoch_days * (1 + tokens)


def table_bytes(serials: float) -> int:
    slots = 2 ** math.ceil(math.log2(max(1024, serials * 4 / 3 + 1)))
    return slots * 40


def spent_set_ram_bytes(w: Workload) -> int:
    per_epoch = table_bytes(serials_per_epoch(w)) + 2 * serials_per_epoch(w)
    return int(per_epoch * w.retention_epochs)


def receipt_bytes(w: Workload) -> float:
    tokens = mean_hops(w) if w.allowance else 0.0
    return 98 + 32 * (mean_hops(w) + 1) + 36 * tokens


def disk_bytes(w: Workload, days: int) -> float:
    journal = receipt_bytes(w) * w.coins_per_day * days
    batches = w.record_bytes * w.coins_per_day * min(days, w.batch_retention_days)
    tables = table_bytes(serials_per_epoch(w)) * min(w.retention_epochs, math.ceil(days / w.epoch_days))
    return journal + batches + tables


def bottleneck(r: Record):
    """The stage that costs the most per coin, and its µs (None for records without stages)."""
    if not r.stages:
        return None
    name = max(r.stages, key=lambda k: r.stages[k])
    return name, r.stages[name]


def measured_points(r: Record) -> list:
    """(cores, coins/s) the record measured for one-hop coins: 1 thread and all threads."""
    one = 1e6 / r.engine_1t_us
    return [(1, one), (r.threads, one * r.thread_scaling)] if r.threads > 1 else [(1, one)]


def plan(r: Record, w: Workload) -> dict:
    cores = cores_needed(r, w)
    neck = bottleneck(r)
    return {
        "arch": r.arch,
        "cpu": r.cpu,
        "mean_coin_cost_us": mean_cost_us(r, w),
        "peak_coins_per_s": peak_rate(w),
        "cores": cores,
        "servers": math.ceil(cores / w.cores_per_server),
        "ram_spent_set_gib": spent_set_ram_bytes(w) / 2**30,
        "disk_per_day_gib": disk_bytes(w, 1) / 2**30,
        "disk_30_days_gib": disk_bytes(w, 30) / 2**30,
        "bottleneck_stage": f"{neck[0]} ({neck[1]:.1f} µs)" if neck else "n/a",
    }


def plots(r: Record, w: Workload, out_dir: str) -> list:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out_dir, exist_ok=True)
    paths = []
    cores = list(range(1, 65))
    fig, ax = plt.subplots(figsize=(7, 4))
    line = [throughput(r, w, c) for c in cores]
    ax.plot(cores, line, linestyle=":", label=f"extrapolated, workload mix ({r.arch})")
    points = measured_points(r)
    ax.scatter([p[0] for p in points], [p[1] for p in points], color="black", zorder=3,
               label=f"measured, one-hop coins ({r.cpu})")
    ax.axhline(peak_rate(w), color="red", linestyle="--", label="peak coins/s")
    # Log scale when the demand line would sit on the axis (or far above the curve).
    if log_scale(line, peak_rate(w)):
        ax.set_yscale("log")
    ax.set_xlabel("cores")
    ax.set_ylabel("coins per second")
    ax.set_title("Clearing throughput vs cores")
    ax.legend()
    p = os.path.join(out_dir, "throughput_vs_cores.png")
    fig.savefig(p, dpi=100, bbox_inches="tight")
    plt.close(fig)
    paths.append(p)
    days = list(range(1, 366))
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(days, [disk_bytes(w, d) / 2**30 for d in days])
    ax.set_xlabel("days")
    ax.set_ylabel("GiB")
    ax.set_title("Storage vs days (journal + batches + spent-set tables)")
    p = os.path.join(out_dir, "storage_vs_days.png")
    fig.savefig(p, dpi=100, bbox_inches="tight")
    plt.close(fig)
    paths.append(p)
    return paths


def log_scale(values: list, demand: float) -> bool:
    """Whether a linear axis would squash the demand line or the curve against the axis."""
    top = max(values)
    return demand > 0 and (demand < top / 50 or demand > top * 50)


@dataclass
class ClusterRecord:
    """The figures of one `scripts/cluster-bench.sh` run."""

    raw_bytes_per_coin: float
    seq_bytes_per_coin: float
    votes_bytes_per_coin: float
    single_machine_coins_per_s: float
    cores: int
    runs: list = field(default_factory=list)

    @staticmethod
    def from_json(doc: dict) -> "ClusterRecord":
        runs = doc.get("runs", [])
        seq = max((r["seq_bytes_per_coin"] for r in runs), default=0.0)
        votes = max((r["votes_bytes_per_coin"] for r in runs), default=0.0)
        return ClusterRecord(
            raw_bytes_per_coin=doc["raw_bytes_per_coin"],
            seq_bytes_per_coin=seq,
            votes_bytes_per_coin=votes,
            single_machine_coins_per_s=doc["single_machine_coins_per_s"],
            cores=doc["machine"]["cores"],
            runs=runs,
        )


@dataclass
class ClusterLimits:
    """Capacities the plan assumes (not measured here; replace with `nats bench` and
    `pgbench` figures of the target hardware)."""

    stream_mb_per_s: float = 200.0  # one 3-replica JetStream stream, file storage
    nic_mb_per_s: float = 1250.0  # 10 GbE
    pg_rows_per_s: float = 100_000.0  # one PostgreSQL primary, batched inserts
    owner_ram_gib: float = 64.0  # spent-set RAM one partition owner may hold
    replicas: int = 3


def cluster_plan(cr: ClusterRecord, w: Workload, limits: ClusterLimits, r: Record = None) -> dict:
    """Machines, stream and database load for the workload on the cluster."""
    peak = peak_rate(w)
    if r is not None:
        cores = cores_needed(r, w)
    else:
        per_core = cr.single_machine_coins_per_s / max(cr.cores, 1)
        cores = math.ceil(peak / (per_core * w.utilisation))
    work_mb = peak * cr.raw_bytes_per_coin / 1e6
    seq_mb = peak * (cr.seq_bytes_per_coin + cr.votes_bytes_per_coin) / 1e6
    partitions = max(1, math.ceil(spent_set_ram_bytes(w) / 2**30 / limits.owner_ram_gib))
    pg_rows = peak * 2
    demand = {
        # MC_WORK shards by subject over as many streams as it needs: no single limit.
        "one MC_SEQ stream (the global order)": seq_mb / limits.stream_mb_per_s,
        "owner NIC (every owner reads all of MC_SEQ)": seq_mb / limits.nic_mb_per_s,
        "one PostgreSQL primary": pg_rows / limits.pg_rows_per_s,
    }
    neck = max(demand, key=demand.get)
    replicated = (work_mb + seq_mb) * limits.replicas
    return {
        "peak_coins_per_s": peak,
        "worker_cores": cores,
        "worker_servers": math.ceil(cores / w.cores_per_server),
        "partitions": partitions,
        "work_stream_mb_s": work_mb,
        "work_streams": max(1, math.ceil(work_mb / limits.stream_mb_per_s)),
        "seq_stream_mb_s": seq_mb,
        "nats_nodes": max(3, limits.replicas * math.ceil(replicated / limits.replicas / limits.nic_mb_per_s)),
        "pg_rows_per_s": pg_rows,
        "pg_primaries": max(1, math.ceil(pg_rows / limits.pg_rows_per_s)),
        "bottleneck": f"{neck} at {demand[neck]:.2f}x its capacity",
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--record", action="append", required=True, help="bench record JSON (repeatable)")
    ap.add_argument("--coins-per-day", type=float, required=True)
    ap.add_argument("--peak-to-average", type=float, default=4.0)
    ap.add_argument("--hops-mix", default="1:80,2:15,3:5")
    ap.add_argument("--allowance", action="store_true")
    ap.add_argument("--retention-epochs", type=int, default=3)
    ap.add_argument("--epoch-days", type=int, default=30)
    ap.add_argument("--cores-per-server", type=int, default=16)
    ap.add_argument("--plots", help="directory for PNG plots")
    ap.add_argument("--cluster", help="cluster bench record (scripts/cluster-bench.sh): add the multi-machine plan")
    a = ap.parse_args(argv)
    w = Workload(
        coins_per_day=a.coins_per_day,
        peak_to_average=a.peak_to_average,
        hops_mix=parse_hops_mix(a.hops_mix),
        allowance=a.allowance,
        retention_epochs=a.retention_epochs,
        epoch_days=a.epoch_days,
        cores_per_server=a.cores_per_server,
    )
    rows = []
    for path in a.record:
        r = Record.from_json(json.load(open(path)))
        rows.append(plan(r, w))
        if a.plots:
            for p in plots(r, w, os.path.join(a.plots, r.arch)):
                print(f"wrote {p}", file=sys.stderr)
    cols = ["arch", "mean_coin_cost_us", "peak_coins_per_s", "cores", "servers", "ram_spent_set_gib", "disk_per_day_gib", "disk_30_days_gib", "bottleneck_stage"]
    print(" | ".join(cols))
    for row in rows:
        print(" | ".join(f"{row[c]:.2f}" if isinstance(row[c], float) else str(row[c]) for c in cols))
    if a.cluster:
        with open(a.cluster) as f:
            cr = ClusterRecord.from_json(json.load(f))
        with open(a.record[0]) as f:
            r = Record.from_json(json.load(f))
        cp = cluster_plan(cr, w, ClusterLimits(), r)
        print()
        print("cluster (assumed capacities: scripts/capacity.py ClusterLimits)")
        for k, v in cp.items():
            print(f"  {k:<20} {v:.1f}" if isinstance(v, float) else f"  {k:<20} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

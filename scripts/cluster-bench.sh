#!/usr/bin/env bash
# Cluster throughput on this machine: one generated day cleared by `microcash clear` (the
# single-machine baseline, same run) and by the cluster with 1, 2, … workers; stream bytes
# per coin from the NATS servers' JetStream report. Writes one JSON record for
# `scripts/capacity.py --cluster`.
#
#   scripts/cluster-bench.sh [--coins N] [--workers 1,2] [--partitions P] [--out FILE]
#
# Everything (3 nats nodes, PostgreSQL, workers, owners, the baseline) shares this
# machine's cores, so the figures are a floor: what matters for projection is the per-core
# verification rate and the bytes per coin, not the aggregate here.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
COINS=20000 WORKER_SET=1,2 PARTITIONS=4 OUT=""
while [[ $# -gt 0 ]]; do
    case $1 in
        --coins) COINS=$2; shift 2 ;;
        --workers) WORKER_SET=$2; shift 2 ;;
        --partitions) PARTITIONS=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
ARCH=$(uname -m)
OUT=${OUT:-$ROOT/benches/record/$ARCH/cluster-$(date -u +%Y-%m-%dT%H%M%SZ).json}
export MICROCASH_CLUSTER_DIR=${MICROCASH_CLUSTER_DIR:-/tmp/microcash-bench-$$}
WORK=$(mktemp -d /tmp/microcash-bench-work.XXXXXX)
BIN=$ROOT/target/release/microcash
UP=$ROOT/scripts/cluster-up.sh
trap '"$UP" down > /dev/null || true; rm -rf "$WORK"' EXIT
(cd "$ROOT" && cargo build --release --bin microcash 2>&1 | tail -1)

"$BIN" dataset gen --coins "$COINS" --seed 11 --allowance --out "$WORK/day.mcb" > /dev/null
DAY=$WORK/day.mcb
[[ -f $DAY ]] || DAY=$WORK/day-day1.mcb

echo "== single machine ($COINS coins)"
"$BIN" clear "$DAY" --store "$WORK/single" --json 2> /dev/null | tail -1 > "$WORK/single.json"

runs=()
IFS=, read -ra counts <<< "$WORKER_SET"
for w in "${counts[@]}"; do
    echo "== cluster: $w workers x $PARTITIONS partitions"
    "$UP" up --workers "$w" --partitions "$PARTITIONS" --params "$WORK/day.params" > /dev/null
    # shellcheck disable=SC1091
    . "$MICROCASH_CLUSTER_DIR/env"
    "$BIN" cluster submit "$DAY" --wait 900 > "$WORK/cluster-$w.json"
    curl -sf "http://127.0.0.1:14422/jsz?streams=true" > "$WORK/jsz-$w.json"
    "$UP" down > /dev/null
    runs+=("$w")
done

python3 - "$WORK" "$COINS" "$PARTITIONS" "$OUT" "$(nproc)" "${runs[@]}" <<'EOF'
import json, os, platform, sys
work, coins, partitions, out, cores, *runs = sys.argv[1:]
coins, partitions, cores = int(coins), int(partitions), int(cores)
single = json.load(open(f"{work}/single.json"))

def stream_bytes(jsz):
    sizes = {}
    for acct in jsz.get("account_details", []):
        for s in acct.get("stream_detail", []):
            sizes[s["name"]] = s["state"]["bytes"]
    return sizes

results = []
for w in runs:
    s = json.load(open(f"{work}/cluster-{w}.json"))["summary"]
    sizes = stream_bytes(json.load(open(f"{work}/jsz-{w}.json")))
    results.append({
        "workers": int(w),
        "coins_per_s": s["records"] / s["elapsed_s"],
        "elapsed_s": s["elapsed_s"],
        # MC_WORK is a work queue: acked chunks are gone, so its bytes per coin are the
        # raw records' (the batch file's size over its records).
        "seq_bytes_per_coin": sizes.get("MC_SEQ", 0) / coins,
        "votes_bytes_per_coin": sizes.get("MC_VOTES", 0) / coins,
    })
doc = {
    "kind": "cluster",
    "machine": {"arch": platform.machine(), "cores": cores, "cpu": platform.processor() or "unknown"},
    "coins": coins,
    "partitions": partitions,
    "raw_bytes_per_coin": os.path.getsize(f"{work}/day.mcb" if os.path.exists(f"{work}/day.mcb") else f"{work}/day-day1.mcb") / coins,
    "single_machine_coins_per_s": single["coins_per_s"],
    "runs": results,
}
os.makedirs(os.path.dirname(out), exist_ok=True)
with open(out, "w") as f:
    json.dump(doc, f, indent=2)
print(json.dumps(doc, indent=2))
EOF
echo "wrote $OUT"

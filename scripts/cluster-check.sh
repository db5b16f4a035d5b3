#!/usr/bin/env bash
# End-to-end check of the cluster against the single machine, from a fresh checkout:
# generate two days, clear them with `microcash clear` on one store, start a cluster
# (scripts/cluster-up.sh: 3 nats nodes, PostgreSQL, 2 workers x 4 partitions), submit the
# same days, and compare every verdict (receipt ids aside: journal offsets on one machine,
# content hashes in the cluster) and the credits per account. Exits 0 only on equality.
#
#   scripts/cluster-check.sh [--kill] [--seed N] [--coins N] [--workers N] [--partitions P] [--keep]
#
# --kill: during each day, kill -9 one nats node, one worker and one partition owner at
# seeded random moments and restart them (the owner as a new process, which must wait for
# the dead one's lease to expire). The verdicts and credits must still equal the single
# machine's, and PostgreSQL must hold one receipt per fresh acceptance (its UNIQUE
# (epoch, serial) refuses a second one).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
KILL=0 SEED=1 COINS=6000 WORKERS=2 PARTITIONS=4 KEEP=0
while [[ $# -gt 0 ]]; do
    case $1 in
        --kill) KILL=1; shift ;;
        --seed) SEED=$2; shift 2 ;;
        --coins) COINS=$2; shift 2 ;;
        --workers) WORKERS=$2; shift 2 ;;
        --partitions) PARTITIONS=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

export MICROCASH_CLUSTER_DIR=${MICROCASH_CLUSTER_DIR:-/tmp/microcash-check-$$}
WORK=$(mktemp -d /tmp/microcash-check-work.XXXXXX)
BIN=$ROOT/target/release/microcash
UP=$ROOT/scripts/cluster-up.sh
cleanup() {
    if [[ $KEEP == 1 ]]; then
        echo "kept: cluster in $MICROCASH_CLUSTER_DIR, files in $WORK"
    else
        "$UP" down > /dev/null || true
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

(cd "$ROOT" && cargo build --release --bin microcash 2>&1 | tail -1)

echo "== generating 2 days of $COINS coins (seed $SEED)"
"$BIN" dataset gen --coins "$COINS" --days 2 --seed "$SEED" --double-spend-rate 0.02 \
    --invalid-rate 0.02 --allowance --out "$WORK/day.mcb" > "$WORK/gen.json"

echo "== single machine"
for d in 1 2; do
    "$BIN" clear "$WORK/day-day$d.mcb" --store "$WORK/single" --verdicts "$WORK/single-$d.jsonl" \
        --json 2> /dev/null | tail -1 > "$WORK/single-$d.json"
done

echo "== cluster: $WORKERS workers x $PARTITIONS partitions"
"$UP" up --workers "$WORKERS" --partitions "$PARTITIONS" --params "$WORK/day.params"
# shellcheck disable=SC1091
. "$MICROCASH_CLUSTER_DIR/env"

# One seeded fault plan per day: which node, worker and owner die, and when.
faults() { # day
    python3 - "$SEED" "$1" "$WORKERS" "$PARTITIONS" <<'EOF'
import random, sys
seed, day, workers, partitions = (int(a) for a in sys.argv[1:])
r = random.Random(seed * 1000 + day)
print(round(r.uniform(0.2, 2.0), 2), r.randrange(3),
      round(r.uniform(0.2, 2.5), 2), r.randrange(workers),
      round(r.uniform(0.2, 3.0), 2), r.randrange(partitions))
EOF
}

inject() { # day — runs in the background during the day's submission
    read -r t_nats nats t_worker worker t_part part < <(faults "$1")
    (sleep "$t_nats"; echo "   kill -9 nats-$nats at +${t_nats}s"; "$UP" kill nats "$nats"
     sleep 2; "$UP" start nats "$nats") &
    (sleep "$t_worker"; echo "   kill -9 worker-$worker at +${t_worker}s"; "$UP" kill worker "$worker"
     sleep 1; "$UP" start worker "$worker") &
    (sleep "$t_part"; echo "   kill -9 partition-$part at +${t_part}s"; "$UP" kill partition "$part"
     sleep 1; "$UP" start partition "$part") &
    wait
}

# An upload cut short before its announce (day 2 cut into chunks of 500): nothing may wait
# for it, and the real submission of day 2 below, cut another way, must not mix with it.
"$BIN" cluster submit "$WORK/day-day2.mcb" --chunk 500 --chunks-only > /dev/null

for d in 1 2; do
    echo "-- day $d"
    if [[ $KILL == 1 ]]; then inject "$d" & injector=$!; fi
    "$BIN" cluster submit "$WORK/day-day$d.mcb" --wait 600 --verdicts "$WORK/cluster-$d.jsonl" \
        > "$WORK/cluster-$d.json"
    if [[ $KILL == 1 ]]; then wait "$injector"; fi
    python3 -c "import json,sys; s=json.load(open(sys.argv[1]))['summary']; print('   %d records, %d accepted, %.2f s' % (s['records'], s['accepted'], s['elapsed_s']))" "$WORK/cluster-$d.json"
done

# The same file again is the same batch: the first submission's number and verdicts.
"$BIN" cluster submit "$WORK/day-day1.mcb" --wait 60 --verdicts "$WORK/again-1.jsonl" > "$WORK/again-1.json"
python3 -c "import json,sys; a,b=(json.load(open(p))['batch_seq'] for p in sys.argv[1:]); sys.exit(a != b)" \
    "$WORK/cluster-1.json" "$WORK/again-1.json"
cmp "$WORK/cluster-1.jsonl" "$WORK/again-1.jsonl"

echo "== fencing"
# A second vote on one chunk and partition is refused by the stream itself.
(cd "$ROOT" && MICROCASH_TEST_NATS=$MICROCASH_NATS cargo test --release --test cluster \
    a_second_vote_for_one_chunk_and_partition_is_refused_by_the_stream 2>&1 | grep -E "^test |test result")

echo "== metrics"
ports=()
for ((i = 0; i < WORKERS; i++)); do ports+=($((19100 + i))); done
for ((p = 0; p < PARTITIONS; p++)); do ports+=($((19150 + p))); done
for port in "${ports[@]}"; do
    curl -sf "http://127.0.0.1:$port/metrics" > "$WORK/metrics-$port.txt"
    if command -v promtool > /dev/null; then promtool check metrics < "$WORK/metrics-$port.txt"; fi
done
python3 - "$WORK" "$KILL" "$((2 * COINS))" "${ports[@]}" <<'EOF2'
import re, sys
work, kill, records, *ports = sys.argv[1:]
text = {p: open(f"{work}/metrics-{p}.txt").read() for p in ports}
def values(name):
    return [float(m.group(1)) for t in text.values()
            for m in re.finditer(r"^" + name + r"\{[^}]*\} (\S+)$", t, re.M)]
up, pending, verified = values("microcash_cluster_partition_up"), values("microcash_cluster_pending_chunks"), values("microcash_cluster_records_verified_total")
bad = []
if up.count(1.0) < 1:
    bad.append(f"no owner reports its lease: {up}")
if kill == "0":
    # Without faults every owner ran the whole days and the workers verified every record
    # (some more than once only after a fault).
    if len(up) != len(pending) or any(v != 0 for v in pending):
        bad.append(f"owners with chunks pending: {pending}")
    if sum(verified) < int(records):
        bad.append(f"workers verified {sum(verified)} of {records} records")
print("metrics: " + ("; ".join(bad) if bad else "owners up, no chunk pending, every record verified"))
sys.exit(1 if bad else 0)
EOF2

echo "== comparing"
RECEIPTS=$(psql "$MICROCASH_POSTGRES" -tAc "SELECT count(*) FROM mc_receipts")
python3 - "$WORK" "$RECEIPTS" <<'EOF'
import json, sys
work, receipts = sys.argv[1], int(sys.argv[2])

def verdicts(path):
    out = {}
    for line in open(path):
        v = json.loads(line)
        v.pop("receipt", None)
        if "evidence" in v:
            v["evidence"].pop("first_receipt", None)
        out[v["record"]] = v
    return out

bad = 0
fresh = 0
for d in (1, 2):
    single = verdicts(f"{work}/single-{d}.jsonl")
    cluster = verdicts(f"{work}/cluster-{d}.jsonl")
    diff = [r for r in single if single[r] != cluster.get(r)] + [r for r in cluster if r not in single]
    s = json.load(open(f"{work}/single-{d}.json"))
    c = json.load(open(f"{work}/cluster-{d}.json"))["summary"]
    fresh += s["accepted"] - s["replayed"]
    credits_equal = s["credited_by_account"] == c["credited_by_account"]
    print(f"day {d}: {len(single)} records, {len(diff)} verdicts differ, credits {'equal' if credits_equal else 'DIFFER'}")
    for r in diff[:5]:
        print("  single: ", single.get(r))
        print("  cluster:", cluster.get(r))
    bad += len(diff) + (not credits_equal)
print(f"receipts in PostgreSQL: {receipts}, fresh acceptances on one machine: {fresh}")
bad += receipts != fresh
sys.exit(1 if bad else 0)
EOF
echo "cluster-check: verdicts and credits equal the single machine$([[ $KILL == 1 ]] && echo ', through the faults')"

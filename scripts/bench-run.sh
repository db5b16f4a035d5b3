#!/usr/bin/env bash
# Runs `microcash bench --json` and stores it with the machine's facts in
# benches/record/<arch>/<date>.json, for scripts/capacity.py.
#
#   scripts/bench-run.sh [--coins N] [--features peer-baselines]
set -euo pipefail
cd "$(dirname "$0")/.."
coins=8192
features=()
while [ $# -gt 0 ]; do
  case "$1" in
    --coins) coins="$2"; shift 2 ;;
    --features) features=(--features "$2"); shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
arch=$(uname -m)
out="benches/record/$arch/$(date -u +%Y-%m-%dT%H%M%SZ).json"
mkdir -p "$(dirname "$out")"
cargo build --release --quiet "${features[@]}"
report=$(./target/release/microcash bench --coins "$coins" --json | tail -n 1)
isa=$(grep -m1 -E '^(flags|Features)' /proc/cpuinfo | cut -d: -f2 | tr ' ' '\n' \
      | grep -E '^(adx|bmi2|avx2|avx512f|sha_ni|asimd|sha2|pmull|sve)$' | sort | tr '\n' ' ' || true)
python3 - "$out" "$report" "$isa" <<'PY'
import json, os, platform, sys
out, report, isa = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3].split()
report["machine"]["isa"] = isa
report["machine"]["kernel"] = platform.release()
report["machine"]["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
json.dump(report, open(out, "w"), indent=2)
print(out)
PY

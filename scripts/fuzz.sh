#!/usr/bin/env bash
# Runs the cargo-fuzz targets under fuzz/ (nightly toolchain, AddressSanitizer).
#
#   scripts/fuzz.sh --smoke [SECONDS] [TARGET...]  each target for SECONDS (default 10) after
#                                                  replaying its committed corpus (CI)
#   scripts/fuzz.sh --long [RUNS] [TARGET...]      each target for RUNS executions (default
#                                                  1 000 000), growing fuzz/corpus/<target>/
#   scripts/fuzz.sh --cmin [TARGET...]             minimise the committed corpora
#
# Exits non-zero on the first crash, leak or timeout; the reproducer is in
# fuzz/artifacts/<target>/ (`cargo +nightly fuzz run <target> <file>` replays it).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

mode=${1:---smoke}
shift || true
case "$mode" in
  --smoke) amount=${1:-10} ;;
  --long) amount=${1:-1000000} ;;
  --cmin) amount= ;;
  *) echo "usage: $0 --smoke [SECONDS] | --long [RUNS] | --cmin [TARGET...]" >&2; exit 2 ;;
esac
if [[ -n "$amount" && "${1:-}" =~ ^[0-9]+$ ]]; then shift; fi
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

# One -O (release + debug assertions) build for every target.
cargo +nightly fuzz build -O
for t in "${targets[@]}"; do
  case "$mode" in
    --smoke)
      # A scratch corpus first: new inputs land there, the committed corpus is only read.
      scratch=$(mktemp -d)
      echo "== $t: corpus replay + ${amount}s"
      log="$scratch.log"
      status=0
      cargo +nightly fuzz run -O "$t" "$scratch" "corpus/$t" -- \
        -max_total_time="$amount" -rss_limit_mb=4096 -timeout=60 -print_final_stats=1 \
        > "$log" 2>&1 || status=$?
      grep -E "^(#[0-9]+[[:space:]]+(INITED|DONE)|stat::number_of_executed_units)" "$log" || true
      rm -rf "$scratch"
      if [[ $status -ne 0 ]]; then
        tail -n 60 "$log"
        echo "$t FAILED (reproducer in fuzz/artifacts/$t/)"
        exit 1
      fi
      rm -f "$log"
      ;;
    --long)
      echo "== $t: $amount runs"
      cargo +nightly fuzz run -O "$t" -- -runs="$amount" -rss_limit_mb=4096 -timeout=60
      ;;
    --cmin)
      cargo +nightly fuzz cmin -O "$t"
      ;;
  esac
done

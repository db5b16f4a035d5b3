#!/usr/bin/env bash
# The README walkthrough on local files: issuer, accounts, three wallets, a chained payment,
# deposits, and a refused double spend. Usage: scripts/walkthrough.sh [workdir]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
mc="$root/target/release/microcash"
work="${1:-$(mktemp -d)}"
mkdir -p "$work" && cd "$work"
export MICROCASH_ISSUER="$work/issuer"
rm -rf issuer ./*.json ./*.bin

step() { printf '\n\033[1m$ microcash %s\033[0m\n' "$*"; "$mc" "$@"; }

step issuer init
step account create alice
step account fund alice 5000
step account create shop --merchant
step account create bob-bank
step wallet create --wallet a.json
B=$("$mc" wallet create --wallet b.json); echo "B's address: $B"
C=$("$mc" wallet create --wallet c.json); echo "C's address: $C"
step wallet withdraw --wallet a.json --account alice --amount 1000
step wallet pay --wallet a.json --to "$B" --amount 300 --out p1.bin
step wallet receive --wallet b.json p1.bin
step wallet register --wallet b.json --identity "Bob"
step wallet allowance --wallet b.json --amount 300
step wallet pay --wallet b.json --to "$C" --amount 100 --out p2.bin
step wallet receive --wallet c.json p2.bin
cp b.json b-before-deposit.json
step wallet register --wallet c.json --identity "Carol"
step wallet allowance --wallet c.json --amount 100
step wallet deposit --wallet c.json --account shop
step wallet deposit --wallet b.json --account bob-bank
step account show alice
step account show shop
step account show bob-bank
step wallet balance --wallet a.json
echo; echo "Depositing B's coins again from a copy of its wallet (must be refused):"
if "$mc" wallet deposit --wallet b-before-deposit.json --account shop; then
  echo "UNEXPECTED: double spend accepted" >&2; exit 1
fi
echo "refused, as it must be."

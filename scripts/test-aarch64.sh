#!/usr/bin/env bash
# Cross-builds for aarch64-unknown-linux-gnu and runs the tests under qemu-user, so the
# NEON and portable kernel paths are exercised, not just compiled.
#
#   scripts/test-aarch64.sh            # the kernels crate (bloom NEON, BLS, Pallas, bisection)
#   WORKSPACE=1 scripts/test-aarch64.sh   # the whole workspace (slow under emulation)
#
# Needs: rustup target aarch64-unknown-linux-gnu, Debian's gcc-aarch64-linux-gnu (linker and
# C compiler for blst) and qemu-user. Installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
target=aarch64-unknown-linux-gnu
rustup target list --installed | grep -qx "$target" || rustup target add "$target"
if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
  apt-get install -y gcc-aarch64-linux-gnu qemu-user qemu-user-binfmt
fi
# Tests that spawn the `microcash` binary (CLI walkthrough, kill tests, server) need the
# kernel to run an aarch64 executable by itself: register qemu with binfmt_misc (root;
# skipped where the host already has it, e.g. a real aarch64 machine).
if [ "$(uname -m)" != aarch64 ] && [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  [ -e /proc/sys/fs/binfmt_misc/register ] ||
    mount binfmt_misc -t binfmt_misc /proc/sys/fs/binfmt_misc
  cat /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register
fi
export QEMU_LD_PREFIX=/usr/aarch64-linux-gnu
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
if [ "${WORKSPACE:-0}" = 1 ]; then
  # pasta_curves' asm is x86-64 only: the portable build path.
  cargo test --release --workspace --no-default-features --target "$target"
else
  cargo test --release -p microcash-kernels --target "$target"
fi

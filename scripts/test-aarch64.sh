#!/usr/bin/env bash
# Lints the CPU backend for aarch64 Linux and runs its kernels' unit tests (chronos2-candle-cpu, every kernel against a naive reference on
# every instruction-set path, NEON included) built for aarch64 Linux, under qemu user emulation.
# This is how the NEON kernels are tested on an x86_64 machine; it checks results, not speed.
#
# Needs (installed with apt-get when missing): qemu-user, gcc-aarch64-linux-gnu (linker) and the
# arm64 libc; and the target's standard library (rustup). Builds into target/aarch64.
set -euo pipefail
cd "$(dirname "$0")/.."
PKGS=(qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    echo "test-aarch64: installing ${missing[*]} (apt-get)" >&2
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
rustup target add aarch64-unknown-linux-gnu
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
cargo clippy -p chronos2-candle-cpu --all-targets --target aarch64-unknown-linux-gnu --target-dir target/aarch64 -- -D warnings
cargo test -p chronos2-candle-cpu --lib --target aarch64-unknown-linux-gnu --target-dir target/aarch64

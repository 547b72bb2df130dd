#!/usr/bin/env bash
# Type-checks the macOS (Apple silicon) configuration, Accelerate on, of every crate without a C++
# build: chronos2-core, chronos2-candle-cpu and the chronos2 facade with its CLI (all targets).
# chronos2-mlx's backend (feature `mlx`) compiles MLX's C++ through mlx-sys and needs the Apple
# SDK, so it is not checked here.
#
# Needs: the target's standard library (rustup), and, because `cargo check` still runs build
# scripts and ring (rustls, under hf-hub's HTTP client) compiles C and assembly for the target in
# its own, a C compiler for Apple targets: zig's (PyPI `ziglang`), in a venv under target/.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add aarch64-apple-darwin
venv=target/ziglang-venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "ziglang==0.17.1"
fi
CHRONOS2_ZIG="$("$venv/bin/python" -c 'import ziglang, os; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))')"
export CHRONOS2_ZIG
export CC_aarch64_apple_darwin="$PWD/scripts/zig-cc-aarch64-macos"
cargo check --target aarch64-apple-darwin -p chronos2-core -p chronos2-candle-cpu -p chronos2 -p chronos2-cli \
    --features chronos2/accelerate --all-targets

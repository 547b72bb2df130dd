#!/usr/bin/env bash
# Prepares a Linux machine to build and test the MLX backend (crate chronos2-mlx, feature `mlx`)
# on MLX's CPU backend. Idempotent: re-running it only redoes what is missing or stale.
#
#   eval "$(scripts/prepare-mlx-linux.sh)"      # progress goes to stderr, `export` lines to stdout
#   CARGO_TARGET_DIR=target/mlx cargo test -p chronos2-mlx --features mlx --config "$CHRONOS2_MLX_CARGO_CONFIG"
#
# How it works. macOS builds use crates.io mlx-rs 0.33.0 / mlx-sys 0.7.0 untouched (Metal). The
# stock mlx-sys build script cannot work on Linux (it downloads MLX through CMake and links Apple
# frameworks), but the crate's Rust side is only `include!($OUT_DIR/bindings.rs)`. So, on Linux,
# the stock crate stays (same Cargo.lock as macOS, no [patch]) and its build script is *overridden*
# (cargo's `[target.<triple>.mlx]` links override) by the config file this script writes:
#   1. apt: libclang-dev (bindgen), libopenblas0-pthread (fast BLAS for MLX's CPU backend);
#   2. pip: the mlx-cpu==0.32.2 wheel (prebuilt libmlx.so + headers), extracted, with its bundled
#      reference BLAS swapped for OpenBLAS (sgemm ~20x faster);
#   3. cargo: the mlx-c 0.7.0 sources, from the crates.io mlx-sys 0.7.0 package (not vendored);
#   4. crates/mlx-sys-linux (a small tool) compiles mlx-c against that MLX into libmlxc.a and
#      generates bindings.rs exactly as mlx-sys's build script would (plus Linux compat shims);
#   5. writes $PREFIX/cargo-config.toml: the override (OUT_DIR -> those bindings, link libmlxc.a,
#      libmlx.so), an rpath to libmlx.so, and `--cfg chronos2_mlx_linux`, which is what makes
#      chronos2-mlx depend on mlx-rs on Linux at all.
#
# Environment: CHRONOS2_MLX_PREFIX (default <repo>/target/mlx-prefix) where everything goes;
# CARGO_TARGET_DIR (default <repo>/target/mlx) for building the tool; PYTHON (default python3).
set -euo pipefail

MLX_VERSION=0.32.2           # what mlx-c 0.7.0 (mlx-sys 0.7.0, mlx-rs 0.33.0) is written against
MLX_SYS_VERSION=0.7.0
WHEEL=mlx-cpu

log() { echo "prepare-mlx-linux: $*" >&2; }
die() { echo "prepare-mlx-linux: error: $*" >&2; exit 1; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="${CHRONOS2_MLX_PREFIX:-$ROOT/target/mlx-prefix}"
PYTHON="${PYTHON:-python3}"
TOOL_TARGET="${CARGO_TARGET_DIR:-$ROOT/target/mlx}"
[ "$(uname -s)" = Linux ] || die "this script is for Linux; on macOS build chronos2-mlx with stock mlx-rs (cargo test -p chronos2-mlx --features mlx)"
mkdir -p "$PREFIX"
PREFIX="$(cd "$PREFIX" && pwd)"

# --- 1. system packages ------------------------------------------------------------------------
APT_PKGS=(libclang-dev libopenblas0-pthread)
missing=()
for p in "${APT_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get: install libclang and OpenBLAS yourself"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    log "installing ${missing[*]} (apt-get)"
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
OPENBLAS="$(dpkg -L libopenblas0-pthread | grep '/openblas-pthread/libblas\.so\.3$' | head -1)"
[ -n "$OPENBLAS" ] && [ -e "$OPENBLAS" ] || die "libopenblas0-pthread is installed but its libblas.so.3 was not found"

# --- 2. MLX from the PyPI wheel ----------------------------------------------------------------
MLX_DIR="$PREFIX/wheel/mlx"
mlx_version_of() {
    awk '/#define MLX_VERSION_(MAJOR|MINOR|PATCH) /{v[$2]=$3} END{print v["MLX_VERSION_MAJOR"]"."v["MLX_VERSION_MINOR"]"."v["MLX_VERSION_PATCH"]}' "$1/include/mlx/version.h" 2>/dev/null
}
if [ ! -f "$MLX_DIR/lib/libmlx.so" ] || [ "$(mlx_version_of "$MLX_DIR")" != "$MLX_VERSION" ]; then
    command -v "$PYTHON" >/dev/null || die "$PYTHON not found (needed to download the $WHEEL wheel with pip)"
    log "downloading $WHEEL==$MLX_VERSION (pip)"
    mkdir -p "$PREFIX/dl"
    "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: "$WHEEL==$MLX_VERSION" -d "$PREFIX/dl" >&2 ||
        die "pip download $WHEEL==$MLX_VERSION failed"
    whl="$(ls "$PREFIX"/dl/mlx_cpu-"$MLX_VERSION"-*.whl 2>/dev/null | head -1)"
    [ -n "$whl" ] || die "no mlx_cpu-$MLX_VERSION wheel in $PREFIX/dl"
    rm -rf "$PREFIX/wheel.tmp" "$PREFIX/wheel"
    "$PYTHON" -m zipfile -e "$whl" "$PREFIX/wheel.tmp"
    mv "$PREFIX/wheel.tmp" "$PREFIX/wheel"
    [ "$(mlx_version_of "$MLX_DIR")" = "$MLX_VERSION" ] || die "the wheel holds no MLX $MLX_VERSION at $MLX_DIR"
fi

# The wheel's libmlx.so loads its bundled reference BLAS (libblas-<hash>.so.*) through
# RPATH $ORIGIN/../../mlx_cpu.libs; point that name at OpenBLAS instead (same CBLAS/BLAS ABI).
# The original is kept as *.reference.
found_blas=0
for f in "$PREFIX"/wheel/mlx_cpu.libs/libblas-*.so*; do
    case "$f" in *.reference) continue ;; esac
    [ -e "$f" ] || [ -L "$f" ] || continue
    found_blas=1
    if [ ! -L "$f" ]; then
        mv "$f" "$f.reference"
    fi
    if [ "$(readlink "$f")" != "$OPENBLAS" ]; then
        ln -sfn "$OPENBLAS" "$f"
        log "MLX BLAS -> $OPENBLAS"
    fi
done
[ "$found_blas" = 1 ] || die "no libblas-*.so* in $PREFIX/wheel/mlx_cpu.libs (unexpected wheel layout)"

# --- 3. mlx-c sources (shipped inside the crates.io mlx-sys crate) -----------------------------
# `cargo metadata` downloads the workspace's packages (chronos2-mlx -> mlx-rs -> mlx-sys) into
# the cargo registry cache and tells where mlx-sys was unpacked.
log "locating mlx-sys $MLX_SYS_VERSION sources (cargo metadata)"
MLX_SYS_MANIFEST="$(cd "$ROOT" && cargo metadata --format-version 1 --manifest-path "$ROOT/Cargo.toml" --features chronos2-mlx/mlx |
    "$PYTHON" -c 'import json,sys; v=sys.argv[1]; m=json.load(sys.stdin); print(next((p["manifest_path"] for p in m["packages"] if p["name"]=="mlx-sys" and p["version"]==v), ""))' "$MLX_SYS_VERSION")" ||
    die "cargo metadata failed"
[ -n "$MLX_SYS_MANIFEST" ] || die "mlx-sys $MLX_SYS_VERSION is not in the workspace's dependency graph (is crates/chronos2-mlx a workspace member depending on mlx-rs =0.33.0?)"
MLX_C_SRC="$(dirname "$MLX_SYS_MANIFEST")/src/mlx-c"
[ -f "$MLX_C_SRC/mlx/c/mlx.h" ] || die "no mlx-c sources at $MLX_C_SRC"

# --- 4. libmlxc.a + bindings.rs ----------------------------------------------------------------
log "building crates/mlx-sys-linux (target dir $TOOL_TARGET)"
CARGO_TARGET_DIR="$TOOL_TARGET" cargo build --quiet --release --locked \
    --manifest-path "$ROOT/crates/mlx-sys-linux/Cargo.toml" >&2
"$TOOL_TARGET/release/mlx-sys-linux" --mlx-dir "$MLX_DIR" --mlx-c "$MLX_C_SRC" --out "$PREFIX/mlx-sys" >&2

# --- 5. cargo config ---------------------------------------------------------------------------
HOST="$(rustc -vV | sed -n 's/^host: //p')"
CONFIG="$PREFIX/cargo-config.toml"
new_config="$(cat <<EOF
# Generated by scripts/prepare-mlx-linux.sh; pass it to cargo with --config on Linux only.
# Links override for crates.io mlx-sys $MLX_SYS_VERSION (links = "mlx"): its build script is not run;
# its bindings and native libraries come from $PREFIX/mlx-sys.
[target.$HOST.mlx]
rustc-link-search = ["native=$PREFIX/mlx-sys/lib", "native=$MLX_DIR/lib"]
rustc-link-lib = ["static=mlxc", "dylib=mlx", "dylib=stdc++"]
rustc-env = { OUT_DIR = "$PREFIX/mlx-sys/out" }
include = "$MLX_DIR/include:$MLX_C_SRC"
version = "$MLX_VERSION"

[target.$HOST]
# chronos2_mlx_linux: enables chronos2-mlx's mlx-rs dependency on Linux. rpath: find libmlx.so at
# run time. (A RUSTFLAGS environment variable replaces these: add both flags to it if you set it.)
rustflags = ["--cfg", "chronos2_mlx_linux", "-C", "link-arg=-Wl,-rpath,$MLX_DIR/lib"]

[build]
# The same for rustdoc (doctests, cargo doc); RUSTDOCFLAGS replaces it.
rustdocflags = ["--cfg", "chronos2_mlx_linux", "-C", "link-arg=-Wl,-rpath,$MLX_DIR/lib"]
EOF
)"
if [ ! -f "$CONFIG" ] || [ "$(cat "$CONFIG")" != "$new_config" ]; then
    printf '%s\n' "$new_config" >"$CONFIG"
    log "wrote $CONFIG"
fi

log "ready. Build/test the MLX backend with:"
log "  CARGO_TARGET_DIR=target/mlx cargo test -p chronos2-mlx --features mlx --config $CONFIG"
cat <<EOF
export MLX_DIR="$MLX_DIR"
export MLX_C_SRC="$MLX_C_SRC"
export CHRONOS2_MLX_CARGO_CONFIG="$CONFIG"
EOF

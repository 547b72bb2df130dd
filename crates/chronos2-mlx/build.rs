//! One name for "the MLX backend is built here": `cfg(mlx_backend)`, set when the feature `mlx`
//! is on and MLX builds for this target — Apple silicon (stock `mlx-rs`), or Linux with the cargo
//! config of scripts/prepare-mlx-linux.sh (which passes `--cfg chronos2_mlx_linux`). The crate and
//! its tests write `#[cfg(mlx_backend)]` instead of the predicate.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(mlx_backend)");
    let feature = std::env::var_os("CARGO_FEATURE_MLX").is_some();
    let target = |key: &str| std::env::var(key).unwrap_or_default();
    let apple_silicon = target("CARGO_CFG_TARGET_OS") == "macos" && target("CARGO_CFG_TARGET_ARCH") == "aarch64";
    // A `--cfg` of the target's rustflags reaches build scripts as CARGO_CFG_<NAME>.
    let prepared_linux = std::env::var_os("CARGO_CFG_CHRONOS2_MLX_LINUX").is_some();
    if feature && (apple_silicon || prepared_linux) {
        println!("cargo::rustc-cfg=mlx_backend");
    }
}

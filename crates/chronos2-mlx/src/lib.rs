//! Chronos-2 on MLX: [`MlxOps`], the [`chronos2_core::ops::Ops`] backend over `mlx-rs` arrays, and
//! [`load`] / [`load_with`] / [`load_model`] to load a model on it ([`MlxModel`]), optionally with
//! the model forward compiled by `mlx_rs::transforms::compile` ([`MlxOptions::compile`]).
//!
//! The backend exists only with the cargo feature `mlx`; without it this crate is empty, so a
//! plain workspace build never needs MLX. `cfg(mlx_backend)` (set by `build.rs`) says that the
//! feature is on and MLX builds for this target.
//!
//! - **macOS (Apple Silicon):** stock crates.io `mlx-rs` (Metal + Accelerate).
//!   `cargo test -p chronos2-mlx --features mlx`
//! - **Linux:** MLX's CPU backend from the PyPI `mlx-cpu` wheel, after
//!   `eval "$(scripts/prepare-mlx-linux.sh)"`, building with the cargo config it writes:
//!   `cargo test -p chronos2-mlx --features mlx --config "$CHRONOS2_MLX_CARGO_CONFIG"`.
//!   That config sets `--cfg chronos2_mlx_linux` (which turns on the `mlx-rs` dependency here)
//!   and overrides the native build of `mlx-sys`; see the script.

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

#[cfg(all(feature = "mlx", not(mlx_backend)))]
compile_error!(
    "chronos2-mlx feature `mlx`: MLX needs Apple Silicon, or on Linux the prepared MLX build: run \
     `eval \"$(scripts/prepare-mlx-linux.sh)\"` and pass `--config \"$CHRONOS2_MLX_CARGO_CONFIG\"` to cargo \
     (it sets `--cfg chronos2_mlx_linux`; note a RUSTFLAGS environment variable overrides config rustflags)"
);

#[cfg(mlx_backend)]
mod ops;

#[cfg(mlx_backend)]
pub use ops::{LinearWeight, MlxLinear, MlxOps, MlxTensor};

/// Re-export of the `mlx-rs` this backend is built on.
#[cfg(mlx_backend)]
pub use mlx_rs;

#[cfg(mlx_backend)]
mod model;

/// Fine-tuning on MLX (`value_and_grad`): [`train::MlxTrainModel`].
#[cfg(mlx_backend)]
pub mod train;

#[cfg(mlx_backend)]
pub use model::{
    load, load_model, load_model_with, load_source_with, load_with, MlxModel, MlxOptions, WithCompile,
    COMPILE_CACHE_CAPACITY,
};

/// Whether MLX works on this machine: builds and evaluates a tiny graph on MLX's default
/// device. `Ok` holds a short description of that device (e.g. `"Device(gpu, 0)"` on Apple
/// Silicon, `"Device(cpu, 0)"` on Linux); `Err` says what failed.
#[cfg(mlx_backend)]
pub fn check_available() -> std::result::Result<String, String> {
    use mlx_rs::{Array, Device};
    let device = Device::try_default().map_err(|e| format!("MLX has no default device: {e}"))?;
    let x = Array::from_slice(&[1f32, 2.0], &[2]);
    let y = mlx_rs::ops::add(&x, &x).map_err(|e| format!("MLX: {e}"))?;
    match y.try_as_slice::<f32>() {
        Ok([a, b]) if *a == 2.0 && *b == 4.0 => Ok(device.to_string()),
        Ok(other) => Err(format!("MLX computed {other:?} for [1, 2] + [1, 2]")),
        Err(e) => Err(format!("MLX evaluation failed: {e}")),
    }
}

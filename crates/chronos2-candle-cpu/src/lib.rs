//! Chronos-2 on candle's CPU backend.
//!
//! [`CandleCpuOps`] implements [`chronos2_core::ops::Ops`]; the model graph itself lives in
//! `chronos2-core`. On macOS the `accelerate` feature routes matmuls through Apple Accelerate
//! (AMX) for the float linears and the attention. Elsewhere linear layers run on our own GEMM
//! with weights packed once at load ([`gemm`]), the attention on a fused kernel ([`attention`]); both pick AVX-512, AVX2 or portable code at run
//! time.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

#[cfg(all(feature = "accelerate", target_os = "macos"))]
mod accelerate;
#[cfg(target_arch = "x86_64")]
pub mod amx;
pub mod attention;
pub mod gemm;
mod isa;
mod layout;
mod norm;
mod ops;
mod plain_ops;
pub mod quant;
pub mod train;
pub mod w8a8;

use std::path::Path;

pub use gemm::PackedMatmul;
pub use isa::{check_env as check_isa_env, kernel_description, Isa, IsaCap, UnknownIsa, ISA_ENV};
pub use ops::{CandleCpuOps, CandleLinear};
pub use quant::{QuantizedLinear, QuantizedMatmul};

use chronos2_core::model::Chronos2Model;
use chronos2_core::weights::ModelSource;
use chronos2_core::{Forecaster, Precision, Result};

/// Chronos-2 running on the candle CPU backend.
pub type CpuModel = Chronos2Model<CandleCpuOps>;

/// Loads the model in `model_dir` (holding `config.json` and `model.safetensors`) on the CPU.
pub fn load(model_dir: &Path) -> Result<Box<dyn Forecaster>> {
    Ok(Box::new(load_model(model_dir)?))
}

/// Like [`load`], keeping the concrete type (for layer-by-layer access).
pub fn load_model(model_dir: &Path) -> Result<CpuModel> {
    isa::check_env().map_err(chronos2_core::Error::backend)?;
    Chronos2Model::load_dir(CandleCpuOps::new(), model_dir)
}

/// Loads the model ready for `set_precision(precision)`: for bf16 every linear layer is built
/// in bf16 while its tensor is read, so the fp32 model is never held (peak memory about half
/// of fp32's) and `set_precision(Bf16)` then has nothing left to convert; other precisions
/// load in fp32 as [`load_model`].
pub fn load_model_for(model_dir: &Path, precision: Precision) -> Result<CpuModel> {
    load_source_for(&ModelSource::Dir(model_dir.to_path_buf()), precision)
}

/// [`load_model_for`] from a model directory or a model in memory.
pub fn load_source_for(source: &ModelSource, precision: Precision) -> Result<CpuModel> {
    isa::check_env().map_err(chronos2_core::Error::backend)?;
    let ops = if precision == Precision::Bf16 { CandleCpuOps::building_bf16() } else { CandleCpuOps::new() };
    Chronos2Model::load_source(ops, source)
}

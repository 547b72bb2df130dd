//! Chronos-2 on NVIDIA GPUs: [`CudaOps`], the [`chronos2_core::ops::Ops`] backend on CUDA, and
//! [`load`] / [`load_model`] / [`load_source_for`] to load a model on it ([`CudaModel`]).
//!
//! Nothing CUDA is needed to build this crate: cudarc loads libcuda, NVRTC and cuBLAS at run
//! time, the kernels are C++ source compiled by NVRTC on first use (once per process), and
//! [`check_available`] reports "not usable: ..." on a machine without an NVIDIA driver instead of
//! panicking. Precisions: fp32 (cuBLAS without TF32: the reference's arithmetic) and bf16
//! (weights converted once at load, tensor cores with fp32 accumulation); the quantized modes
//! (int8, int4, w8a8) are refused with an error naming these two.

mod device;
pub mod kernels;
pub mod layout;
mod linear;
mod ops;
mod probe;

use std::path::Path;

pub use device::Device;
pub use linear::{bf16_bits, bf16_to_f32, CudaLinear};
pub use ops::{CudaOps, CudaTensor};
pub use probe::{check_available, gpu_info, libraries, libraries_present, GpuInfo};

use chronos2_core::model::Chronos2Model;
use chronos2_core::weights::ModelSource;
use chronos2_core::{Forecaster, Precision, Result};

/// Chronos-2 running on the GPU.
pub type CudaModel = Chronos2Model<CudaOps>;

/// Loads the model in `model_dir` (holding `config.json` and `model.safetensors`) on the GPU, fp32.
pub fn load(model_dir: &Path) -> Result<Box<dyn Forecaster>> {
    Ok(Box::new(load_model(model_dir)?))
}

/// Like [`load`], keeping the concrete type.
pub fn load_model(model_dir: &Path) -> Result<CudaModel> {
    Chronos2Model::load_dir(CudaOps::new()?, model_dir)
}

/// [`load_source_for`] from a model directory.
pub fn load_model_for(model_dir: &Path, precision: Precision) -> Result<CudaModel> {
    load_source_for(&ModelSource::Dir(model_dir.to_path_buf()), precision)
}

/// Loads the model (a model directory or a model in memory) ready for `set_precision(precision)`:
/// for bf16 each linear layer is converted as it is read, so the GPU never holds the fp32 weights;
/// other precisions load in fp32 (and `set_precision` refuses the ones this backend does not run).
pub fn load_source_for(source: &ModelSource, precision: Precision) -> Result<CudaModel> {
    let ops = CudaOps::new()?;
    let ops = if precision == Precision::Bf16 { ops.building_bf16() } else { ops };
    Chronos2Model::load_source(ops, source)
}

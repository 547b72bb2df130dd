//! Chronos-2 in Rust: everything that is not arithmetic on a device.
//!
//! - [`config`]: `config.json` (Hugging Face layout with `chronos_config`).
//! - [`weights`]: memory-mapped `model.safetensors` with the Hugging Face key names.
//! - [`model_files`]: the file names of a model directory (resolving a directory or hub id is
//!   the facade's, which holds the network).
//! - [`preprocess`]: instance norm + arcsinh, patching, time encodings (host side, f32).
//! - [`ops`]: the tensor-operations trait a backend implements.
//! - [`model`]: the Chronos-2 encoder, written once, generic over [`ops::Ops`].
//! - [`forecaster`]: the object-safe model interface the pipeline holds.
//! - [`precision`]: the numeric mode of the linear layers (fp32, bf16, int8, int4, w8a8).
//! - [`dispatch`]: backend choice per call from a measured crossover profile.
//! - [`pipeline`]: predict / embed on items (ragged, NaN, covariates, groups, long horizons).
//! - [`train`]: fine-tuning around the model (modes, LoRA config, batches, loss, AdamW).
//! - [`interrupt`]: stopping a long call between batches or training steps.

pub mod cleanup;
pub mod config;
pub mod dispatch;
pub mod error;
pub mod forecaster;
pub mod interrupt;
pub mod model;
pub mod model_files;
pub mod ops;
pub mod pipeline;
pub mod precision;
pub mod preprocess;
pub mod quant;
pub mod quantiles;
mod torch_sum;
pub mod train;
pub mod weights;

pub use config::{ChronosConfig, ModelConfig};
pub use error::{Error, Result};
pub use forecaster::{Encoding, Forecaster, ModelBatch, QuantileForecast};
pub use precision::Precision;

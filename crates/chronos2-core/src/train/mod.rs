//! Fine-tuning, backend-independent: what `Chronos2Pipeline.fit` of the reference does around
//! the model (chronos-forecasting 2.3.2, `pipeline.py` / `dataset.py` / `model.py::_compute_loss`).
//!
//! - [`mode`]: the fine-tuning modes (full, LoRA, QLoRA, head) and the LoRA configuration.
//! - [`dataset`]: training stream (uniform series, uniform cut point) and validation batches.
//! - [`loss`]: the loss targets and mask on the host, and the reduction of `_compute_loss`.
//! - [`export`]: outputs per mode (full model, PEFT or npz adapter, head), fuse.
//! - [`adapter`]: adapters read back (PEFT, MLX-style npz, head) and fused into base tensors.
//! - [`npz`]: numpy `.npz` archives (read and written).
//! - [`fit`]: the training loop (validation every 100 steps, best checkpoint kept).
//! - [`adamw`]: AdamW with HF Trainer defaults, linear schedule, gradient-norm clipping.
//! - [`rng`]: the small seeded generator used for sampling and LoRA initialisation.
//! - [`dropout`]: training dropout: its sites in the graph and the sources of its masks.

pub mod adamw;
pub mod adapter;
pub mod dataset;
pub mod dropout;
pub mod export;
pub mod fit;
pub mod loss;
mod micro_batch;
pub mod mode;
pub mod npz;
mod peft_config;
pub mod rng;

pub use adamw::{AdamW, AdamWConfig};
pub use adapter::{Adapter, LoraPair};
pub use dataset::{TrainBatch, TrainDataset};
pub use dropout::{DropoutMasks, DropoutSite, SeededMasks, TrainingDropout};
pub use fit::{fit, FitOptions, FitOutcome, StepReport};
pub use loss::LossTargets;
pub use micro_batch::{activation_budget, rows_within_budget};
pub use mode::{lora_key, qlora_bits, FinetuneMode, LoraConfig, TrainSpec, QLORA_GROUP_SIZE};

use crate::config::ModelConfig;
use crate::error::Result;

/// A model being fine-tuned on some backend: its trainable parameters (in a fixed order), the
/// loss with gradients on a batch, and the loss alone (validation).
pub trait TrainModel {
    fn config(&self) -> &ModelConfig;
    /// Names of the trainable parameters: Hugging Face keys, PEFT keys for LoRA matrices.
    fn parameter_names(&self) -> Vec<String>;
    /// Shapes of the trainable parameters, in the order of [`TrainModel::parameter_names`].
    fn parameter_shapes(&self) -> Vec<Vec<usize>>;
    fn parameter_values(&self) -> Result<Vec<Vec<f32>>>;
    fn set_parameter_values(&mut self, values: &[Vec<f32>]) -> Result<()>;
    /// The loss of `batch` and the gradient of every trainable parameter, in training mode
    /// (dropout at the config's `dropout_rate`, one step of the mask source per call).
    fn loss_and_grads(&mut self, batch: &TrainBatch) -> Result<(f32, Vec<Vec<f32>>)>;
    /// The loss of `batch`, without gradients (in eval mode: no dropout).
    fn loss(&self, batch: &TrainBatch) -> Result<f32>;
    /// Replaces the source of the dropout masks of [`TrainModel::loss_and_grads`] (by default
    /// [`SeededMasks`] of the spec's seed). Used only when the config's `dropout_rate` is not 0.
    fn set_dropout_masks(&mut self, masks: Box<dyn DropoutMasks>);
}

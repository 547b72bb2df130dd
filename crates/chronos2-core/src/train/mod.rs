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

pub mod adamw;
pub mod adapter;
pub mod dataset;
pub mod export;
pub mod fit;
pub mod loss;
pub mod mode;
pub mod npz;
pub mod rng;

pub use adamw::{AdamW, AdamWConfig};
pub use adapter::Adapter;
pub use dataset::{TrainBatch, TrainDataset};
pub use fit::{fit, FitOptions, FitOutcome, StepReport};
pub use loss::LossTargets;
pub use mode::{lora_key, FinetuneMode, LoraConfig, TrainSpec, QLORA_GROUP_SIZE};

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
    /// The loss of `batch` and the gradient of every trainable parameter.
    fn loss_and_grads(&mut self, batch: &TrainBatch) -> Result<(f32, Vec<Vec<f32>>)>;
    /// The loss of `batch`, without gradients.
    fn loss(&self, batch: &TrainBatch) -> Result<f32>;
}

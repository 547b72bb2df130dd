//! Fine-tuning, backend-independent: what `Chronos2Pipeline.fit` of the reference does around
//! the model (chronos-forecasting 2.3.2, `pipeline.py` / `dataset.py` / `model.py::_compute_loss`).
//!
//! - [`mode`]: the fine-tuning modes (full, LoRA, QLoRA, head) and the LoRA configuration.
//! - [`dataset`]: training stream (uniform series, uniform cut point) and validation batches.
//! - [`loss`]: the loss targets and mask on the host, and the reduction of `_compute_loss`.
//! - [`adamw`]: AdamW with HF Trainer defaults, linear schedule, gradient-norm clipping.
//! - [`rng`]: the small seeded generator used for sampling and LoRA initialisation.

pub mod adamw;
pub mod dataset;
pub mod loss;
pub mod mode;
pub mod rng;

pub use adamw::{AdamW, AdamWConfig};
pub use dataset::{TrainBatch, TrainDataset};
pub use loss::LossTargets;
pub use mode::{FinetuneMode, LoraConfig};

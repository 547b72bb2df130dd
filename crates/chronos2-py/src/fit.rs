//! `NativeModel.fit`: fine-tuning as `Chronos2Pipeline.fit` of the reference, through the
//! facade's [`Chronos2::finetune`]. The Python layer (`Chronos2Pipeline.fit`) maps the reference's
//! arguments; this side runs the training with the GIL released and builds the fine-tuned model.

use std::path::PathBuf;
use std::time::Instant;

use chronos2::chronos2_core::train::{qlora_bits, FinetuneMode, LoraConfig, StepReport};
use chronos2::finetune::{FinetuneOptions, FinetuneReport, Trained};
use chronos2::{Backend, Chronos2};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::errors::value_error;
use crate::interrupt::interruptible;
use crate::items::series_inputs;

/// The arguments of one fine-tuning run, as the Python layer resolved them.
pub struct FitRequest<'a, 'py> {
    pub items: &'a Bound<'py, PyList>,
    pub validation_items: Option<&'a Bound<'py, PyList>>,
    pub prediction_length: usize,
    pub mode: String,
    /// `int8` / `int4` for `qlora`.
    pub quantize: Option<String>,
    pub output: PathBuf,
    pub steps: usize,
    pub learning_rate: f32,
    pub batch_size: usize,
    pub context_length: Option<usize>,
    pub min_past: Option<usize>,
    pub lora: Option<LoraConfig>,
    pub seed: u64,
    /// Print a progress line every this many steps (and at the last); 0: silent.
    pub log_every: usize,
}

/// Fine-tunes `base` (loaded for `backend`) and returns the fine-tuned model (a full fine-tune
/// loaded from the written directory; an adapter fused into a copy of the base, as the
/// reference's returned pipeline forecasts) with the run's report.
pub fn fit<'py>(
    py: Python<'py>,
    base: &Chronos2,
    backend: Backend,
    request: FitRequest<'_, 'py>,
) -> PyResult<(Chronos2, Bound<'py, PyDict>)> {
    let bits = match request.quantize.as_deref().map(str::trim) {
        None => None,
        Some(name) => Some(
            qlora_bits(name)
                .ok_or_else(|| value_error(format!("quantize '{name}': expected 'int8' or 'int4' for qlora")))?,
        ),
    };
    let mode = FinetuneMode::parse(request.mode.trim(), bits).map_err(|e| value_error(e.to_string()))?;
    let items = series_inputs(request.items)?;
    let validation = request.validation_items.map(series_inputs).transpose()?;
    let mut options = FinetuneOptions::new(request.prediction_length, mode);
    options.steps = request.steps;
    options.learning_rate = Some(request.learning_rate);
    options.batch_size = request.batch_size;
    options.context_length = request.context_length;
    options.min_past = request.min_past;
    options.seed = request.seed;
    // As the reference's `save_pretrained`: an existing checkpoint directory is written over.
    options.overwrite = true;
    options.backend = backend.training_backend();
    if let Some(lora) = request.lora {
        options.lora = lora;
    }
    let log_every = request.log_every;
    let output = request.output;
    let (summary, model) = interruptible(py, || {
        let start = Instant::now();
        let mut progress = |r: &StepReport| {
            if log_every > 0 && (r.step.is_multiple_of(log_every) || r.step == r.steps) {
                eprintln!("{}", progress_line(r, start.elapsed().as_secs_f64()));
            }
        };
        let report = base.finetune(&items, validation.as_deref(), &options, &output, &mut progress)?;
        let FinetuneReport { dropped, trainable_params, train_losses, validation_losses, kept_step, output, trained } =
            report;
        let model = match trained {
            Trained::Model(model) => *model,
            Trained::Adapter(adapter) => base.with_adapter_fused(&adapter)?,
        };
        let summary = Summary { output, dropped, trainable_params, train_losses, validation_losses, kept_step };
        Ok((summary, model))
    })?;
    Ok((model, summary.into_dict(py)?))
}

/// What a run did, for Python.
struct Summary {
    output: PathBuf,
    dropped: usize,
    trainable_params: usize,
    train_losses: Vec<f32>,
    validation_losses: Vec<(usize, f32)>,
    kept_step: usize,
}

impl Summary {
    /// A dict: `output`, `dropped` (series shorter than `min_past + prediction_length`),
    /// `trainable_params`, `train_losses`, `validation_losses` (`(step, loss)`), `kept_step`.
    fn into_dict(self, py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
        let out = PyDict::new(py);
        out.set_item("output", self.output.display().to_string())?;
        out.set_item("dropped", self.dropped)?;
        out.set_item("trainable_params", self.trainable_params)?;
        out.set_item("train_losses", self.train_losses)?;
        out.set_item("validation_losses", self.validation_losses)?;
        out.set_item("kept_step", self.kept_step)?;
        Ok(out)
    }
}

/// `step 100/1000: train loss 3.2100, validation loss 2.9000, 4.1 steps/s, 24 s`.
fn progress_line(r: &StepReport, elapsed_s: f64) -> String {
    let validation = r.validation_loss.map(|v| format!(", validation loss {v:.4}")).unwrap_or_default();
    format!(
        "step {}/{}: train loss {:.4}{validation}, {:.2} steps/s, {elapsed_s:.0} s",
        r.step, r.steps, r.train_loss, r.steps_per_second
    )
}

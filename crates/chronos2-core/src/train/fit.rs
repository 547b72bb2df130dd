//! The training loop of `fit`: AdamW steps on sampled batches, validation every 100 steps and
//! at the last step (HF `eval_loss`: the mean of per-batch losses weighted by batch rows), the
//! best parameters by validation loss kept. A NaN or infinite loss or gradient stops training
//! with the step at which it happened.

use std::time::Instant;

use crate::error::{Error, Result};

use super::adamw::{AdamW, AdamWConfig};
use super::dataset::{TrainBatch, TrainDataset};
use super::rng::Rng;
use super::TrainModel;

/// Evaluation and checkpoint interval of `fit` with validation data.
pub const EVAL_EVERY: usize = 100;

#[derive(Debug, Clone)]
pub struct FitOptions {
    pub steps: usize,
    pub learning_rate: f32,
    pub seed: u64,
}

/// What the progress callback sees after each step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// 1-based.
    pub step: usize,
    pub steps: usize,
    pub train_loss: f32,
    /// The latest validation loss, if any.
    pub validation_loss: Option<f32>,
    pub steps_per_second: f32,
}

/// The result of [`fit`]; the model holds the kept parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct FitOutcome {
    pub train_losses: Vec<f32>,
    /// `(step, loss)` of every validation.
    pub validation_losses: Vec<(usize, f32)>,
    /// The step whose parameters were kept (the best validation, else the last step).
    pub kept_step: usize,
}

/// The validation loss: per-batch losses weighted by rows.
pub fn validation_loss<M: TrainModel + ?Sized>(model: &M, batches: &[TrainBatch]) -> Result<f32> {
    let (mut sum, mut rows) = (0f64, 0usize);
    for b in batches {
        sum += model.loss(b)? as f64 * b.model.rows as f64;
        rows += b.model.rows;
    }
    Ok((sum / rows.max(1) as f64) as f32)
}

/// Trains `model` on `train`; with `validation`, keeps the parameters of the best validation loss.
pub fn fit<M: TrainModel + ?Sized>(
    model: &mut M,
    train: &TrainDataset,
    validation: Option<&[TrainBatch]>,
    options: &FitOptions,
    progress: &mut dyn FnMut(&StepReport),
) -> Result<FitOutcome> {
    let config = AdamWConfig::new(options.learning_rate, options.steps)?;
    let mut values = model.parameter_values()?;
    let sizes: Vec<usize> = values.iter().map(Vec::len).collect();
    let mut optimizer = AdamW::new(config, &sizes);
    let mut rng = Rng::new(options.seed);
    let mut outcome = FitOutcome { train_losses: Vec::new(), validation_losses: Vec::new(), kept_step: options.steps };
    let mut best: Option<(f32, Vec<Vec<f32>>)> = None;
    let start = Instant::now();
    for step in 1..=options.steps {
        let batch = train.sample(&mut rng);
        let (loss, mut grads) = model.loss_and_grads(&batch)?;
        if !loss.is_finite() || grads.iter().flatten().any(|g| !g.is_finite()) {
            return Err(Error::InvalidInput(format!(
                "training diverged at step {step}: the loss is {loss}{}; try a lower learning rate",
                if loss.is_finite() { " and a gradient is not finite" } else { "" }
            )));
        }
        optimizer.step(&mut values, &mut grads)?;
        model.set_parameter_values(&values)?;
        outcome.train_losses.push(loss);
        if let Some(batches) = validation {
            if step % EVAL_EVERY == 0 || step == options.steps {
                let v = validation_loss(model, batches)?;
                outcome.validation_losses.push((step, v));
                if best.as_ref().is_none_or(|(b, _)| v < *b) {
                    best = Some((v, values.clone()));
                    outcome.kept_step = step;
                }
            }
        }
        crate::interrupt::check()?;
        let elapsed = start.elapsed().as_secs_f32().max(1e-9);
        progress(&StepReport {
            step,
            steps: options.steps,
            train_loss: loss,
            validation_loss: outcome.validation_losses.last().map(|&(_, v)| v),
            steps_per_second: step as f32 / elapsed,
        });
    }
    if let Some((_, kept)) = best {
        model.set_parameter_values(&kept)?;
    }
    Ok(outcome)
}

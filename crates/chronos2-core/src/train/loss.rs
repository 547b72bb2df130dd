//! The loss of `Chronos2Model._compute_loss`: quantile (pinball) loss on targets normalised with
//! the context's instance-norm loc/scale (arcsinh as configured), masked where the target is NaN
//! and where a future covariate is known, zero-padded to `num_output_patches * patch`; mean over
//! the horizon (padded positions count), sum over quantiles, mean over all rows.

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::preprocess::normalize;

use super::dataset::TrainBatch;

/// Host-side loss inputs for one batch.
#[derive(Debug, Clone, PartialEq)]
pub struct LossTargets {
    pub rows: usize,
    /// `num_output_patches * output_patch_size`.
    pub horizon: usize,
    /// `(rows, horizon)` normalised targets, 0 where masked.
    pub target: Vec<f32>,
    /// `(rows, horizon)`: 1 where the loss counts.
    pub mask: Vec<f32>,
}

impl LossTargets {
    /// Normalises `batch.future_target` with the per-row `loc`/`scale` of the context.
    pub fn new(config: &ModelConfig, batch: &TrainBatch, loc: &[f32], scale: &[f32]) -> Result<Self> {
        let m = &batch.model;
        let (rows, h) = (m.rows, batch.prediction_length);
        let horizon = m.num_output_patches * config.patch_size();
        if h > horizon || batch.future_target.len() != rows * h || loc.len() != rows || scale.len() != rows {
            return Err(Error::InvalidInput(format!(
                "loss targets: {} values for {rows} rows x {h} steps (horizon {horizon})",
                batch.future_target.len()
            )));
        }
        let use_arcsinh = config.chronos_config.use_arcsinh;
        let mut target = vec![0f32; rows * horizon];
        let mut mask = vec![0f32; rows * horizon];
        for r in 0..rows {
            for t in 0..h {
                let y = normalize(batch.future_target[r * h + t], loc[r], scale[r], use_arcsinh);
                let covariate_known = m.future_covariates.as_ref().is_some_and(|f| !f[r * h + t].is_nan());
                if !y.is_nan() {
                    target[r * horizon + t] = y;
                    mask[r * horizon + t] = if covariate_known { 0.0 } else { 1.0 };
                }
            }
        }
        Ok(LossTargets { rows, horizon, target, mask })
    }

    /// The loss of normalised predictions `(rows, num_quantiles, horizon)` on the host (f64 sums).
    pub fn loss(&self, predictions: &[f32], quantiles: &[f32]) -> f64 {
        let (rows, horizon) = (self.rows, self.horizon);
        let mut total = 0f64;
        for r in 0..rows {
            for (qi, &q) in quantiles.iter().enumerate() {
                for t in 0..horizon {
                    let i = r * horizon + t;
                    if self.mask[i] == 0.0 {
                        continue;
                    }
                    let pred = predictions[(r * quantiles.len() + qi) * horizon + t];
                    let y = self.target[i];
                    let indicator = if y <= pred { 1.0 } else { 0.0 };
                    total += (2.0 * ((y - pred) * (indicator - q)).abs()) as f64;
                }
            }
        }
        total / (rows * horizon) as f64
    }
}

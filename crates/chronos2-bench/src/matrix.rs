//! Timing of one benchmark-matrix cell: a model forward at a (batch, context) shape.

use std::time::Instant;

use anyhow::Context;
use chronos2_core::{Forecaster, ModelBatch};

use crate::random_context;

/// A row of the matrix: `rows` series of `context` steps each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub rows: usize,
    pub context: usize,
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.rows, self.context)
    }
}

/// The article's rows.
pub const CORE_SHAPES: [Shape; 3] =
    [Shape { rows: 1, context: 128 }, Shape { rows: 8, context: 128 }, Shape { rows: 8, context: 512 }];

/// The extended rows.
pub const EXTENDED_SHAPES: [Shape; 5] = [
    Shape { rows: 1, context: 512 },
    Shape { rows: 32, context: 512 },
    Shape { rows: 1, context: 2048 },
    Shape { rows: 8, context: 2048 },
    Shape { rows: 64, context: 512 },
];

/// Median and 10th/90th percentiles of timed runs, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    pub median_ms: f64,
    pub p10_ms: f64,
    pub p90_ms: f64,
    pub runs: usize,
}

impl Stats {
    /// Statistics of `samples` (milliseconds); `None` when empty.
    pub fn from_samples(samples: &[f64]) -> Option<Stats> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let pos = q * (sorted.len() - 1) as f64;
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
        };
        Some(Stats { median_ms: at(0.5), p10_ms: at(0.1), p90_ms: at(0.9), runs: sorted.len() })
    }
}

/// A column's timed runs stop early once they have taken this long (at least [`MIN_RUNS`] are
/// kept), so that very slow cells do not hold the matrix up.
pub const TIME_BUDGET_S: f64 = 20.0;
pub const MIN_RUNS: usize = 3;

/// Times `model.forecast` for each named model at `shape` with `prediction_length` (random-walk
/// inputs, independent rows). Each model first gets `warmup` untimed runs (one at most when a
/// run exceeds a quarter of the budget); then the timed runs are interleaved: rounds of one run
/// per model in turn, up to `runs` each, a model leaving the rotation once it has [`MIN_RUNS`]
/// runs whose total exceeds [`TIME_BUDGET_S`]. On a shared machine a slow phase then hits every
/// column alike, so the ratios between columns hold where back-to-back columns would not.
pub fn time_forecasts(
    models: &[(&str, &dyn Forecaster)],
    shape: Shape,
    prediction_length: usize,
    warmup: usize,
    runs: usize,
) -> anyhow::Result<Vec<Stats>> {
    let batches = models
        .iter()
        .map(|(_, model)| {
            let patches = prediction_length.div_ceil(model.config().patch_size());
            ModelBatch::independent(random_context(shape.rows, shape.context, 7), shape.rows, shape.context, patches)
        })
        .collect::<Vec<_>>();
    for ((name, model), batch) in models.iter().zip(&batches) {
        let started = Instant::now();
        for _ in 0..warmup {
            model.forecast(batch).with_context(|| format!("{name} {shape}: warm-up"))?;
            if started.elapsed().as_secs_f64() > TIME_BUDGET_S / 4.0 {
                break;
            }
        }
    }
    let mut samples = vec![Vec::with_capacity(runs); models.len()];
    let mut spent = vec![0f64; models.len()];
    let done = |samples: &Vec<f64>, spent: f64| {
        samples.len() >= runs.max(1) || (samples.len() >= MIN_RUNS && spent > TIME_BUDGET_S)
    };
    while samples.iter().zip(&spent).any(|(s, &t)| !done(s, t)) {
        for (i, ((name, model), batch)) in models.iter().zip(&batches).enumerate() {
            if done(&samples[i], spent[i]) {
                continue;
            }
            let start = Instant::now();
            model.forecast(batch).with_context(|| format!("{name} {shape}"))?;
            let elapsed = start.elapsed().as_secs_f64();
            samples[i].push(elapsed * 1e3);
            spent[i] += elapsed;
        }
    }
    Ok(samples.iter().map(|s| Stats::from_samples(s).expect("at least one run")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_like_numpy() {
        // numpy.percentile([5, 1, 4, 2, 3], [10, 50, 90]) == [1.4, 3.0, 4.6]
        let stats = Stats::from_samples(&[5.0, 1.0, 4.0, 2.0, 3.0]).unwrap();
        assert!((stats.p10_ms - 1.4).abs() < 1e-12);
        assert_eq!(stats.median_ms, 3.0);
        assert!((stats.p90_ms - 4.6).abs() < 1e-12);
        assert_eq!(Stats::from_samples(&[]), None);
    }
}

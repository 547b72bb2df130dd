//! Timing of one benchmark-matrix cell: a model forward at a (batch, context) shape.

use std::time::Instant;

use chronos2_core::{Forecaster, ModelBatch, Result};

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

/// Timed runs stop early once they have taken this long (at least [`MIN_RUNS`] are kept), so
/// that very slow cells do not hold the matrix up.
pub const TIME_BUDGET_S: f64 = 20.0;
pub const MIN_RUNS: usize = 3;

/// Times `model.forecast` at `shape` with `prediction_length` (random-walk inputs, independent
/// rows): `warmup` untimed runs (one at most when a run exceeds the budget), then up to `runs`
/// timed ones within [`TIME_BUDGET_S`].
pub fn time_forecast(
    model: &dyn Forecaster,
    shape: Shape,
    prediction_length: usize,
    warmup: usize,
    runs: usize,
) -> Result<Stats> {
    let patches = prediction_length.div_ceil(model.config().patch_size());
    let batch =
        ModelBatch::independent(random_context(shape.rows, shape.context, 7), shape.rows, shape.context, patches);
    let started = Instant::now();
    for _ in 0..warmup {
        model.forecast(&batch)?;
        if started.elapsed().as_secs_f64() > TIME_BUDGET_S / 4.0 {
            break;
        }
    }
    let mut samples = Vec::with_capacity(runs);
    let timed = Instant::now();
    for _ in 0..runs {
        let start = Instant::now();
        model.forecast(&batch)?;
        samples.push(start.elapsed().as_secs_f64() * 1e3);
        if samples.len() >= MIN_RUNS && timed.elapsed().as_secs_f64() > TIME_BUDGET_S {
            break;
        }
    }
    Ok(Stats::from_samples(&samples).expect("at least one run"))
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

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

/// A model's timed runs stop early once they have taken this long (at least [`MIN_RUNS`] are
/// kept), so that very slow cells do not hold the matrix up.
pub const TIME_BUDGET_S: f64 = 20.0;
pub const MIN_RUNS: usize = 3;

/// Times `model.forecast` at `shape` with `prediction_length` for each of `models` (random-walk
/// inputs, independent rows). The models run in turns, run by run, each round starting one model
/// later, so that a drift of the machine's speed over the minutes of a cell, or the state one
/// model's run leaves behind for the next, falls on every column alike. Each model gets
/// `warmup` untimed runs (one at most once they exceed a quarter of [`TIME_BUDGET_S`]), then up to
/// `runs` (at least one) timed ones, ending early once they have taken [`TIME_BUDGET_S`].
pub fn time_forecasts_in_turns(
    models: &[&dyn Forecaster],
    shape: Shape,
    prediction_length: usize,
    warmup: usize,
    runs: usize,
) -> Result<Vec<Stats>> {
    let Some(first) = models.first() else {
        return Ok(Vec::new());
    };
    let patches = prediction_length.div_ceil(first.config().patch_size());
    let batch =
        ModelBatch::independent(random_context(shape.rows, shape.context, 7), shape.rows, shape.context, patches);
    let n = models.len();
    // Round `r` starts with model `r mod n`, so that no model always runs right after the same one.
    let turns = |round: usize| (0..n).map(move |j| (round + j) % n);
    let mut warm_s = vec![0.0; n];
    for round in 0..warmup {
        for i in turns(round) {
            if warm_s[i] <= TIME_BUDGET_S / 4.0 {
                let start = Instant::now();
                models[i].forecast(&batch)?;
                warm_s[i] += start.elapsed().as_secs_f64();
            }
        }
    }
    let mut samples = vec![Vec::with_capacity(runs); n];
    let within_budget = |s: &Vec<f64>| s.len() < MIN_RUNS || s.iter().sum::<f64>() <= TIME_BUDGET_S * 1e3;
    for round in 0..runs.max(1) {
        for i in turns(round) {
            if within_budget(&samples[i]) {
                let start = Instant::now();
                models[i].forecast(&batch)?;
                samples[i].push(start.elapsed().as_secs_f64() * 1e3);
            }
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

    /// Every model gets the same number of timed runs, in turns.
    #[test]
    fn models_are_timed_in_turns() {
        let dir = std::env::temp_dir().join(format!("chronos2-bench-turns-{}", std::process::id()));
        crate::write_random_model(&dir, &crate::config_json(32, 8, 64, 2, 4, 512), 3).unwrap();
        let models = [chronos2_candle_cpu::load(&dir).unwrap(), chronos2_candle_cpu::load(&dir).unwrap()];
        let refs: Vec<&dyn Forecaster> = models.iter().map(|m| m.as_ref()).collect();
        let stats = time_forecasts_in_turns(&refs, Shape { rows: 2, context: 32 }, 16, 1, 4).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(stats.len(), 2);
        assert!(stats.iter().all(|s| s.runs == 4 && s.median_ms > 0.0));
        assert!(time_forecasts_in_turns(&[], Shape { rows: 1, context: 8 }, 16, 1, 4).unwrap().is_empty());
    }
}

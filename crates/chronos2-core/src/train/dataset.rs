//! Training and validation batches as `Chronos2Dataset` builds them (reference `dataset.py`).
//!
//! Tasks are [`PreparedInput`]s (rows: targets, past-only covariates, known-future covariates).
//! Training: a task uniformly at random, a cut point uniformly in `[min_past, len - H]`, whole
//! tasks until the batch holds at least `batch_size` rows (it may overshoot). Validation: the last
//! window of each task, in order. The context is the last `context_length` points before the
//! cut, left-padded with NaN to the longest context of the batch; each task is its own group.
//! Known-future covariates get their true values after the cut; targets and past-only
//! covariates are NaN there. The future target of covariate rows is NaN.

use crate::error::{Error, Result};
use crate::forecaster::ModelBatch;
use crate::pipeline::PreparedInput;

use super::rng::Rng;

/// One training step's input: the model batch and the future target.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainBatch {
    /// Context, group ids, known future covariates `(rows, prediction_length)`.
    pub model: ModelBatch,
    /// `(rows, prediction_length)`; NaN where the loss does not count.
    pub future_target: Vec<f32>,
    pub prediction_length: usize,
}

/// The tasks of a fine-tuning run and how batches are cut from them.
#[derive(Debug, Clone)]
pub struct TrainDataset {
    tasks: Vec<PreparedInput>,
    context_length: usize,
    prediction_length: usize,
    min_past: usize,
    batch_size: usize,
    num_output_patches: usize,
    /// Tasks dropped for being shorter than `min_past + prediction_length`.
    pub dropped: usize,
}

impl TrainDataset {
    /// Keeps the tasks holding at least `min_past + prediction_length` points; fails when none is
    /// left. `patch_size` is the model's output patch size.
    pub fn new(
        tasks: Vec<PreparedInput>,
        context_length: usize,
        prediction_length: usize,
        min_past: usize,
        batch_size: usize,
        patch_size: usize,
    ) -> Result<Self> {
        if prediction_length == 0 || context_length == 0 || batch_size == 0 || min_past == 0 {
            return Err(Error::InvalidInput(
                "prediction length, context length, min_past and batch size must be at least 1".into(),
            ));
        }
        let total = tasks.len();
        let min_length = min_past + prediction_length;
        let tasks: Vec<PreparedInput> = tasks.into_iter().filter(|t| t.context_len >= min_length).collect();
        if tasks.is_empty() {
            return Err(Error::InvalidInput(format!(
                "no series is long enough: all {total} have fewer than min_past + prediction_length = \
                 {min_past} + {prediction_length} = {min_length} points; give longer series or lower \
                 --min-past / --prediction-length"
            )));
        }
        let dropped = total - tasks.len();
        let num_output_patches = prediction_length.div_ceil(patch_size);
        Ok(TrainDataset { tasks, context_length, prediction_length, min_past, batch_size, num_output_patches, dropped })
    }

    pub fn tasks(&self) -> &[PreparedInput] {
        &self.tasks
    }

    /// A training batch: uniform tasks and uniform cut points until `batch_size` rows.
    pub fn sample(&self, rng: &mut Rng) -> TrainBatch {
        let mut picks = Vec::new();
        let mut rows = 0;
        while rows < self.batch_size {
            let task = rng.below(0, self.tasks.len());
            let len = self.tasks[task].context_len;
            let cut = rng.below(self.min_past, len - self.prediction_length + 1);
            picks.push((task, cut));
            rows += self.tasks[task].n_rows();
        }
        self.build(&picks)
    }

    /// Validation batches: the last window of every task, in order, `batch_size` rows at most
    /// per batch (whole tasks; a batch may overshoot).
    pub fn validation_batches(&self) -> Vec<TrainBatch> {
        let mut batches = Vec::new();
        let mut picks = Vec::new();
        let mut rows = 0;
        for (i, task) in self.tasks.iter().enumerate() {
            picks.push((i, task.context_len - self.prediction_length));
            rows += task.n_rows();
            if rows >= self.batch_size {
                batches.push(self.build(&picks));
                picks.clear();
                rows = 0;
            }
        }
        if !picks.is_empty() {
            batches.push(self.build(&picks));
        }
        batches
    }

    /// Builds the batch of `(task, cut)` picks (`Chronos2Dataset._build_batch`).
    pub fn build(&self, picks: &[(usize, usize)]) -> TrainBatch {
        let h = self.prediction_length;
        let windows: Vec<(usize, usize)> =
            picks.iter().map(|&(_, cut)| (cut.saturating_sub(self.context_length), cut)).collect();
        let width = windows.iter().map(|(start, end)| end - start).max().unwrap_or(0);
        let (mut context, mut future_target, mut future_covariates, mut group_ids) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (group, (&(task, cut), &(start, end))) in picks.iter().zip(&windows).enumerate() {
            let t = &self.tasks[task];
            let first_future_row = t.n_rows() - t.n_future_covariates;
            for r in 0..t.n_rows() {
                let row = &t.context[r * t.context_len..(r + 1) * t.context_len];
                context.extend(std::iter::repeat_n(f32::NAN, width - (end - start)));
                context.extend_from_slice(&row[start..end]);
                let future = &row[cut..cut + h];
                if r < t.n_targets {
                    future_target.extend_from_slice(future);
                } else {
                    future_target.extend(std::iter::repeat_n(f32::NAN, h));
                }
                if r >= first_future_row {
                    future_covariates.extend_from_slice(future);
                } else {
                    future_covariates.extend(std::iter::repeat_n(f32::NAN, h));
                }
                group_ids.push(group as i64);
            }
        }
        let rows = group_ids.len();
        TrainBatch {
            model: ModelBatch {
                context,
                rows,
                context_len: width,
                group_ids,
                future_covariates: Some(future_covariates),
                future_len: h,
                num_output_patches: self.num_output_patches,
            },
            future_target,
            prediction_length: h,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(len: usize, n_targets: usize, n_past: usize, n_future: usize) -> PreparedInput {
        let n = n_targets + n_past + n_future;
        PreparedInput {
            context: (0..n * len).map(|v| v as f32).collect(),
            context_len: len,
            future_covariates: vec![f32::NAN; n * 4],
            prediction_length: 4,
            n_targets,
            n_covariates: n_past + n_future,
            n_future_covariates: n_future,
        }
    }

    #[test]
    fn short_series_are_dropped_and_counted() {
        let ds = TrainDataset::new(vec![task(10, 1, 0, 0), task(5, 1, 0, 0)], 8, 4, 4, 2, 16).unwrap();
        assert_eq!((ds.tasks().len(), ds.dropped), (1, 1));
        let err = TrainDataset::new(vec![task(5, 1, 0, 0)], 8, 4, 4, 2, 16).unwrap_err().to_string();
        assert!(err.contains("no series is long enough"), "{err}");
    }

    #[test]
    fn batches_take_whole_tasks_until_batch_size_rows() {
        let ds = TrainDataset::new(vec![task(20, 2, 1, 1)], 8, 4, 4, 5, 16).unwrap();
        let b = ds.sample(&mut Rng::new(1));
        // 4 rows per task: 2 tasks reach 5 rows (overshooting to 8), each its own group
        assert_eq!(b.model.rows, 8);
        assert_eq!(b.model.group_ids, vec![0, 0, 0, 0, 1, 1, 1, 1]);
    }

    #[test]
    fn validation_window_masks_covariate_targets_and_keeps_known_future() {
        let ds = TrainDataset::new(vec![task(12, 1, 1, 1)], 6, 4, 4, 8, 16).unwrap();
        let b = &ds.validation_batches()[0];
        assert_eq!(b.model.context_len, 6);
        assert_eq!(&b.model.context[..6], &[2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
        assert_eq!(&b.future_target[..4], &[8.0, 9.0, 10.0, 11.0]);
        assert!(b.future_target[4..].iter().all(|v| v.is_nan()));
        let fc = b.model.future_covariates.as_ref().unwrap();
        assert!(fc[..8].iter().all(|v| v.is_nan()));
        assert_eq!(&fc[8..], &[32.0, 33.0, 34.0, 35.0]);
    }
}

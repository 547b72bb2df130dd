//! Cutting a training batch into micro-batches of whole groups.
//!
//! A step's loss is a sum over rows divided by `rows x horizon` (`_compute_loss`), and rows only
//! attend to rows of their own group. So the loss and gradients of a batch are those of its
//! micro-batches, each weighted by its share of the rows ([`TrainBatch::row_share`]). A backend
//! runs a large batch that way to bound the memory of a step.

use std::collections::HashMap;
use std::ops::Range;

use super::dataset::TrainBatch;
use crate::config::ModelConfig;
use crate::error::Result;

/// The memory the kept graphs of a training step may take: what keeps the weights plus the kept
/// graphs within max(1.5x the model's fp32 weights, 768 MiB), and at least half the weights. On
/// the full-size model (478 MB) that is about 330 MB, so a step stays within twice the weights;
/// on a small model (chronos2-mini, 29 MB) memory is not what limits training and cutting a step
/// costs time (on the CPU backend every block of chronos2-mini recomputed took +40% CPU time per
/// step at 32 rows), so up to ~740 MB of graphs are kept.
pub fn activation_budget(weight_bytes: usize) -> usize {
    const TOTAL_FLOOR: usize = 768 << 20;
    let total = (weight_bytes + weight_bytes / 2).max(TOTAL_FLOOR);
    (total - weight_bytes).max(weight_bytes / 2)
}

/// The most rows of `row_bytes` each that fit in [`activation_budget`] of a model with
/// `weight_bytes` of fp32 weights; at least one.
pub fn rows_within_budget(row_bytes: usize, weight_bytes: usize) -> usize {
    (activation_budget(weight_bytes) / row_bytes.max(1)).max(1)
}

impl TrainBatch {
    /// The tokens a row of the batch has in the encoder: its context patches, the REG token
    /// if the model has one, and the output patches.
    pub fn tokens_per_row(&self, config: &ModelConfig) -> usize {
        let m = &self.model;
        m.context_len.div_ceil(config.patch_size())
            + usize::from(config.chronos_config.use_reg_token)
            + m.num_output_patches
    }

    /// The loss and the gradient of every trainable parameter of the batch, from `step` run on
    /// its micro-batches of at most `max_rows` rows ([`TrainBatch::micro_batches`]), each
    /// weighted by its share of the rows; `step` runs once, on the batch itself, when it fits.
    pub fn loss_and_grads_in_parts(
        &self,
        max_rows: usize,
        mut step: impl FnMut(&TrainBatch) -> Result<(f32, Vec<Vec<f32>>)>,
    ) -> Result<(f32, Vec<Vec<f32>>)> {
        if self.model.rows <= max_rows {
            return step(self);
        }
        let mut loss = 0f64;
        let mut sums: Vec<Vec<f32>> = Vec::new();
        for part in self.micro_batches(max_rows) {
            let share = self.row_share(&part);
            let (part_loss, grads) = step(&part)?;
            loss += f64::from(share) * f64::from(part_loss);
            if sums.is_empty() {
                sums = grads.iter().map(|g| vec![0.0; g.len()]).collect();
            }
            for (sum, grad) in sums.iter_mut().zip(grads) {
                sum.iter_mut().zip(grad).for_each(|(s, g)| *s += share * g);
            }
        }
        Ok((loss as f32, sums))
    }

    /// The batch as consecutive parts of whole groups, each of at most `max_rows` rows where its
    /// groups allow (a part is never smaller than the group, or the run of interleaved groups,
    /// that it starts with), in row order. One part, a copy of the batch, when it fits.
    pub fn micro_batches(&self, max_rows: usize) -> Vec<TrainBatch> {
        let rows = self.model.rows;
        let ends = self.group_closing_ends();
        let mut parts = Vec::new();
        let (mut start, mut next) = (0, 0);
        while start < rows {
            // the furthest end within `max_rows`, else the nearest one
            let mut end = ends[next];
            next += 1;
            while next < ends.len() && ends[next] - start <= max_rows {
                end = ends[next];
                next += 1;
            }
            parts.push(self.rows(start..end));
            start = end;
        }
        parts
    }

    /// The share of the batch's rows that `part` holds.
    pub fn row_share(&self, part: &TrainBatch) -> f32 {
        part.model.rows as f32 / self.model.rows.max(1) as f32
    }

    /// The row indices `e` (ascending, the last one `rows`) before which every group that has
    /// started has ended: where the batch can be cut.
    fn group_closing_ends(&self) -> Vec<usize> {
        let ids = &self.model.group_ids;
        let last: HashMap<i64, usize> = ids.iter().enumerate().map(|(r, &g)| (g, r)).collect();
        let mut reach = 0;
        let mut ends = Vec::new();
        for (r, g) in ids.iter().enumerate() {
            reach = reach.max(last[g]);
            if reach == r {
                ends.push(r + 1);
            }
        }
        ends
    }

    /// Rows `range` of the batch.
    fn rows(&self, range: Range<usize>) -> TrainBatch {
        let m = &self.model;
        let slice = |values: &[f32], width: usize| values[range.start * width..range.end * width].to_vec();
        TrainBatch {
            model: crate::forecaster::ModelBatch {
                context: slice(&m.context, m.context_len),
                rows: range.len(),
                context_len: m.context_len,
                group_ids: m.group_ids[range.clone()].to_vec(),
                future_covariates: m.future_covariates.as_ref().map(|f| slice(f, m.future_len)),
                future_len: m.future_len,
                num_output_patches: m.num_output_patches,
            },
            future_target: slice(&self.future_target, self.prediction_length),
            prediction_length: self.prediction_length,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::activation_budget;
    use crate::forecaster::ModelBatch;
    use crate::train::TrainBatch;

    /// Rows numbered in every field, so that a part shows which rows it took.
    fn batch(group_ids: Vec<i64>) -> TrainBatch {
        let rows = group_ids.len();
        let numbered = |width: usize| (0..rows * width).map(|i| (i / width) as f32).collect::<Vec<f32>>();
        TrainBatch {
            model: ModelBatch {
                context: numbered(3),
                rows,
                context_len: 3,
                group_ids,
                future_covariates: Some(numbered(2)),
                future_len: 2,
                num_output_patches: 1,
            },
            future_target: numbered(2),
            prediction_length: 2,
        }
    }

    fn part_rows(parts: &[TrainBatch]) -> Vec<Vec<i64>> {
        parts.iter().map(|p| p.model.group_ids.clone()).collect()
    }

    /// A step's weights plus kept graphs stay within max(1.5x the weights, 768 MiB).
    #[test]
    fn the_budget_keeps_weights_and_graphs_within_the_larger_of_one_and_a_half_weights_and_768_mib() {
        let mib = 1usize << 20;
        assert_eq!(activation_budget(29_000_000), 768 * mib - 29_000_000, "chronos2-mini");
        assert_eq!(activation_budget(478_000_000), 768 * mib - 478_000_000, "full-size: 768 MiB > 1.5x");
        assert_eq!(activation_budget(2_000_000_000), 1_000_000_000, "large: half the weights");
        assert_eq!(activation_budget(0), 768 * mib);
    }

    /// Parts' losses and gradients are combined by their share of the rows; a batch that fits
    /// is one call on the batch itself.
    #[test]
    fn parts_are_combined_by_their_share_of_the_rows() {
        let b = batch(vec![0, 0, 1, 2]);
        // a step whose loss and gradient are the mean of the rows' first context value
        let mean = |p: &TrainBatch| -> crate::Result<(f32, Vec<Vec<f32>>)> {
            let rows = p.model.rows;
            let m = (0..rows).map(|r| p.model.context[r * 3]).sum::<f32>() / rows as f32;
            Ok((m, vec![vec![m, 2.0 * m]]))
        };
        let mut calls = 0;
        let (loss, grads) = b
            .loss_and_grads_in_parts(2, |p| {
                calls += 1;
                mean(p)
            })
            .unwrap();
        assert_eq!(calls, 2);
        let whole = mean(&b).unwrap();
        assert!((loss - whole.0).abs() < 1e-6, "{loss} vs {}", whole.0);
        assert!(grads[0].iter().zip(&whole.1[0]).all(|(a, b)| (a - b).abs() < 1e-6), "{grads:?}");
        let mut calls = 0;
        let fits = b
            .loss_and_grads_in_parts(4, |p| {
                calls += 1;
                mean(p)
            })
            .unwrap();
        assert_eq!((calls, fits), (1, whole));
    }

    #[test]
    fn parts_hold_whole_groups_of_at_most_max_rows() {
        let b = batch(vec![0, 0, 1, 2, 2, 2, 3, 4, 4]);
        assert_eq!(part_rows(&b.micro_batches(3)), vec![vec![0, 0, 1], vec![2, 2, 2], vec![3, 4, 4]]);
        assert_eq!(part_rows(&b.micro_batches(4)), vec![vec![0, 0, 1], vec![2, 2, 2, 3], vec![4, 4]]);
        assert_eq!(b.micro_batches(9), vec![b.clone()]);
        // a group larger than max_rows is a part of its own
        assert_eq!(part_rows(&b.micro_batches(1)), vec![vec![0, 0], vec![1], vec![2, 2, 2], vec![3], vec![4, 4]]);
        // the rows' values travel with them
        let parts = b.micro_batches(3);
        assert_eq!(parts[1].model.context, vec![3.0, 3.0, 3.0, 4.0, 4.0, 4.0, 5.0, 5.0, 5.0]);
        assert_eq!(parts[2].future_target, vec![6.0, 6.0, 7.0, 7.0, 8.0, 8.0]);
        assert_eq!(parts[2].model.future_covariates.as_deref(), Some(&[6.0, 6.0, 7.0, 7.0, 8.0, 8.0][..]));
        let shares: f32 = parts.iter().map(|p| b.row_share(p)).sum();
        assert!((shares - 1.0).abs() < 1e-6);
    }

    /// Interleaved groups are never cut apart.
    #[test]
    fn interleaved_groups_stay_together() {
        let b = batch(vec![0, 1, 0, 2, 3, 2]);
        assert_eq!(part_rows(&b.micro_batches(1)), vec![vec![0, 1, 0], vec![2, 3, 2]]);
    }
}

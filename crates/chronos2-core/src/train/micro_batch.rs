//! Cutting a training batch into micro-batches of whole groups.
//!
//! A step's loss is a sum over rows divided by `rows x horizon` (`_compute_loss`), and rows only
//! attend to rows of their own group. So the loss and gradients of a batch are those of its
//! micro-batches, each weighted by its share of the rows ([`TrainBatch::row_share`]). A backend
//! runs a large batch that way to bound the memory of a step.

use std::collections::HashMap;
use std::ops::Range;

use super::dataset::TrainBatch;

impl TrainBatch {
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

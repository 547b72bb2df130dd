//! Sequential batching by whole items, context truncation and left padding, as
//! `Chronos2Dataset._generate_sequential_batches` / `_build_batch` (TEST mode) and
//! `left_pad_and_cat_2D`.

use std::ops::Range;

use crate::error::{Error, Result};

use super::prepare::PreparedInput;

/// One batch of whole items, ready for the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Indices (into the prepared inputs) of the items in this batch.
    pub items: Range<usize>,
    /// `(rows, context_len)` row-major: each item's (truncated) context, left-padded with NaN to
    /// the longest in the batch, items stacked.
    pub context: Vec<f32>,
    pub rows: usize,
    pub context_len: usize,
    /// Index of the item within the batch for each row (all 0 with cross-learning).
    pub group_ids: Vec<i64>,
    /// `(rows, prediction_length)` row-major known future covariates (NaN = unknown).
    pub future_covariates: Vec<f32>,
    pub prediction_length: usize,
    /// Per item, the rows holding its targets.
    pub target_rows: Vec<Range<usize>>,
}

/// Splits items into batches as the reference does: items are added in order while the batch
/// holds fewer than `batch_size` rows, so a batch may exceed `batch_size` by its last item's rows;
/// items are never split. Returns the item index ranges.
pub fn plan_batches(prepared: &[PreparedInput], batch_size: usize) -> Result<Vec<Range<usize>>> {
    if batch_size == 0 {
        return Err(Error::InvalidInput("batch_size must be at least 1".to_string()));
    }
    let mut out = Vec::new();
    let mut start = 0;
    while start < prepared.len() {
        let mut end = start;
        let mut rows = 0;
        while end < prepared.len() && rows < batch_size {
            rows += prepared[end].n_rows();
            end += 1;
        }
        out.push(start..end);
        start = end;
    }
    Ok(out)
}

/// Builds the batch of `prepared[items]`: each item keeps its last `context_length` steps, is
/// left-padded with NaN to the longest item of the batch; group ids are the item's index in the
/// batch (all 0 with `cross_learning`).
pub fn build_batch(
    prepared: &[PreparedInput],
    items: Range<usize>,
    context_length: usize,
    cross_learning: bool,
) -> Result<Batch> {
    if context_length == 0 {
        return Err(Error::InvalidInput("context_length must be at least 1".to_string()));
    }
    let slice = &prepared[items.clone()];
    if slice.is_empty() {
        return Err(Error::InvalidInput("a batch needs at least one item".to_string()));
    }
    let prediction_length = slice[0].prediction_length;
    if let Some((i, p)) = slice.iter().enumerate().find(|(_, p)| p.prediction_length != prediction_length) {
        return Err(Error::InvalidInput(format!(
            "item {}: prediction_length {} differs from the batch's {prediction_length}",
            items.start + i,
            p.prediction_length
        )));
    }
    let kept = |p: &PreparedInput| p.context_len.min(context_length);
    let context_len = slice.iter().map(kept).max().unwrap_or(0);
    let rows: usize = slice.iter().map(PreparedInput::n_rows).sum();

    let mut context = Vec::with_capacity(rows * context_len);
    let mut future_covariates = Vec::with_capacity(rows * prediction_length);
    let mut group_ids = Vec::with_capacity(rows);
    let mut target_rows = Vec::with_capacity(slice.len());
    let mut row = 0;
    for (g, p) in slice.iter().enumerate() {
        let len = kept(p);
        for r in 0..p.n_rows() {
            let full = p.context_row(r);
            context.extend(std::iter::repeat_n(f32::NAN, context_len - len));
            context.extend_from_slice(&full[full.len() - len..]);
            future_covariates.extend_from_slice(p.future_row(r));
            group_ids.push(if cross_learning { 0 } else { g as i64 });
        }
        target_rows.push(row..row + p.n_targets);
        row += p.n_rows();
    }
    Ok(Batch { items, context, rows, context_len, group_ids, future_covariates, prediction_length, target_rows })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::input::SeriesInput;
    use crate::pipeline::prepare::prepare;

    fn multi(n_targets: usize, len: usize, base: f32) -> SeriesInput {
        SeriesInput {
            targets: (0..n_targets).map(|t| (0..len).map(|i| base + (t * 100 + i) as f32).collect()).collect(),
            covariates: vec![],
        }
    }

    #[test]
    fn batches_take_whole_items_and_may_overflow() {
        // rows: 2, 3, 1, 1, 4 with batch_size 4 -> [0,1] (5 rows), [2,3,4] (6 rows)
        let items: Vec<_> = [2, 3, 1, 1, 4].iter().map(|&n| multi(n, 3, 0.0)).collect();
        let prepared = prepare(&items, 2).unwrap();
        assert_eq!(plan_batches(&prepared, 4).unwrap(), vec![0..2, 2..5]);
        assert_eq!(plan_batches(&prepared, 1).unwrap(), vec![0..1, 1..2, 2..3, 3..4, 4..5]);
        assert_eq!(plan_batches(&prepared, 100).unwrap(), vec![0..5]);
        assert!(plan_batches(&prepared, 0).is_err());
    }

    #[test]
    fn truncates_left_pads_and_groups() {
        let items = vec![multi(1, 5, 0.0), multi(2, 2, 1000.0), multi(1, 3, 2000.0)];
        let prepared = prepare(&items, 2).unwrap();
        let batch = build_batch(&prepared, 0..3, 4, false).unwrap();
        assert_eq!((batch.rows, batch.context_len), (4, 4));
        let n = f32::NAN;
        let expected = [
            1.0, 2.0, 3.0, 4.0, // item 0: last 4 of 0..5
            n, n, 1000.0, 1001.0, // item 1 target 0
            n, n, 1100.0, 1101.0, // item 1 target 1
            n, 2000.0, 2001.0, 2002.0, // item 2
        ];
        for (a, e) in batch.context.iter().zip(&expected) {
            assert!(a == e || (a.is_nan() && e.is_nan()), "{:?}", batch.context);
        }
        assert_eq!(batch.group_ids, vec![0, 1, 1, 2]);
        assert_eq!(batch.target_rows, vec![0..1, 1..3, 3..4]);
        assert_eq!(batch.future_covariates.len(), 8);

        let cross = build_batch(&prepared, 1..3, 8, true).unwrap();
        assert_eq!(cross.group_ids, vec![0, 0, 0]);
        assert_eq!(cross.context_len, 3);
        assert_eq!(cross.target_rows, vec![0..2, 2..3]);
    }
}

//! Encoder embeddings of items: `Chronos2Pipeline.embed` of the reference, plus pooling.

use crate::error::{Error, Result};
use crate::forecaster::{Forecaster, ModelBatch};

use super::batching::{build_batch, plan_batches, Batch};
use super::input::SeriesInput;
use super::predict::resolve_context_length;
use super::prepare::prepare_without_future;

/// How the `(seq_len, d_model)` hidden states of a row are reduced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// The hidden state of the `[REG]` token (position `N`, after the `N` context patches).
    RegToken,
    /// The mean over the context patches with at least one observed value.
    MeanContext,
    /// The hidden state of the last context patch (position `N - 1`).
    LastContextPatch,
    /// No pooling: all `N + 2` positions (context patches, `[REG]`, one future patch), as the reference.
    All,
}

/// The embedding of one item's target rows.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemEmbedding {
    /// `(n_variates, tokens, d_model)` row-major.
    pub values: Vec<f32>,
    /// Number of target rows (covariate rows are encoded but not returned, as in the reference).
    pub n_variates: usize,
    /// 1 for pooled embeddings; `N + 2` for [`Pooling::All`], where `N` is the number of context
    /// patches of the item's *batch* (items shorter than the batch's longest keep the leading
    /// all-padding patches, as the reference does).
    pub tokens: usize,
    pub d_model: usize,
    /// Instance-norm location per target row.
    pub loc: Vec<f32>,
    /// Instance-norm scale per target row.
    pub scale: Vec<f32>,
}

/// Embeds every item: the reference `embed(items, batch_size, context_length)` (prediction length
/// 0, one output patch, no future covariates, no cross-learning), then `pooling` per row.
///
/// Known future covariate values are ignored (known-future covariates keep their row position).
/// With [`Pooling::MeanContext`] a row without any observed value gets NaN.
/// `progress(done_items, total_items)` is called after each batch.
pub fn embed(
    model: &dyn Forecaster,
    items: &[SeriesInput],
    batch_size: usize,
    context_length: Option<usize>,
    pooling: Pooling,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<ItemEmbedding>> {
    if items.is_empty() {
        return Err(Error::InvalidInput("no items to embed".to_string()));
    }
    let config = model.config();
    if pooling == Pooling::RegToken && !config.chronos_config.use_reg_token {
        return Err(Error::InvalidInput("RegToken pooling needs a model with use_reg_token".to_string()));
    }
    let context_length = resolve_context_length(context_length, config);
    let patch_size = config.chronos_config.input_patch_size;
    let prepared = prepare_without_future(items)?;
    let plan = plan_batches(&prepared, batch_size)?;
    let mut out = Vec::with_capacity(items.len());
    for range in plan {
        let batch = build_batch(&prepared, range.clone(), context_length, false)?;
        out.extend(embed_batch(model, &batch, patch_size, pooling)?);
        crate::interrupt::check()?;
        progress(range.end, items.len());
    }
    Ok(out)
}

fn embed_batch(
    model: &dyn Forecaster,
    batch: &Batch,
    patch_size: usize,
    pooling: Pooling,
) -> Result<Vec<ItemEmbedding>> {
    let model_batch = ModelBatch {
        context: batch.context.clone(),
        rows: batch.rows,
        context_len: batch.context_len,
        group_ids: batch.group_ids.clone(),
        future_covariates: None,
        future_len: 0,
        num_output_patches: 1,
    };
    let enc = model.encode(&model_batch)?;
    let n = enc.num_context_patches;
    let reg = model.config().chronos_config.use_reg_token as usize;
    let (seq, d) = (enc.seq_len, enc.d_model);
    if enc.rows != batch.rows
        || seq != n + reg + 1
        || n != batch.context_len.div_ceil(patch_size)
        || enc.hidden.len() != enc.rows * seq * d
        || enc.loc.len() != enc.rows
        || enc.scale.len() != enc.rows
    {
        return Err(Error::Backend(format!(
            "model returned an encoding of {} rows x {seq} tokens x {d} ({} context patches, {} values, {} locs, \
             {} scales) for {} rows of {} steps",
            enc.rows,
            n,
            enc.hidden.len(),
            enc.loc.len(),
            enc.scale.len(),
            batch.rows,
            batch.context_len
        )));
    }

    let pooled_row = |row: usize| -> Vec<f32> {
        let hidden = &enc.hidden[row * seq * d..(row + 1) * seq * d];
        let at = |pos: usize| hidden[pos * d..(pos + 1) * d].to_vec();
        match pooling {
            Pooling::All => hidden.to_vec(),
            Pooling::RegToken => at(n),
            Pooling::LastContextPatch => at(n - 1),
            Pooling::MeanContext => {
                let mask =
                    patch_mask(&batch.context[row * batch.context_len..(row + 1) * batch.context_len], patch_size);
                let count = mask.iter().filter(|m| **m).count();
                let mut sum = vec![0f64; d];
                for (p, _) in mask.iter().enumerate().filter(|(_, m)| **m) {
                    for (s, v) in sum.iter_mut().zip(&hidden[p * d..(p + 1) * d]) {
                        *s += *v as f64;
                    }
                }
                sum.into_iter().map(|s| (s / count as f64) as f32).collect()
            }
        }
    };
    let tokens = if pooling == Pooling::All { seq } else { 1 };
    Ok(batch
        .target_rows
        .iter()
        .map(|rows| ItemEmbedding {
            values: rows.clone().flat_map(pooled_row).collect(),
            n_variates: rows.len(),
            tokens,
            d_model: d,
            loc: enc.loc[rows.clone()].to_vec(),
            scale: enc.scale[rows.clone()].to_vec(),
        })
        .collect())
}

/// The model's patch attention mask of one context row: the row is left-padded with NaN to a
/// multiple of `patch_size`; a patch is attended to when it has at least one observed value.
pub fn patch_mask(row: &[f32], patch_size: usize) -> Vec<bool> {
    let n = row.len().div_ceil(patch_size);
    let pad = n * patch_size - row.len();
    (0..n)
        .map(|p| {
            let start = (p * patch_size).saturating_sub(pad);
            let end = (p + 1) * patch_size - pad;
            row[start..end].iter().any(|v| !v.is_nan())
        })
        .collect()
}

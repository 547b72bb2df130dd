//! Pipeline: predict and embed on items, as `Chronos2Pipeline` of the reference
//! (`chronos-forecasting` 2.3.2).
//!
//! - [`prepare()`]: [`SeriesInput`]s -> [`PreparedInput`]s (row layout, categorical encoding,
//!   validation).
//! - [`plan_batches`] / [`build_batch`]: sequential batching by whole items, context truncation,
//!   left padding, group ids.
//! - [`predict()`] / [`predict_raw`]: forecasts, incl. the long-horizon rollout.
//! - [`embed()`]: encoder embeddings with optional pooling.

mod batching;
mod embed;
mod input;
mod predict;
mod prepare;
#[cfg(test)]
mod tests;

pub use batching::{build_batch, plan_batches, Batch};
pub use embed::{embed, patch_mask, ItemEmbedding, Pooling};
pub use input::*;
pub use predict::{
    model_prediction_length, predict, predict_raw, select_quantiles, ItemForecast, PredictOptions, RawForecast,
    DEFAULT_QUANTILE_LEVELS,
};
pub use prepare::{prepare, sort_covariates_by_name, PreparedInput};

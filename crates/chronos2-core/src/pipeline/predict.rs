//! Forecasting items: `Chronos2Pipeline.predict` / `_predict_batch` (incl. the long-horizon
//! rollout) / `predict_quantiles` of the reference.

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::forecaster::{Forecaster, ModelBatch};
use crate::quantiles::{interpolate_quantiles, prob_mass_per_quantile_level, weighted_quantile};

use super::batching::{build_batch, plan_batches, Batch};
use super::input::SeriesInput;
use super::prepare::prepare;

/// The reference's default `quantile_levels` / `unrolled_quantiles`: 0.1, 0.2, ..., 0.9.
pub const DEFAULT_QUANTILE_LEVELS: [f32; 9] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];

/// Options of [`predict`], with the reference's defaults ([`Default`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PredictOptions {
    /// Forecast horizon; `None` = the model's `max_output_patches * output_patch_size`.
    pub prediction_length: Option<usize>,
    /// Levels returned by [`predict`] (default 0.1..0.9); levels that are not model levels are
    /// interpolated, levels outside the model's range get the edge values.
    pub quantile_levels: Vec<f32>,
    /// Rows (targets + covariates) per model call; items are never split (default 256).
    pub batch_size: usize,
    /// Steps of context kept per item; `None` or more than the model's = the model's.
    pub context_length: Option<usize>,
    /// All items of a batch form one group (results then depend on `batch_size`).
    pub cross_learning: bool,
    /// Output patches per model call before the long-horizon rollout; `None` = the config's.
    pub max_output_patches: Option<usize>,
    /// Quantile levels fed back in the long-horizon rollout; must be model levels (default 0.1..0.9).
    pub unrolled_quantiles: Vec<f32>,
}

impl Default for PredictOptions {
    fn default() -> Self {
        PredictOptions {
            prediction_length: None,
            quantile_levels: DEFAULT_QUANTILE_LEVELS.to_vec(),
            batch_size: 256,
            context_length: None,
            cross_learning: false,
            max_output_patches: None,
            unrolled_quantiles: DEFAULT_QUANTILE_LEVELS.to_vec(),
        }
    }
}

impl PredictOptions {
    /// Defaults with the given horizon.
    pub fn new(prediction_length: usize) -> Self {
        PredictOptions { prediction_length: Some(prediction_length), ..Default::default() }
    }

    /// The horizon used with `config`.
    pub fn resolved_prediction_length(&self, config: &ModelConfig) -> usize {
        self.prediction_length.unwrap_or_else(|| model_prediction_length(config))
    }

    /// The context length used with `config` (capped at the model's).
    pub fn resolved_context_length(&self, config: &ModelConfig) -> usize {
        resolve_context_length(self.context_length, config)
    }

    /// The warnings the reference would emit for these options (it still runs): horizon longer
    /// than the model's, context length reset to the model's, quantile levels outside the model's.
    pub fn warnings(&self, config: &ModelConfig) -> Vec<String> {
        let mut out = Vec::new();
        let model_h = model_prediction_length(config);
        let h = self.resolved_prediction_length(config);
        if h > model_h {
            out.push(format!(
                "prediction_length {h} is longer than the model's {model_h}; longer predictions are produced \
                 autoregressively and their quality may degrade"
            ));
        }
        if let Some(c) = self.context_length {
            let model_c = config.chronos_config.context_length;
            if c > model_c {
                out.push(format!(
                    "context_length {c} is greater than the model's context length {model_c}; using {model_c}"
                ));
            }
        }
        let q = config.quantiles();
        let (lo, hi) = (q[0], q[q.len() - 1]);
        let outside: Vec<f32> = self.quantile_levels.iter().copied().filter(|&l| l < lo || l > hi).collect();
        if !outside.is_empty() {
            let list = outside.iter().map(f32::to_string).collect::<Vec<_>>().join(", ");
            out.push(if outside.len() == 1 {
                format!("quantile level {list} is outside the model's range [{lo}, {hi}]; it gets the edge quantile")
            } else {
                format!(
                    "quantile levels {list} are outside the model's range [{lo}, {hi}]; they get the edge quantiles"
                )
            });
        }
        out
    }
}

/// `max_output_patches * output_patch_size` of the config (the reference's default horizon).
pub fn model_prediction_length(config: &ModelConfig) -> usize {
    config.chronos_config.max_output_patches * config.chronos_config.output_patch_size
}

pub(crate) fn resolve_context_length(requested: Option<usize>, config: &ModelConfig) -> usize {
    let model_c = config.chronos_config.context_length;
    requested.map_or(model_c, |c| c.min(model_c))
}

/// The forecast of one item at the model's own quantile levels (the reference `predict` output).
#[derive(Debug, Clone, PartialEq)]
pub struct RawForecast {
    /// `(n_targets, num_quantiles, prediction_length)` row-major.
    pub values: Vec<f32>,
    pub n_targets: usize,
    pub num_quantiles: usize,
    pub prediction_length: usize,
}

/// The forecast of one item (the reference `predict_quantiles` output).
#[derive(Debug, Clone, PartialEq)]
pub struct ItemForecast {
    /// `(n_targets, prediction_length, quantile_levels.len())` row-major.
    pub quantiles: Vec<f32>,
    /// `(n_targets, prediction_length)`: the 0.5 quantile (the reference's `mean`).
    pub median: Vec<f32>,
    pub n_targets: usize,
    pub prediction_length: usize,
    pub quantile_levels: Vec<f32>,
}

/// Forecasts every item: `predict_quantiles(items, **options)` of the reference.
///
/// `progress(done_items, total_items)` is called after each batch.
pub fn predict(
    model: &dyn Forecaster,
    items: &[SeriesInput],
    options: &PredictOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<ItemForecast>> {
    let model_levels = model.config().quantiles().to_vec();
    check_levels("quantile_levels", &options.quantile_levels)?;
    let raw = predict_raw(model, items, options, progress)?;
    raw.iter().map(|r| select_quantiles(r, &model_levels, &options.quantile_levels)).collect()
}

/// Levels within [0, 1]. No levels is allowed, as in the reference (`predict_quantiles` then
/// returns empty quantiles and the mean).
fn check_levels(what: &str, levels: &[f32]) -> Result<()> {
    if let Some(bad) = levels.iter().find(|l| !(0.0..=1.0).contains(*l)) {
        return Err(Error::InvalidInput(format!("{what} must be between 0 and 1, found {bad}")));
    }
    Ok(())
}

/// `predict_quantiles`' conversion of one [`RawForecast`] to the requested levels: indexing when
/// every level is a model level, else `interpolate_quantiles`. The median is the model's 0.5
/// level (interpolated if the model has none).
pub fn select_quantiles(raw: &RawForecast, model_levels: &[f32], levels: &[f32]) -> Result<ItemForecast> {
    let (nt, nq, h) = (raw.n_targets, raw.num_quantiles, raw.prediction_length);
    if nq != model_levels.len() || raw.values.len() != nt * nq * h {
        return Err(Error::InvalidInput(format!(
            "forecast of shape ({nt}, {nq}, {h}) with {} values does not match {} model levels",
            raw.values.len(),
            model_levels.len()
        )));
    }
    // (n_targets, Q, H) -> (n_targets * H, Q)
    let mut by_step = Vec::with_capacity(raw.values.len());
    for t in 0..nt {
        for s in 0..h {
            for q in 0..nq {
                by_step.push(raw.values[(t * nq + q) * h + s]);
            }
        }
    }
    let pick = |wanted: &[f32]| -> Result<Vec<f32>> {
        let indices: Option<Vec<usize>> = wanted.iter().map(|l| model_levels.iter().position(|m| m == l)).collect();
        match indices {
            Some(indices) => {
                Ok(by_step.chunks_exact(nq).flat_map(|row| indices.iter().map(move |&i| row[i])).collect())
            }
            None => interpolate_quantiles(wanted, model_levels, &by_step),
        }
    };
    Ok(ItemForecast {
        quantiles: pick(levels)?,
        median: pick(&[0.5])?,
        n_targets: nt,
        prediction_length: h,
        quantile_levels: levels.to_vec(),
    })
}

/// Forecasts every item at the model's quantile levels: the reference `Chronos2Pipeline.predict`.
pub fn predict_raw(
    model: &dyn Forecaster,
    items: &[SeriesInput],
    options: &PredictOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<RawForecast>> {
    let config = model.config();
    if items.is_empty() {
        return Err(Error::InvalidInput("no items to forecast".to_string()));
    }
    let prediction_length = options.resolved_prediction_length(config);
    if prediction_length == 0 {
        return Err(Error::InvalidInput("prediction_length must be at least 1".to_string()));
    }
    let max_output_patches = options.max_output_patches.unwrap_or(config.chronos_config.max_output_patches);
    if max_output_patches == 0 {
        return Err(Error::InvalidInput("max_output_patches must be at least 1".to_string()));
    }
    let model_levels = config.quantiles();
    if let Some(bad) = options.unrolled_quantiles.iter().find(|u| !model_levels.contains(u)) {
        return Err(Error::InvalidInput(format!(
            "unrolled quantile {bad} is not one of the model's quantiles {model_levels:?}"
        )));
    }
    let context_length = options.resolved_context_length(config);
    let rollout = Rollout::new(config, &options.unrolled_quantiles, prediction_length, max_output_patches)?;

    let prepared = prepare(items, prediction_length)?;
    let plan = plan_batches(&prepared, options.batch_size)?;
    let mut out = Vec::with_capacity(items.len());
    for range in plan {
        let batch = build_batch(&prepared, range.clone(), context_length, options.cross_learning)?;
        let values = predict_batch(model, &batch, &rollout)?;
        let nq = model_levels.len();
        let per_row = nq * prediction_length;
        for rows in &batch.target_rows {
            out.push(RawForecast {
                values: values[rows.start * per_row..rows.end * per_row].to_vec(),
                n_targets: rows.len(),
                num_quantiles: nq,
                prediction_length,
            });
        }
        crate::interrupt::check()?;
        progress(range.end, items.len());
    }
    Ok(out)
}

/// Settings of `_predict_batch` shared by every batch.
struct Rollout {
    prediction_length: usize,
    max_output_patches: usize,
    patch_size: usize,
    model_context_length: usize,
    model_levels: Vec<f32>,
    unrolled: Vec<f32>,
    /// `outer(mass(unrolled), mass(model levels))`, flattened path-major; empty when no rollout.
    sample_weights: Vec<f32>,
}

impl Rollout {
    fn new(
        config: &ModelConfig,
        unrolled: &[f32],
        prediction_length: usize,
        max_output_patches: usize,
    ) -> Result<Self> {
        let patch_size = config.chronos_config.output_patch_size;
        let model_levels = config.quantiles().to_vec();
        let needed = prediction_length > max_output_patches * patch_size;
        let sample_weights = if needed {
            if unrolled.is_empty() {
                return Err(Error::InvalidInput(
                    "unrolled_quantiles must not be empty for a prediction_length beyond max_output_patches".into(),
                ));
            }
            let mu = prob_mass_per_quantile_level(unrolled)?;
            let mq = prob_mass_per_quantile_level(&model_levels)?;
            mu.iter().flat_map(|a| mq.iter().map(move |b| a * b)).collect()
        } else {
            Vec::new()
        };
        Ok(Rollout {
            prediction_length,
            max_output_patches,
            patch_size,
            model_context_length: config.chronos_config.context_length,
            model_levels,
            unrolled: unrolled.to_vec(),
            sample_weights,
        })
    }

    fn num_output_patches(&self, remaining: usize) -> usize {
        remaining.div_ceil(self.patch_size).min(self.max_output_patches)
    }
}

/// One model call (`_predict_step`): future covariates are NaN-padded / cut to the output length.
/// Returns `(rows, Q, num_output_patches * patch_size)`.
#[allow(clippy::too_many_arguments)]
fn predict_step(
    model: &dyn Forecaster,
    rollout: &Rollout,
    context: Vec<f32>,
    rows: usize,
    context_len: usize,
    group_ids: Vec<i64>,
    future: &[f32],
    future_len: usize,
    num_output_patches: usize,
) -> Result<Vec<f32>> {
    let out_len = num_output_patches * rollout.patch_size;
    let mut future_covariates = Vec::with_capacity(rows * out_len);
    for r in 0..rows {
        let row = &future[r * future_len..(r + 1) * future_len];
        let kept = future_len.min(out_len);
        future_covariates.extend_from_slice(&row[..kept]);
        future_covariates.extend(std::iter::repeat_n(f32::NAN, out_len - kept));
    }
    // All-NaN future covariates are the same to the model as none (values and mask both 0).
    let any_known = future_covariates.iter().any(|v| !v.is_nan());
    let batch = ModelBatch {
        context,
        rows,
        context_len,
        group_ids,
        future_covariates: any_known.then_some(future_covariates),
        future_len: if any_known { out_len } else { 0 },
        num_output_patches,
    };
    let forecast = model.forecast(&batch)?;
    let nq = rollout.model_levels.len();
    if forecast.rows != rows
        || forecast.num_quantiles != nq
        || forecast.horizon != out_len
        || forecast.values.len() != rows * nq * out_len
    {
        return Err(Error::Backend(format!(
            "model returned a ({}, {}, {}) forecast with {} values for a ({rows}, {nq}, {out_len}) request",
            forecast.rows,
            forecast.num_quantiles,
            forecast.horizon,
            forecast.values.len()
        )));
    }
    Ok(forecast.values)
}

/// `_predict_batch`: returns `(batch.rows, Q, prediction_length)`.
fn predict_batch(model: &dyn Forecaster, batch: &Batch, rollout: &Rollout) -> Result<Vec<f32>> {
    let rows = batch.rows;
    let nq = rollout.model_levels.len();
    let h_total = rollout.prediction_length;
    let mut remaining = h_total as isize;
    // Each step's prediction, (rows, Q, h_step).
    let mut steps: Vec<(Vec<f32>, usize)> = Vec::new();

    let n_out = rollout.num_output_patches(remaining as usize);
    let mut prediction = predict_step(
        model,
        rollout,
        batch.context.clone(),
        rows,
        batch.context_len,
        batch.group_ids.clone(),
        &batch.future_covariates,
        batch.prediction_length,
        n_out,
    )?;
    let mut h = n_out * rollout.patch_size;
    remaining -= h as isize;

    if remaining > 0 {
        // _prepare_inputs_for_long_horizon_unrolling: one copy of every row per unrolled path.
        let k = rollout.unrolled.len();
        let (t0, f0) = (batch.context_len, batch.prediction_length);
        let mut context = Vec::with_capacity(rows * k * t0);
        let mut future = Vec::with_capacity(rows * k * f0);
        let mut group_ids = Vec::with_capacity(rows * k);
        for r in 0..rows {
            for path in 0..k {
                context.extend_from_slice(&batch.context[r * t0..(r + 1) * t0]);
                future.extend_from_slice(&batch.future_covariates[r * f0..(r + 1) * f0]);
                group_ids.push(batch.group_ids[r] * k as i64 + path as i64);
            }
        }
        let (mut context_len, mut future_len) = (t0, f0);

        while remaining > 0 {
            steps.push((std::mem::take(&mut prediction), h));
            let last = &steps.last().unwrap().0;
            // The current prediction at the unrolled levels: (rows * h, k).
            let mut by_step = Vec::with_capacity(rows * h * nq);
            for r in 0..rows {
                for s in 0..h {
                    for q in 0..nq {
                        by_step.push(last[(r * nq + q) * h + s]);
                    }
                }
            }
            let unrolled = interpolate_quantiles(&rollout.unrolled, &rollout.model_levels, &by_step)?;

            // Append path p's values to path p's context, keep the last model context_length steps,
            // put known future covariates into the appended slice and shift them.
            let new_len = (context_len + h).min(rollout.model_context_length);
            let slide = h.min(future_len);
            let mut new_context = Vec::with_capacity(rows * k * new_len);
            let mut new_future = Vec::with_capacity(rows * k * (future_len - slide));
            let mut full = Vec::with_capacity(context_len + h);
            for r in 0..rows {
                for path in 0..k {
                    let row = r * k + path;
                    full.clear();
                    full.extend_from_slice(&context[row * context_len..(row + 1) * context_len]);
                    full.extend((0..h).map(|s| unrolled[(r * h + s) * k + path]));
                    let start = new_len;
                    let kept = &mut full[context_len + h - start..];
                    let fut_row = &future[row * future_len..(row + 1) * future_len];
                    // context[..., -h:] = where(isnan(future[..., :h]), context[..., -h:], future[..., :h])
                    let m = slide.min(kept.len());
                    for j in 0..m {
                        let fv = fut_row[slide - m + j];
                        if !fv.is_nan() {
                            let at = kept.len() - m + j;
                            kept[at] = fv;
                        }
                    }
                    new_context.extend_from_slice(kept);
                    new_future.extend_from_slice(&fut_row[slide..]);
                }
            }
            context = new_context;
            future = new_future;
            context_len = new_len;
            future_len -= slide;

            let n_out = rollout.num_output_patches(remaining as usize);
            let out = predict_step(
                model,
                rollout,
                context.clone(),
                rows * k,
                context_len,
                group_ids.clone(),
                &future,
                future_len,
                n_out,
            )?;
            h = n_out * rollout.patch_size;
            // (rows * k, Q, h) -> samples (rows * h, k * Q)
            let mut samples = Vec::with_capacity(rows * h * k * nq);
            for r in 0..rows {
                for s in 0..h {
                    for path in 0..k {
                        for q in 0..nq {
                            samples.push(out[((r * k + path) * nq + q) * h + s]);
                        }
                    }
                }
            }
            let reduced = weighted_quantile(&rollout.model_levels, &rollout.sample_weights, &samples)?;
            // (rows * h, Q) -> (rows, Q, h)
            prediction = vec![0f32; rows * nq * h];
            for r in 0..rows {
                for s in 0..h {
                    for q in 0..nq {
                        prediction[(r * nq + q) * h + s] = reduced[(r * h + s) * nq + q];
                    }
                }
            }
            remaining -= h as isize;
        }
    }
    steps.push((prediction, h));

    // Concatenate along the horizon and cut to prediction_length.
    let mut out = Vec::with_capacity(rows * nq * h_total);
    for rq in 0..rows * nq {
        let mut taken = 0;
        for (values, step_h) in &steps {
            let take = (*step_h).min(h_total - taken);
            out.extend_from_slice(&values[rq * step_h..rq * step_h + take]);
            taken += take;
            if taken == h_total {
                break;
            }
        }
    }
    Ok(out)
}

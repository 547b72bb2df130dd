//! Host-side preprocessing done inside the reference `Chronos2Model` before the first layer:
//! instance normalisation (+ arcsinh), patching with masks, time encodings, future patches,
//! rotary tables, and the inverse normalisation of the outputs. All in f32, as the reference.

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::torch_sum::nansum;

/// Epsilon substituted for a zero scale (the reference `InstanceNorm(eps=1e-5)`).
const ZERO_SCALE_EPS: f32 = 1e-5;

/// Per-row location and scale of the instance norm, as the reference's `InstanceNorm`: float32
/// `nanmean` (summed in torch's order: module `torch_sum`) and population std over observed
/// values, `nan_to_num`'d; all-missing rows get 0 and 1, constant rows get scale 1e-5.
pub fn instance_norm_stats(row: &[f32]) -> (f32, f32) {
    let count = row.iter().filter(|v| !v.is_nan()).count();
    if count == 0 {
        return (0.0, 1.0);
    }
    let loc = nan_to_num(nansum(row.len(), |i| row[i]) / count as f32, 0.0);
    let square = |i: usize| {
        let d = row[i] - loc;
        d * d
    };
    let squares = (0..row.len()).filter(|&i| !square(i).is_nan()).count();
    let scale = nan_to_num((nansum(row.len(), square) / squares as f32).sqrt(), 1.0);
    (loc, if scale == 0.0 { ZERO_SCALE_EPS } else { scale })
}

/// `torch.nan_to_num(x, nan)`: NaN -> `nan`, ±inf -> ±`f32::MAX`.
fn nan_to_num(x: f32, nan: f32) -> f32 {
    if x.is_nan() {
        nan
    } else {
        x.clamp(f32::MIN, f32::MAX)
    }
}

/// `(x - loc) / scale`, then `arcsinh` when the model uses it. NaN stays NaN.
pub fn normalize(x: f32, loc: f32, scale: f32, use_arcsinh: bool) -> f32 {
    let z = (x - loc) / scale;
    if use_arcsinh {
        (z as f64).asinh() as f32
    } else {
        z
    }
}

/// Inverse of [`normalize`]: `sinh(y) * scale + loc` (or without `sinh`).
pub fn denormalize(y: f32, loc: f32, scale: f32, use_arcsinh: bool) -> f32 {
    let y = if use_arcsinh { (y as f64).sinh() as f32 } else { y };
    y * scale + loc
}

/// The model's input tokens for one batch, before the patch embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchedInput {
    pub rows: usize,
    /// Context patches per row.
    pub num_context_patches: usize,
    pub num_output_patches: usize,
    /// `(rows, num_context_patches + num_output_patches, 3 * patch)`: per token
    /// `[time encoding, values, mask]`, context patches first, then future patches.
    pub features: Vec<f32>,
    /// `(rows, num_context_patches + 1 + num_output_patches)`: 1 where a token may be attended to
    /// (a context patch with an observed value, the REG token, every future token).
    pub attention_mask: Vec<f32>,
    pub loc: Vec<f32>,
    pub scale: Vec<f32>,
}

impl PatchedInput {
    /// Tokens in the encoder sequence: context patches, REG (if used), future patches.
    pub fn seq_len(&self, use_reg_token: bool) -> usize {
        self.num_context_patches + usize::from(use_reg_token) + self.num_output_patches
    }
}

/// Builds [`PatchedInput`] from a raw batch: the reference's `_prepare_patched_context` and
/// `_prepare_patched_future` (truncation to the model's context length included).
pub fn patch_batch(
    config: &ModelConfig,
    context: &[f32],
    rows: usize,
    context_len: usize,
    future_covariates: Option<(&[f32], usize)>,
    num_output_patches: usize,
) -> Result<PatchedInput> {
    let chronos = &config.chronos_config;
    let patch = config.patch_size();
    if context.len() != rows * context_len {
        return Err(Error::InvalidInput(format!(
            "context has {} values, expected rows ({rows}) x length ({context_len})",
            context.len()
        )));
    }
    if rows == 0 || context_len == 0 {
        return Err(Error::InvalidInput("context must have at least one row and one time step".into()));
    }
    if num_output_patches == 0 {
        return Err(Error::InvalidInput("num_output_patches must be at least 1".into()));
    }
    let kept_len = context_len.min(chronos.context_length);
    let skip = context_len - kept_len;
    let num_context_patches = kept_len.div_ceil(patch);
    let pad = num_context_patches * patch - kept_len;
    let tokens = num_context_patches + num_output_patches;
    let feature_dim = 3 * patch;
    let use_reg = chronos.use_reg_token;
    let seq_len = num_context_patches + usize::from(use_reg) + num_output_patches;
    let time_scale = config.time_encoding_scale();

    let mut features = vec![0f32; rows * tokens * feature_dim];
    let mut attention_mask = vec![1f32; rows * seq_len];
    let mut loc = Vec::with_capacity(rows);
    let mut scale = Vec::with_capacity(rows);

    let context_span = (num_context_patches * patch) as i64;
    for r in 0..rows {
        let row = &context[r * context_len + skip..(r + 1) * context_len];
        let (l, s) = instance_norm_stats(row);
        loc.push(l);
        scale.push(s);
        for n in 0..num_context_patches {
            let token = &mut features[(r * tokens + n) * feature_dim..][..feature_dim];
            let mut observed = false;
            for p in 0..patch {
                let step = n * patch + p;
                token[p] = (step as i64 - context_span) as f32 / time_scale;
                if step >= pad {
                    let x = row[step - pad];
                    if !x.is_nan() {
                        token[patch + p] = normalize(x, l, s, chronos.use_arcsinh);
                        token[2 * patch + p] = 1.0;
                        observed = true;
                    }
                }
            }
            attention_mask[r * seq_len + n] = if observed { 1.0 } else { 0.0 };
        }
    }

    let future_span = num_output_patches * patch;
    if let Some((values, future_len)) = future_covariates {
        if values.len() != rows * future_len {
            return Err(Error::InvalidInput(format!(
                "future covariates have {} values, expected rows ({rows}) x length ({future_len})",
                values.len()
            )));
        }
        if future_len > future_span {
            return Err(Error::InvalidInput(format!(
                "future covariates have {future_len} steps, more than {num_output_patches} output patches x {patch}"
            )));
        }
    }
    for r in 0..rows {
        for n in 0..num_output_patches {
            let token = &mut features[(r * tokens + num_context_patches + n) * feature_dim..][..feature_dim];
            for p in 0..patch {
                let step = n * patch + p;
                token[p] = step as f32 / time_scale;
                if let Some((values, future_len)) = future_covariates {
                    if step < future_len {
                        let x = values[r * future_len + step];
                        if !x.is_nan() {
                            token[patch + p] = normalize(x, loc[r], scale[r], chronos.use_arcsinh);
                            token[2 * patch + p] = 1.0;
                        }
                    }
                }
            }
        }
    }

    Ok(PatchedInput { rows, num_context_patches, num_output_patches, features, attention_mask, loc, scale })
}

/// Rotary tables `(seq_len, d_kv / 2)` for positions `0..seq_len`, computed as the reference
/// (`inv_freq = 1 / theta^(2i/d)` in f32, angle `position * inv_freq` in f32).
pub fn rotary_tables(config: &ModelConfig, seq_len: usize) -> (Vec<f32>, Vec<f32>) {
    let half = config.d_kv / 2;
    let theta = config.rope_theta as f32;
    let inv_freq: Vec<f32> = (0..half).map(|i| 1.0 / theta.powf((2 * i) as f32 / config.d_kv as f32)).collect();
    let mut cos = Vec::with_capacity(seq_len * half);
    let mut sin = Vec::with_capacity(seq_len * half);
    for pos in 0..seq_len {
        for &f in &inv_freq {
            let angle = (pos as f32 * f) as f64;
            cos.push(angle.cos() as f32);
            sin.push(angle.sin() as f32);
        }
    }
    (cos, sin)
}

/// Additive mask value for a hidden key (`finfo(float32).min`, finite as in the reference).
pub const MASKED: f32 = f32::MIN;

/// `(1 - mask) * f32::MIN` element-wise.
pub fn additive_mask(mask: &[f32]) -> Vec<f32> {
    mask.iter().map(|&m| if m > 0.5 { 0.0 } else { MASKED }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_follow_reference_rules() {
        assert_eq!(instance_norm_stats(&[f32::NAN, f32::NAN]), (0.0, 1.0));
        assert_eq!(instance_norm_stats(&[3.0, 3.0, f32::NAN]), (3.0, 1e-5));
        let (loc, scale) = instance_norm_stats(&[1.0, f32::NAN, 3.0]);
        assert_eq!((loc, scale), (2.0, 1.0));
    }

    #[test]
    fn normalize_round_trips() {
        for x in [-1e4f32, -2.5, 0.0, 0.3, 17.0, 1e5] {
            let y = normalize(x, 3.0, 7.5, true);
            let back = denormalize(y, 3.0, 7.5, true);
            assert!((back - x).abs() <= 1e-5 * x.abs().max(1.0), "{x} -> {y} -> {back}");
        }
    }
}

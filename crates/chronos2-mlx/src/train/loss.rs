//! The loss of `_compute_loss` on MLX arrays (differentiable in the predictions), from the core's
//! host-side [`LossTargets`].

use chronos2_core::train::LossTargets;
use chronos2_core::Result;
use mlx_rs::error::Exception;
use mlx_rs::ops::{le, multiply, reshape, subtract, sum, transpose_axes};
use mlx_rs::{stop_gradient, Array, Dtype};

use crate::ops::{dim, err};

/// `head` is the model's output head `(rows, n_out, q * patch)` (normalised). The pinball loss
/// `2 |(y - ŷ)(1{y <= ŷ} - q)|` equals `2 (ŷ - y)(1{y <= ŷ} - q)`, whose gradient is the same
/// almost everywhere; masked, mean over the padded horizon, sum over quantiles, mean over rows.
/// Returns a scalar array.
pub fn quantile_loss(head: &Array, targets: &LossTargets, quantiles: &[f32], patch: usize) -> Result<Array> {
    let (rows, horizon, nq) = (dim(targets.rows)?, dim(targets.horizon)?, dim(quantiles.len())?);
    let n_out = dim(targets.horizon / patch)?;
    let patch = dim(patch)?;
    let run = || -> std::result::Result<Array, Exception> {
        let pred = reshape(head, &[rows, n_out, nq, patch])?;
        let pred = reshape(transpose_axes(&pred, &[0, 2, 1, 3])?, &[rows, nq, horizon])?;
        let y = Array::from_slice(&targets.target, &[rows, 1, horizon]);
        let mask = Array::from_slice(&targets.mask, &[rows, 1, horizon]);
        let q = Array::from_slice(quantiles, &[1, nq, 1]);
        let below = le(&y, stop_gradient(&pred)?)?.as_dtype(Dtype::Float32)?;
        let weight = multiply(subtract(&below, &q)?, &mask)?;
        let total = sum(multiply(subtract(&pred, &y)?, &weight)?, false)?;
        multiply(&total, Array::from_f32(2.0 / (targets.rows * targets.horizon) as f32))
    };
    run().map_err(err)
}

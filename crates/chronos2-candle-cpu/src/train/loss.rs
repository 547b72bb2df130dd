//! The loss of `_compute_loss` on candle tensors (differentiable in the predictions).

use candle_core::{DType, Device, Tensor};
use chronos2_core::train::LossTargets;
use chronos2_core::Result;

use super::ops::err;

/// `head` is the model's output head `(rows, n_out, q * patch)` (normalised). The pinball loss
/// `2 |(y - ŷ)(1{y <= ŷ} - q)|` equals `2 (ŷ - y)(1{y <= ŷ} - q)`, whose gradient is the same
/// almost everywhere; masked, mean over the padded horizon, sum over quantiles, mean over rows.
pub fn quantile_loss(head: &Tensor, targets: &LossTargets, quantiles: &[f32], patch: usize) -> Result<Tensor> {
    let device = Device::Cpu;
    let (rows, horizon, nq) = (targets.rows, targets.horizon, quantiles.len());
    let run = || -> candle_core::Result<Tensor> {
        let n_out = horizon / patch;
        let pred = head.reshape((rows, n_out, nq, patch))?.permute((0, 2, 1, 3))?.reshape((rows, nq, horizon))?;
        let y = Tensor::from_slice(&targets.target, (rows, 1, horizon), &device)?;
        let mask = Tensor::from_slice(&targets.mask, (rows, 1, horizon), &device)?;
        let q = Tensor::from_slice(quantiles, (1, nq, 1), &device)?;
        let below = y.broadcast_le(&pred.detach())?.to_dtype(DType::F32)?;
        let weight = below.broadcast_sub(&q)?.broadcast_mul(&mask)?;
        let loss = pred.broadcast_sub(&y)?.mul(&weight)?.sum_all()?;
        loss.affine(2.0 / (rows * horizon) as f64, 0.0)
    };
    run().map_err(err)
}

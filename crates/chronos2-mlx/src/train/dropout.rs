//! Training dropout on MLX arrays: `x` times the multiplier of the step's mask
//! ([`TrainingDropout`]), which MLX differentiates in `x`.

use chronos2_core::train::{DropoutSite, TrainingDropout};
use chronos2_core::Result;
use mlx_rs::ops::{add, matmul, multiply, softmax_axis};
use mlx_rs::Array;

use crate::ops::{dims, err};

/// `x` times the inverted-dropout multiplier of `site`.
pub(crate) fn dropout(state: &TrainingDropout, x: &Array, rate: f32, site: DropoutSite) -> Result<Array> {
    let shape: Vec<usize> = x.shape().iter().map(|&d| d as usize).collect();
    let mask = Array::from_slice(&state.multiplier(site, &shape, rate)?, &dims(&shape)?);
    multiply(x, &mask).map_err(err)
}

/// `dropout(softmax(q k^T + mask)) v`, the reference's eager attention in training.
pub(crate) fn attention_with_dropout(
    state: &TrainingDropout,
    (q, k, v): (&Array, &Array, &Array),
    key_mask: &Array,
    rate: f32,
    site: DropoutSite,
) -> Result<Array> {
    if k.shape()[2] == 1 {
        // One key (a group of one): its softmax weight is exactly 1 and takes no gradient, so the
        // output is the dropped weight times `v`.
        let shape: Vec<usize> = [q.shape()[0], q.shape()[1], q.shape()[2], 1].iter().map(|&d| d as usize).collect();
        let weights = Array::from_slice(&state.multiplier(site, &shape, rate)?, &dims(&shape)?);
        return multiply(&weights, v).map_err(err);
    }
    let scores = add(matmul(q, &k.swap_axes(-1, -2).map_err(err)?).map_err(err)?, key_mask).map_err(err)?;
    let weights = dropout(state, &softmax_axis(&scores, -1, true).map_err(err)?, rate, site)?;
    matmul(&weights, v).map_err(err)
}

//! Training dropout on candle autograd tensors: `x` times the multiplier of the step's mask
//! ([`TrainingDropout`]), differentiable in `x`.

use candle_core::{Device, Tensor, D};
use chronos2_core::train::{DropoutSite, TrainingDropout};
use chronos2_core::Result;

use super::ops::err;

/// `x` times the inverted-dropout multiplier of `site`.
pub(crate) fn dropout(state: &TrainingDropout, x: &Tensor, rate: f32, site: DropoutSite) -> Result<Tensor> {
    let mask = state.multiplier(site, x.dims(), rate)?;
    let mask = Tensor::from_vec(mask, x.dims(), &Device::Cpu).map_err(err)?;
    x.mul(&mask).map_err(err)
}

/// `dropout(softmax(q k^T + mask)) v`, the reference's eager attention in training.
pub(crate) fn attention_with_dropout(
    state: &TrainingDropout,
    (q, k, v): (&Tensor, &Tensor, &Tensor),
    key_mask: &Tensor,
    rate: f32,
    site: DropoutSite,
) -> Result<Tensor> {
    let (n, heads, queries, _) = q.dims4().map_err(err)?;
    if k.dim(2).map_err(err)? == 1 {
        // One key (a group of one): its softmax weight is exactly 1 and takes no gradient, so the
        // output is the dropped weight times `v` (no batched matmul of one-element products).
        let shape = [n, heads, queries, 1];
        let weights = Tensor::from_vec(state.multiplier(site, &shape, rate)?, &shape[..], &Device::Cpu);
        return weights.and_then(|w| w.broadcast_mul(v)).map_err(err);
    }
    let weights = || -> candle_core::Result<Tensor> {
        let scores = q.contiguous()?.matmul(&k.contiguous()?.t()?)?.broadcast_add(key_mask)?;
        // the max is a constant shift (softmax's gradient does not depend on it)
        let max = scores.detach().max_keepdim(D::Minus1)?;
        let e = scores.broadcast_sub(&max)?.exp()?;
        e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
    };
    let weights = dropout(state, &weights().map_err(err)?, rate, site)?;
    weights.matmul(&v.contiguous().map_err(err)?).map_err(err)
}

//! Training dropout on candle autograd tensors: the masks of the step's [`DropoutMasks`] source,
//! applied as `x * mask / (1 - rate)` (differentiable in `x`), only during a training step.

use std::sync::{Arc, Mutex, MutexGuard};

use candle_core::{Device, Tensor, D};
use chronos2_core::train::dropout::scaled_mask;
use chronos2_core::train::{DropoutMasks, DropoutSite, SeededMasks};
use chronos2_core::Result;

use super::ops::err;

struct State {
    masks: Box<dyn DropoutMasks>,
    /// True during a training step ([`TrainDropout::training_step`]).
    active: bool,
}

/// The dropout of a training model: its mask source and whether the current forward drops.
#[derive(Clone)]
pub(crate) struct TrainDropout(Arc<Mutex<State>>);

/// While alive, forwards drop out (a training step); dropped, they do not (validation).
pub(crate) struct TrainingStep<'a>(&'a TrainDropout);

impl Drop for TrainingStep<'_> {
    fn drop(&mut self) {
        self.0.state().active = false;
    }
}

impl TrainDropout {
    /// Masks from [`SeededMasks`] of `seed`.
    pub fn new(seed: u64) -> Self {
        TrainDropout(Arc::new(Mutex::new(State { masks: Box::new(SeededMasks::new(seed)), active: false })))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn set_masks(&self, masks: Box<dyn DropoutMasks>) {
        self.state().masks = masks;
    }

    pub fn active(&self) -> bool {
        self.state().active
    }

    /// Starts a training step: the next step of the masks, dropout on until the guard is dropped.
    pub fn training_step(&self) -> TrainingStep<'_> {
        let mut state = self.state();
        state.masks.begin_step();
        state.active = true;
        TrainingStep(self)
    }

    /// `x` times the scaled keep mask of `site`.
    pub fn apply(&self, x: &Tensor, rate: f32, site: DropoutSite) -> Result<Tensor> {
        let keep = self.state().masks.keep(site, x.dims(), rate)?;
        let mask = Tensor::from_vec(scaled_mask(&keep, rate), x.dims(), &Device::Cpu).map_err(err)?;
        x.mul(&mask).map_err(err)
    }

    /// `dropout(softmax(q k^T + mask)) v`, the reference's eager attention in training.
    pub fn attention(
        &self,
        (q, k, v): (&Tensor, &Tensor, &Tensor),
        key_mask: &Tensor,
        rate: f32,
        site: DropoutSite,
    ) -> Result<Tensor> {
        let weights = || -> candle_core::Result<Tensor> {
            let scores = q.contiguous()?.matmul(&k.contiguous()?.t()?)?.broadcast_add(key_mask)?;
            // the max is a constant shift (softmax's gradient does not depend on it)
            let max = scores.detach().max_keepdim(D::Minus1)?;
            let e = scores.broadcast_sub(&max)?.exp()?;
            e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
        };
        let weights = self.apply(&weights().map_err(err)?, rate, site)?;
        weights.matmul(&v.contiguous().map_err(err)?).map_err(err)
    }
}

//! Gradient checkpointing per encoder block.
//!
//! candle's autograd keeps every intermediate of a forward until its backward, so the activations
//! of all encoder blocks are alive at once and grow with the batch. A checkpointed step runs the
//! forward stage by stage ([`Stages`], the graph written once in `chronos2-core`). The first
//! `recomputed` blocks keep only their input (detached, which frees the block's graph); the
//! remaining blocks and the head run from the last stored state as a fresh variable and keep
//! their graph, whose backward gives their parameters' gradients and `dL/dh` at its input. Then,
//! from the last checkpointed block down, each block is recomputed from its stored input as a
//! fresh variable and differentiated through the surrogate `sum(y * dL/dy)`, which gives its
//! parameters' gradients and `dL/dx`; the embedding last. Each parameter belongs to one stage, so
//! its gradient is the whole graph's (bit-identical on the fixtures). The cost is one extra
//! forward of the recomputed blocks that hold trainable parameters (none in head mode).

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use chronos2_core::config::ModelConfig;
use chronos2_core::model::{ForwardStructure, Stages};
use chronos2_core::{Error, Result};

use super::ops::{err, TrainOps};
use super::params::TrainParam;

/// Which encoder blocks a training step checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checkpointing {
    /// As many as keep the step's activations within half the fp32 weights
    /// ([`Checkpointing::recomputed_blocks`]).
    Auto,
    /// The first `k` blocks (0: none, the whole graph is kept until the backward; the
    /// number of blocks or more: all).
    Blocks(usize),
}

/// The loss of a batch from the output head (differentiable in the head).
pub type HeadLoss<'a> = dyn Fn(&Tensor) -> Result<Tensor> + 'a;

/// The loss and, per parameter of `params`, its gradient (`None`: the loss does not depend on it).
pub type LossAndGrads = (Tensor, Vec<Option<Tensor>>);

/// The loss alone: each block's graph is dropped as soon as the next block has run.
pub fn loss_only(stages: &Stages<TrainOps>, head_loss: &HeadLoss) -> Result<Tensor> {
    let mut hidden = stages.embed()?.detach();
    for i in 0..stages.num_blocks() {
        hidden = stages.block(i, &hidden)?.detach();
    }
    Ok(head_loss(&stages.finish(&hidden)?.head)?.detach())
}

/// The loss and gradients of a step whose first `recomputed` encoder blocks are checkpointed
/// (module docs); the other blocks and the head form the last stage, whose graph is kept from
/// the forward to its backward. `recomputed = 0` keeps the whole graph.
pub fn loss_and_grads(
    stages: &Stages<TrainOps>,
    params: &[TrainParam],
    head_loss: &HeadLoss,
    recomputed: usize,
) -> Result<LossAndGrads> {
    let n = stages.num_blocks();
    let recomputed = recomputed.min(n);
    let embedded = stages.embed()?; // its (small) graph is kept for the last backward
                                    // The checkpointed blocks' inputs, and the first of them (or the embedding) whose output
                                    // depends on a parameter: the backward stops there.
    let mut inputs = Vec::with_capacity(recomputed);
    let mut hidden = embedded.detach();
    let mut first_trained = if embedded.track_op() { None } else { Some(recomputed) };
    for i in 0..recomputed {
        let out = stages.block(i, &hidden)?;
        if out.track_op() && first_trained.is_some_and(|f| f > i) {
            first_trained = Some(i);
        }
        inputs.push(std::mem::replace(&mut hidden, out.detach()));
    }
    let mut sums = vec![None; params.len()];
    let x = Var::from_tensor(&hidden).map_err(err)?;
    drop(hidden);
    let mut y = x.as_tensor().clone();
    for i in recomputed..n {
        y = stages.block(i, &y)?;
    }
    let loss = head_loss(&stages.finish(&y)?.head)?;
    drop(y);
    let mut grad = backward_stage(&loss, &x, params, &mut sums)?;
    drop(x);
    let stop = first_trained.unwrap_or(0);
    while inputs.len() > stop {
        let i = inputs.len() - 1;
        let x = Var::from_tensor(&inputs.pop().expect("a stored block input")).map_err(err)?;
        let y = stages.block(i, x.as_tensor())?;
        let surrogate = y.mul(&grad).and_then(|s| s.sum_all()).map_err(err)?;
        grad = backward_stage(&surrogate, &x, params, &mut sums)?;
    }
    if first_trained.is_none() {
        let surrogate = embedded.mul(&grad).and_then(|s| s.sum_all()).map_err(err)?;
        let grads = surrogate.backward().map_err(err)?;
        accumulate(&mut sums, params, &grads)?;
    }
    Ok((loss.detach(), sums))
}

/// Backpropagates `out` (a scalar), adds the parameters' gradients to `sums` and returns the
/// gradient with respect to the stage's input `x`.
fn backward_stage(out: &Tensor, x: &Var, params: &[TrainParam], sums: &mut [Option<Tensor>]) -> Result<Tensor> {
    let grads = out.backward().map_err(err)?;
    accumulate(sums, params, &grads)?;
    match grads.get(x.as_tensor()) {
        Some(g) => Ok(g.detach()),
        None => Err(Error::Backend("checkpointed backward: no gradient reached a stage's input".into())),
    }
}

fn accumulate(sums: &mut [Option<Tensor>], params: &[TrainParam], grads: &GradStore) -> Result<()> {
    for (sum, p) in sums.iter_mut().zip(params) {
        let Some(g) = grads.get(p.var.as_tensor()) else { continue };
        *sum = Some(match sum.take() {
            Some(s) => s.add(g).map_err(err)?,
            None => g.detach(),
        });
    }
    Ok(())
}

impl Checkpointing {
    /// How many of the first encoder blocks a step on a forward of `structure` recomputes in its
    /// backward. `Auto` keeps the graphs of as many trailing blocks as fit in half the model's
    /// fp32 weights (`weight_bytes`), by [`block_activation_bytes`], and recomputes the others
    /// (the last block is never recomputed: its graph goes straight into the backward).
    pub fn recomputed_blocks(self, config: &ModelConfig, structure: &ForwardStructure, weight_bytes: usize) -> usize {
        let n = config.num_layers;
        match self {
            Checkpointing::Blocks(k) => k.min(n),
            Checkpointing::Auto => {
                let kept = (weight_bytes / 2) / block_activation_bytes(config, structure).max(1);
                n.saturating_sub(kept.max(1))
            }
        }
    }
}

/// Estimated memory of the graph of one encoder block in a step: 80 `d_model`-wide f32 rows
/// per token (its intermediates and their gradients), measured from the peak RSS of LoRA steps
/// with and without checkpointing at context 512 (chronos2-mini, 32 rows: 76; the full-size
/// model, 8 rows: 81).
pub fn block_activation_bytes(config: &ModelConfig, structure: &ForwardStructure) -> usize {
    const ROWS_PER_TOKEN: usize = 80;
    4 * structure.rows * structure.seq_len * ROWS_PER_TOKEN * config.d_model
}

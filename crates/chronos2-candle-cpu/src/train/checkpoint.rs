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
use chronos2_core::model::Stages;
use chronos2_core::train::{activation_budget, rows_within_budget};
use chronos2_core::{Error, Result};

use super::ops::{err, TrainOps};
use super::params::TrainParam;

/// Which encoder blocks a training step checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checkpointing {
    /// As many as keep the step's activations within [`activation_budget`]
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
    // The embedding's (small) graph is kept for the last backward.
    let embedded = stages.embed()?;
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
    /// How many of the first encoder blocks a step on `tokens` tokens (rows x sequence length)
    /// recomputes in its backward. `Auto` keeps the graphs of as many trailing blocks as fit in
    /// [`activation_budget`], by [`block_activation_bytes`], and recomputes the others; the last
    /// block is never recomputed by `Auto` (its graph goes straight into the backward).
    pub fn recomputed_blocks(self, config: &ModelConfig, tokens: usize, weight_bytes: usize) -> usize {
        let n = config.num_layers;
        match self {
            Checkpointing::Blocks(k) => k.min(n),
            Checkpointing::Auto => {
                let kept = activation_budget(weight_bytes) / block_activation_bytes(config, tokens).max(1);
                n.saturating_sub(kept.max(1))
            }
        }
    }
}

/// The most rows a step runs at once: the graphs of the last block (kept) and of the block being
/// recomputed, on `tokens_per_row` tokens a row, within [`activation_budget`]; at least one. A
/// larger batch runs as micro-batches of whole groups (full-size model at context 512: 19 rows;
/// chronos2-mini: 135 rows).
pub fn micro_batch_rows(config: &ModelConfig, tokens_per_row: usize, weight_bytes: usize) -> usize {
    rows_within_budget(2 * block_activation_bytes(config, tokens_per_row), weight_bytes)
}

/// Estimated memory of the graph of one encoder block in a step on `tokens` tokens: 80
/// `d_model`-wide f32 rows per token (its intermediates and their gradients), measured from the
/// peak RSS of LoRA steps with and without checkpointing at context 512 (chronos2-mini, 32 rows:
/// 76; the full-size model, 8 rows: 81).
pub fn block_activation_bytes(config: &ModelConfig, tokens: usize) -> usize {
    const ROWS_PER_TOKEN: usize = 80;
    4 * tokens * ROWS_PER_TOKEN * config.d_model
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The full-size architecture (478 MB of fp32 weights) at context 512 (35 tokens a row).
    #[test]
    fn auto_checkpoints_more_blocks_as_the_batch_grows() {
        let text = include_str!("../../../../tests/fixtures/models/tiny/config.json");
        let mut config = ModelConfig::from_json(text).unwrap();
        (config.d_model, config.num_layers) = (768, 12);
        let recomputed = |rows: usize| Checkpointing::Auto.recomputed_blocks(&config, rows * 35, 478_000_000);
        assert_eq!(recomputed(1), 0, "one row: the whole graph");
        let counts: Vec<usize> = [1, 2, 4, 8, 16, 32, 1024].iter().map(|&r| recomputed(r)).collect();
        assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
        assert!(recomputed(8) >= 6, "{counts:?}");
        assert_eq!(recomputed(1024), 11, "never the last block");
        assert_eq!(Checkpointing::Blocks(99).recomputed_blocks(&config, 35, 0), 12);
    }

    /// Micro-batches keep two blocks' graphs within the budget: 19 rows of the full-size model at
    /// context 512 (35 tokens a row), 135 of chronos2-mini, one row at least.
    #[test]
    fn micro_batches_keep_two_block_graphs_within_the_budget() {
        let text = include_str!("../../../../tests/fixtures/models/tiny/config.json");
        let mut config = ModelConfig::from_json(text).unwrap();
        config.d_model = 768;
        assert_eq!(micro_batch_rows(&config, 35, 478_000_000), 19);
        let rows = micro_batch_rows(&config, 35, 478_000_000);
        assert!(2 * block_activation_bytes(&config, rows * 35) <= activation_budget(478_000_000));
        assert!(2 * block_activation_bytes(&config, (rows + 1) * 35) > activation_budget(478_000_000));
        config.d_model = 256;
        assert_eq!(micro_batch_rows(&config, 35, 29_000_000), 135);
        assert_eq!(micro_batch_rows(&config, 1 << 30, 29_000_000), 1);
    }
}

//! Chronos-2's layers, generic over [`Ops`], with parameters read by their Hugging Face names.

use crate::config::ModelConfig;
use crate::error::Result;
use crate::ops::Ops;
use crate::train::DropoutSite;
use crate::weights::Weights;

use super::adapters::RuntimeAdapter;
use super::group_plan::GroupLayout;

/// A linear layer of the model under its module name (e.g.
/// `encoder.block.0.layer.0.self_attention.q`), where run-time adapters attach.
pub struct ModelLinear<O: Ops> {
    pub module: String,
    pub has_bias: bool,
    pub layer: O::Linear,
}

impl<O: Ops> ModelLinear<O> {
    /// `x W^T (+ b)`, or with the active adapter's layer for this module: LoRA adds
    /// `(x A^T) (scaling B)^T` to the base output, a replacement runs instead of the base.
    pub fn forward(&self, ops: &O, x: &O::Tensor, adapter: Option<&RuntimeAdapter<O>>) -> Result<O::Tensor> {
        match adapter {
            Some(adapter) => adapter.linear(ops, &self.module, &self.layer, x),
            None => ops.linear(x, &self.layer),
        }
    }
}

/// Reads a linear layer `prefix.weight` (and `prefix.bias` when `bias`).
pub fn load_linear<O: Ops>(
    ops: &O,
    weights: &Weights,
    prefix: &str,
    in_dim: usize,
    out_dim: usize,
    bias: bool,
) -> Result<ModelLinear<O>> {
    let weight = weights.get(&format!("{prefix}.weight"), &[out_dim, in_dim])?;
    let bias_values = if bias { Some(weights.get(&format!("{prefix}.bias"), &[out_dim])?) } else { None };
    let layer = ops.linear_parameter(prefix, &weight, out_dim, in_dim, bias_values.as_deref())?;
    Ok(ModelLinear { module: prefix.to_string(), has_bias: bias, layer })
}

/// Training dropout of `x` at `site` with the forward's `rate` (0: inference, validation or a
/// model without dropout, where `x` passes untouched).
pub fn dropout<O: Ops>(ops: &O, x: O::Tensor, rate: f32, site: DropoutSite) -> Result<O::Tensor> {
    if rate > 0.0 {
        ops.dropout(&x, rate, site)
    } else {
        Ok(x)
    }
}

/// [`Ops::attention`], with dropout of its weights at `site` when `rate` is not 0.
fn attention<O: Ops>(
    ops: &O,
    (q, k, v): (&O::Tensor, &O::Tensor, &O::Tensor),
    key_mask: &O::Tensor,
    rate: f32,
    site: DropoutSite,
) -> Result<O::Tensor> {
    if rate > 0.0 {
        ops.attention_with_dropout(q, k, v, key_mask, rate, site)
    } else {
        ops.attention(q, k, v, key_mask)
    }
}

fn load_vector<O: Ops>(ops: &O, weights: &Weights, name: &str, len: usize) -> Result<O::Tensor> {
    ops.parameter(name, &weights.get(name, &[len])?, &[len])
}

/// `ResidualBlock`: `dropout(output(relu(hidden(x)))) + residual(x)`, all with bias.
pub struct ResidualBlock<O: Ops> {
    hidden_layer: ModelLinear<O>,
    output_layer: ModelLinear<O>,
    residual_layer: ModelLinear<O>,
}

impl<O: Ops> ResidualBlock<O> {
    pub fn load(ops: &O, w: &Weights, prefix: &str, in_dim: usize, h_dim: usize, out_dim: usize) -> Result<Self> {
        Ok(ResidualBlock {
            hidden_layer: load_linear(ops, w, &format!("{prefix}.hidden_layer"), in_dim, h_dim, true)?,
            output_layer: load_linear(ops, w, &format!("{prefix}.output_layer"), h_dim, out_dim, true)?,
            residual_layer: load_linear(ops, w, &format!("{prefix}.residual_layer"), in_dim, out_dim, true)?,
        })
    }

    pub fn linears(&self) -> [&ModelLinear<O>; 3] {
        [&self.hidden_layer, &self.output_layer, &self.residual_layer]
    }

    pub fn linears_mut(&mut self) -> [&mut ModelLinear<O>; 3] {
        [&mut self.hidden_layer, &mut self.output_layer, &mut self.residual_layer]
    }

    /// The block on `x`, its output layer dropped out at `site` with `rate` (0: no dropout).
    pub fn forward(
        &self,
        ops: &O,
        x: &O::Tensor,
        adapter: Option<&RuntimeAdapter<O>>,
        rate: f32,
        site: DropoutSite,
    ) -> Result<O::Tensor> {
        let hidden = ops.relu(&self.hidden_layer.forward(ops, x, adapter)?)?;
        let out = dropout(ops, self.output_layer.forward(ops, &hidden, adapter)?, rate, site)?;
        ops.add(&out, &self.residual_layer.forward(ops, x, adapter)?)
    }
}

/// The q/k/v/o projections of one attention layer (no bias).
struct Projections<O: Ops> {
    q: ModelLinear<O>,
    k: ModelLinear<O>,
    v: ModelLinear<O>,
    o: ModelLinear<O>,
}

impl<O: Ops> Projections<O> {
    fn linears(&self) -> [&ModelLinear<O>; 4] {
        [&self.q, &self.k, &self.v, &self.o]
    }

    fn linears_mut(&mut self) -> [&mut ModelLinear<O>; 4] {
        [&mut self.q, &mut self.k, &mut self.v, &mut self.o]
    }

    fn load(ops: &O, w: &Weights, prefix: &str, config: &ModelConfig) -> Result<Self> {
        let (d, inner) = (config.d_model, config.inner_dim());
        Ok(Projections {
            q: load_linear(ops, w, &format!("{prefix}.q"), d, inner, false)?,
            k: load_linear(ops, w, &format!("{prefix}.k"), d, inner, false)?,
            v: load_linear(ops, w, &format!("{prefix}.v"), d, inner, false)?,
            o: load_linear(ops, w, &format!("{prefix}.o"), inner, d, false)?,
        })
    }
}

/// Per-forward inputs shared by all layers.
pub struct LayerContext<'a, O: Ops> {
    pub rows: usize,
    pub seq_len: usize,
    pub heads: usize,
    pub d_kv: usize,
    pub eps: f32,
    /// Rotary tables `(seq_len, d_kv / 2)`.
    pub cos: O::Tensor,
    pub sin: O::Tensor,
    /// Additive time-attention key mask `(rows, 1, 1, seq_len)`.
    pub time_mask: O::Tensor,
    pub group: &'a GroupLayout,
    /// Per run of equal-size groups: additive key mask `(groups * seq_len, 1, 1, size)`;
    /// `None` for runs of singleton groups.
    pub group_masks: Vec<Option<O::Tensor>>,
    /// `(rows, seq_len, 1)`: 1 where group attention has a visible key (see
    /// [`GroupPlan`](super::GroupPlan)).
    pub group_visible: Option<O::Tensor>,
    /// The adapter this forward runs with (`None`: the base model).
    pub adapter: Option<&'a RuntimeAdapter<O>>,
    /// The dropout rate of this forward: the config's in a training step
    /// ([`Ops::dropout_active`]), else 0.
    pub dropout: f32,
}

/// `TimeSelfAttention`: pre-norm MHA along time with RoPE, no scaling, residual.
pub struct TimeSelfAttention<O: Ops> {
    layer_norm: O::Tensor,
    proj: Projections<O>,
}

impl<O: Ops> TimeSelfAttention<O> {
    pub fn load(ops: &O, w: &Weights, prefix: &str, config: &ModelConfig) -> Result<Self> {
        Ok(TimeSelfAttention {
            layer_norm: load_vector(ops, w, &format!("{prefix}.layer_norm.weight"), config.d_model)?,
            proj: Projections::load(ops, w, &format!("{prefix}.self_attention"), config)?,
        })
    }

    pub fn forward(&self, ops: &O, x: &O::Tensor, cx: &LayerContext<O>, block: usize) -> Result<O::Tensor> {
        let normed = ops.rms_norm(x, &self.layer_norm, cx.eps)?;
        let heads = |t: O::Tensor| -> Result<O::Tensor> {
            let t = ops.reshape(&t, &[cx.rows, cx.seq_len, cx.heads, cx.d_kv])?;
            ops.permute(&t, &[0, 2, 1, 3])
        };
        let q = heads(self.proj.q.forward(ops, &normed, cx.adapter)?)?;
        let k = heads(self.proj.k.forward(ops, &normed, cx.adapter)?)?;
        let v = heads(self.proj.v.forward(ops, &normed, cx.adapter)?)?;
        let q = ops.rope(&q, &cx.cos, &cx.sin)?;
        let k = ops.rope(&k, &cx.cos, &cx.sin)?;
        let weights_site = DropoutSite::TimeAttentionWeights { block };
        let out = attention(ops, (&q, &k, &v), &cx.time_mask, cx.dropout, weights_site)?;
        let out = ops.permute(&out, &[0, 2, 1, 3])?;
        let out = ops.reshape(&out, &[cx.rows, cx.seq_len, cx.heads * cx.d_kv])?;
        let out = self.proj.o.forward(ops, &out, cx.adapter)?;
        ops.add(x, &dropout(ops, out, cx.dropout, DropoutSite::TimeAttentionOutput { block })?)
    }
}

/// `GroupSelfAttention`: pre-norm MHA along the batch axis within groups, no RoPE, no scaling.
pub struct GroupSelfAttention<O: Ops> {
    layer_norm: O::Tensor,
    proj: Projections<O>,
}

impl<O: Ops> GroupSelfAttention<O> {
    pub fn load(ops: &O, w: &Weights, prefix: &str, config: &ModelConfig) -> Result<Self> {
        Ok(GroupSelfAttention {
            layer_norm: load_vector(ops, w, &format!("{prefix}.layer_norm.weight"), config.d_model)?,
            proj: Projections::load(ops, w, &format!("{prefix}.self_attention"), config)?,
        })
    }

    /// In training with dropout, a group of one attends too (its single weight, 1, is dropped out
    /// like any other). A query with no visible key gets the mean of the values without dropout:
    /// its token is hidden as a key from every attention, so its output reaches no loss.
    pub fn forward(&self, ops: &O, x: &O::Tensor, cx: &LayerContext<O>, block: usize) -> Result<O::Tensor> {
        let plan = cx.group;
        let normed = ops.rms_norm(x, &self.layer_norm, cx.eps)?;
        let v = self.proj.v.forward(ops, &normed, cx.adapter)?;
        let needs_attention = cx.dropout > 0.0 || plan.runs.iter().any(|run| run.size > 1);
        let attended = if needs_attention {
            let gathered = |t: O::Tensor| match &plan.order {
                Some(order) => ops.take_rows(&t, order),
                None => Ok(t),
            };
            let q = gathered(self.proj.q.forward(ops, &normed, cx.adapter)?)?;
            let k = gathered(self.proj.k.forward(ops, &normed, cx.adapter)?)?;
            let v = gathered(v.clone())?;
            let mut parts = Vec::with_capacity(plan.runs.len());
            for (index, (run, mask)) in plan.runs.iter().zip(&cx.group_masks).enumerate() {
                let rows = run.groups * run.size;
                let v_run = ops.narrow(&v, 0, run.start, rows)?;
                let mask = match mask {
                    Some(mask) => mask.clone(),
                    // A group of one in training with dropout: its key is always "visible".
                    None if cx.dropout > 0.0 => {
                        let n = run.groups * cx.seq_len;
                        ops.tensor(&vec![0.0; n], &[n, 1, 1, 1])?
                    }
                    None => {
                        // A group of one: softmax over its single key is 1, the output is its value.
                        parts.push(v_run);
                        continue;
                    }
                };
                // (groups*size, seq, heads*d) -> (groups*seq, heads, size, d)
                let to_heads = |t: &O::Tensor| -> Result<O::Tensor> {
                    let t = ops.reshape(t, &[run.groups, run.size, cx.seq_len, cx.heads, cx.d_kv])?;
                    let t = ops.permute(&t, &[0, 2, 3, 1, 4])?;
                    ops.reshape(&t, &[run.groups * cx.seq_len, cx.heads, run.size, cx.d_kv])
                };
                let q_run = to_heads(&ops.narrow(&q, 0, run.start, rows)?)?;
                let k_run = to_heads(&ops.narrow(&k, 0, run.start, rows)?)?;
                let site = DropoutSite::GroupAttentionWeights { block, run: index };
                let out = attention(ops, (&q_run, &k_run, &to_heads(&v_run)?), &mask, cx.dropout, site)?;
                let out = ops.reshape(&out, &[run.groups, cx.seq_len, cx.heads, run.size, cx.d_kv])?;
                let out = ops.permute(&out, &[0, 3, 1, 2, 4])?;
                parts.push(ops.reshape(&out, &[rows, cx.seq_len, cx.heads * cx.d_kv])?);
            }
            let out = if parts.len() == 1 { parts.pop().expect("one part") } else { ops.concat(&parts, 0)? };
            match &plan.inverse {
                Some(inverse) => ops.take_rows(&out, inverse)?,
                None => out,
            }
        } else {
            v.clone()
        };
        let attended = match &cx.group_visible {
            Some(visible) => {
                // Queries with no visible key: uniform softmax over all rows = mean of v.
                let mean = ops.broadcast_to(&ops.mean_keepdim(&v, 0)?, &ops.shape(&v))?;
                ops.select(visible, &attended, &mean)?
            }
            None => attended,
        };
        let out = self.proj.o.forward(ops, &attended, cx.adapter)?;
        ops.add(x, &dropout(ops, out, cx.dropout, DropoutSite::GroupAttentionOutput { block })?)
    }
}

/// `FeedForward`: pre-norm `wo(dropout(relu(wi(x))))`, dropped out, residual.
pub struct FeedForward<O: Ops> {
    layer_norm: O::Tensor,
    wi: ModelLinear<O>,
    wo: ModelLinear<O>,
}

impl<O: Ops> FeedForward<O> {
    pub fn load(ops: &O, w: &Weights, prefix: &str, config: &ModelConfig) -> Result<Self> {
        Ok(FeedForward {
            layer_norm: load_vector(ops, w, &format!("{prefix}.layer_norm.weight"), config.d_model)?,
            wi: load_linear(ops, w, &format!("{prefix}.mlp.wi"), config.d_model, config.d_ff, false)?,
            wo: load_linear(ops, w, &format!("{prefix}.mlp.wo"), config.d_ff, config.d_model, false)?,
        })
    }

    pub fn forward(&self, ops: &O, x: &O::Tensor, cx: &LayerContext<O>, block: usize) -> Result<O::Tensor> {
        let normed = ops.rms_norm(x, &self.layer_norm, cx.eps)?;
        let hidden = ops.relu(&self.wi.forward(ops, &normed, cx.adapter)?)?;
        let hidden = dropout(ops, hidden, cx.dropout, DropoutSite::MlpHidden { block })?;
        let out = self.wo.forward(ops, &hidden, cx.adapter)?;
        ops.add(x, &dropout(ops, out, cx.dropout, DropoutSite::FeedForwardOutput { block })?)
    }
}

/// One encoder block: time attention, group attention, feed-forward.
pub struct EncoderBlock<O: Ops> {
    time_attention: TimeSelfAttention<O>,
    group_attention: GroupSelfAttention<O>,
    feed_forward: FeedForward<O>,
}

impl<O: Ops> EncoderBlock<O> {
    pub fn load(ops: &O, w: &Weights, prefix: &str, config: &ModelConfig) -> Result<Self> {
        Ok(EncoderBlock {
            time_attention: TimeSelfAttention::load(ops, w, &format!("{prefix}.layer.0"), config)?,
            group_attention: GroupSelfAttention::load(ops, w, &format!("{prefix}.layer.1"), config)?,
            feed_forward: FeedForward::load(ops, w, &format!("{prefix}.layer.2"), config)?,
        })
    }

    /// Every linear layer of the block.
    pub fn linears(&self) -> Vec<&ModelLinear<O>> {
        let mut out: Vec<&ModelLinear<O>> = Vec::with_capacity(10);
        out.extend(self.time_attention.proj.linears());
        out.extend(self.group_attention.proj.linears());
        out.push(&self.feed_forward.wi);
        out.push(&self.feed_forward.wo);
        out
    }

    /// Every linear layer of the block, mutably.
    pub fn linears_mut(&mut self) -> Vec<&mut ModelLinear<O>> {
        let mut out: Vec<&mut ModelLinear<O>> = Vec::with_capacity(10);
        out.extend(self.time_attention.proj.linears_mut());
        out.extend(self.group_attention.proj.linears_mut());
        out.push(&mut self.feed_forward.wi);
        out.push(&mut self.feed_forward.wo);
        out
    }

    /// The block's RMS-norm weights.
    pub fn norms(&self) -> [&O::Tensor; 3] {
        [&self.time_attention.layer_norm, &self.group_attention.layer_norm, &self.feed_forward.layer_norm]
    }

    /// Block number `block` of the encoder on `x`.
    pub fn forward(&self, ops: &O, x: &O::Tensor, cx: &LayerContext<O>, block: usize) -> Result<O::Tensor> {
        let x = self.time_attention.forward(ops, x, cx, block)?;
        let x = self.group_attention.forward(ops, &x, cx, block)?;
        self.feed_forward.forward(ops, &x, cx, block)
    }
}

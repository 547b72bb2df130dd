//! The device graph of a forward in stages: token embedding, each encoder block, and the finish
//! (final norm + output head). [`Chronos2Model::graph_with`] runs them in order; a backend may run
//! them one at a time (e.g. to recompute a block in a checkpointed backward).

use super::layers::{dropout, LayerContext};
use super::{Chronos2Model, ForwardStructure, GraphOutputs, RuntimeAdapter};
use crate::error::{Error, Result};
use crate::ops::Ops;
use crate::train::DropoutSite;

/// The stages of one forward, bound to its uploaded inputs ([`Chronos2Model::stages`]).
pub struct Stages<'a, O: Ops> {
    model: &'a Chronos2Model<O>,
    structure: &'a ForwardStructure,
    features: O::Tensor,
    cx: LayerContext<'a, O>,
}

impl<O: Ops> Chronos2Model<O> {
    /// The stages of the forward of `structure` on `inputs` (in the order of
    /// [`PreparedForward::inputs`](super::PreparedForward::inputs)), with `adapter` applied.
    pub fn stages<'a>(
        &'a self,
        structure: &'a ForwardStructure,
        inputs: &[O::Tensor],
        adapter: Option<&'a RuntimeAdapter<O>>,
    ) -> Result<Stages<'a, O>> {
        let c = &self.config;
        let s = structure;
        if inputs.len() != s.num_inputs() {
            return Err(Error::InvalidInput(format!(
                "graph: {} inputs, the structure takes {}",
                inputs.len(),
                s.num_inputs()
            )));
        }
        let (features, cos, sin, time_mask) = (&inputs[0], &inputs[1], &inputs[2], &inputs[3]);
        let mut rest = inputs[4..].iter();
        let group_masks =
            s.group.runs.iter().map(|run| if run.size > 1 { rest.next().cloned() } else { None }).collect::<Vec<_>>();
        let group_visible = rest.next().cloned();
        let cx = LayerContext {
            rows: s.rows,
            seq_len: s.seq_len,
            heads: c.num_heads,
            d_kv: c.d_kv,
            eps: c.layer_norm_epsilon as f32,
            cos: cos.clone(),
            sin: sin.clone(),
            time_mask: time_mask.clone(),
            group: &s.group,
            group_masks,
            group_visible,
            adapter,
            dropout: if self.ops.dropout_active() { c.dropout_rate as f32 } else { 0.0 },
        };
        Ok(Stages { model: self, structure, features: features.clone(), cx })
    }
}

impl<O: Ops> Stages<'_, O> {
    /// Number of encoder blocks.
    pub fn num_blocks(&self) -> usize {
        self.model.blocks.len()
    }

    /// Patch embedding + [REG] + future tokens: the encoder input `(rows, seq_len, d_model)`.
    pub fn embed(&self) -> Result<O::Tensor> {
        let (model, s) = (self.model, self.structure);
        let ops = &model.ops;
        let rate = self.cx.dropout;
        let embedded = model.input_patch_embedding.forward(
            ops,
            &self.features,
            self.cx.adapter,
            rate,
            DropoutSite::InputEmbedding,
        )?;
        let embedded = match &model.reg_embedding {
            None => embedded,
            Some(reg) => {
                let context = ops.narrow(&embedded, 1, 0, s.num_context_patches)?;
                let future = ops.narrow(&embedded, 1, s.num_context_patches, s.num_output_patches)?;
                let reg = ops.broadcast_to(reg, &[s.rows, 1, model.config.d_model])?;
                ops.concat(&[context, reg, future], 1)?
            }
        };
        dropout(ops, embedded, rate, DropoutSite::EncoderInput)
    }

    /// Encoder block `i` on `hidden`.
    pub fn block(&self, i: usize, hidden: &O::Tensor) -> Result<O::Tensor> {
        let block = self.model.blocks.get(i).ok_or_else(|| {
            Error::InvalidInput(format!("encoder block {i} of a model with {} blocks", self.num_blocks()))
        })?;
        block.forward(&self.model.ops, hidden, &self.cx, i)
    }

    /// The final RMS norm of the last block's output (dropped out in training) and the output
    /// head on its future tokens.
    pub fn finish(&self, hidden: &O::Tensor) -> Result<GraphOutputs<O::Tensor>> {
        let (model, s) = (self.model, self.structure);
        let ops = &model.ops;
        let rate = self.cx.dropout;
        let hidden = ops.rms_norm(hidden, &model.final_layer_norm, self.cx.eps)?;
        let hidden = dropout(ops, hidden, rate, DropoutSite::FinalHidden)?;
        let future = ops.narrow(&hidden, 1, s.seq_len - s.num_output_patches, s.num_output_patches)?;
        let head =
            model.output_patch_embedding.forward(ops, &future, self.cx.adapter, rate, DropoutSite::OutputHead)?;
        Ok(GraphOutputs { hidden, head })
    }
}

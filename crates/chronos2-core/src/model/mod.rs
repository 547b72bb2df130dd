//! The Chronos-2 encoder model, written once over [`Ops`].
//!
//! Mirrors `chronos.chronos2.model.Chronos2Model`: patch embedding of `[time, values, mask]`
//! tokens, a [REG] token, future tokens, `num_layers` blocks of time attention (RoPE, no
//! scaling), group attention along the batch and a ReLU feed-forward, a final RMS norm, and a
//! residual output head producing `num_quantiles * patch` values per future token.

mod group_plan;
mod layers;

use std::path::Path;

pub use group_plan::{GroupPlan, GroupRun};
use layers::{EncoderBlock, LayerContext, ResidualBlock};

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::forecaster::{Encoding, Footprint, Forecaster, ModelBatch, QuantileForecast};
use crate::hub::{CONFIG_FILE, WEIGHTS_FILE};
use crate::ops::Ops;
use crate::preprocess::{additive_mask, denormalize, patch_batch, rotary_tables, PatchedInput};
use crate::weights::Weights;

/// Chronos-2 on backend `O`.
pub struct Chronos2Model<O: Ops> {
    ops: O,
    config: ModelConfig,
    /// `shared.weight[reg_token_id]` as `(1, 1, d_model)`, when the model uses a REG token.
    reg_embedding: Option<O::Tensor>,
    input_patch_embedding: ResidualBlock<O>,
    blocks: Vec<EncoderBlock<O>>,
    final_layer_norm: O::Tensor,
    output_patch_embedding: ResidualBlock<O>,
}

/// Host copies of the intermediate states of one forward, for layer-by-layer comparisons.
#[derive(Debug, Clone)]
pub struct Trace {
    pub patched: PatchedInput,
    /// `(rows, seq_len, d_model)` encoder input.
    pub input_embeds: Vec<f32>,
    /// Output of each encoder block, `(rows, seq_len, d_model)`.
    pub layer_outputs: Vec<Vec<f32>>,
    /// After the final layer norm.
    pub last_hidden_state: Vec<f32>,
}

impl<O: Ops> Chronos2Model<O> {
    /// Loads `config.json` and `model.safetensors` from `dir` onto backend `ops`.
    pub fn load_dir(ops: O, dir: &Path) -> Result<Self> {
        let config = ModelConfig::from_file(&dir.join(CONFIG_FILE))?;
        let weights_path = dir.join(WEIGHTS_FILE);
        if !weights_path.is_file() {
            return Err(Error::ModelNotFound(format!("{} has no {WEIGHTS_FILE}", dir.display())));
        }
        let weights = Weights::open(&weights_path)?;
        Self::load(ops, config, &weights)
    }

    /// Builds the model from `config` and `weights` (every tensor must be used).
    pub fn load(ops: O, config: ModelConfig, weights: &Weights) -> Result<Self> {
        let c = &config;
        let patch = c.patch_size();
        let reg_embedding = if c.chronos_config.use_reg_token {
            let shared = weights.get("shared.weight", &[2, c.d_model])?;
            Some(ops.tensor(&shared[c.d_model..], &[1, 1, c.d_model])?)
        } else {
            weights.get("shared.weight", &[1, c.d_model])?;
            None
        };
        let input_patch_embedding = ResidualBlock::load(&ops, weights, "input_patch_embedding", 3 * patch, c.d_ff, c.d_model)?;
        let blocks = (0..c.num_layers)
            .map(|i| EncoderBlock::load(&ops, weights, &format!("encoder.block.{i}"), c))
            .collect::<Result<Vec<_>>>()?;
        let final_layer_norm = ops.tensor(&weights.get("encoder.final_layer_norm.weight", &[c.d_model])?, &[c.d_model])?;
        let output_dim = c.quantiles().len() * patch;
        let output_patch_embedding = ResidualBlock::load(&ops, weights, "output_patch_embedding", c.d_model, c.d_ff, output_dim)?;
        weights.check_all_used()?;
        Ok(Chronos2Model { ops, config, reg_embedding, input_patch_embedding, blocks, final_layer_norm, output_patch_embedding })
    }

    pub fn ops(&self) -> &O {
        &self.ops
    }

    fn linears_mut(&mut self) -> Vec<&mut O::Linear> {
        let mut out: Vec<&mut O::Linear> = Vec::new();
        out.extend(self.input_patch_embedding.linears_mut());
        for block in &mut self.blocks {
            out.extend(block.linears_mut());
        }
        out.extend(self.output_patch_embedding.linears_mut());
        out
    }

    fn quantize_layers(&mut self, bits: u32, group_size: usize) -> Result<()> {
        let ops = self.ops.clone();
        for layer in self.linears_mut() {
            let shape = ops.linear_footprint(layer);
            if !crate::quant::qualifies(shape.in_dim, group_size) {
                continue;
            }
            let Some((weight, bias)) = ops.linear_float_weights(layer)? else { continue };
            let q = crate::quant::quantize(&weight, shape.out_dim, shape.in_dim, bits, group_size)?;
            *layer = ops.linear_from_quantized(&q, bias.as_deref())?;
        }
        Ok(())
    }

    fn measure_footprint(&self) -> Footprint {
        let ops = &self.ops;
        let mut f = Footprint::default();
        let add_tensor = |f: &mut Footprint, t: &O::Tensor| {
            f.total_params += ops.shape(t).iter().product::<usize>();
            f.bytes += ops.tensor_bytes(t);
        };
        if let Some(reg) = &self.reg_embedding {
            add_tensor(&mut f, reg);
        }
        add_tensor(&mut f, &self.final_layer_norm);
        for block in &self.blocks {
            for norm in block.norms() {
                add_tensor(&mut f, norm);
            }
        }
        let linears = self
            .input_patch_embedding
            .linears()
            .into_iter()
            .chain(self.blocks.iter().flat_map(|b| b.linears()))
            .chain(self.output_patch_embedding.linears());
        for layer in linears {
            let l = ops.linear_footprint(layer);
            f.total_params += l.params;
            f.bytes += l.bytes;
            if l.quantized {
                f.quantized_params += l.params;
                f.quantized_layer_bytes += l.bytes;
            }
        }
        f
    }

    fn validate(&self, batch: &ModelBatch) -> Result<()> {
        if batch.group_ids.len() != batch.rows {
            return Err(Error::InvalidInput(format!(
                "group_ids has {} entries for {} rows",
                batch.group_ids.len(),
                batch.rows
            )));
        }
        Ok(())
    }

    fn patch(&self, batch: &ModelBatch) -> Result<PatchedInput> {
        self.validate(batch)?;
        let future = batch.future_covariates.as_deref().map(|f| (f, batch.future_len));
        patch_batch(&self.config, &batch.context, batch.rows, batch.context_len, future, batch.num_output_patches)
    }

    /// Patch embedding + [REG] + future tokens: `(rows, seq_len, d_model)`.
    fn embed_tokens(&self, p: &PatchedInput) -> Result<O::Tensor> {
        let ops = &self.ops;
        let tokens = p.num_context_patches + p.num_output_patches;
        let features = ops.tensor(&p.features, &[p.rows, tokens, 3 * self.config.patch_size()])?;
        let embedded = self.input_patch_embedding.forward(ops, &features)?;
        let Some(reg) = &self.reg_embedding else { return Ok(embedded) };
        let context = ops.narrow(&embedded, 1, 0, p.num_context_patches)?;
        let future = ops.narrow(&embedded, 1, p.num_context_patches, p.num_output_patches)?;
        let reg = ops.broadcast_to(reg, &[p.rows, 1, self.config.d_model])?;
        ops.concat(&[context, reg, future], 1)
    }

    fn layer_context<'a>(&self, p: &PatchedInput, plan: &'a GroupPlan) -> Result<LayerContext<'a, O>> {
        let ops = &self.ops;
        let c = &self.config;
        let seq_len = p.seq_len(c.chronos_config.use_reg_token);
        let (cos, sin) = rotary_tables(c, seq_len);
        let half = c.d_kv / 2;
        let time_mask = ops.tensor(&additive_mask(&p.attention_mask), &[p.rows, 1, 1, seq_len])?;
        let group_masks = plan
            .runs
            .iter()
            .map(|run| {
                if run.size == 1 {
                    return Ok(None);
                }
                // mask[g, t, j] = observed(row of member j of group g, t)
                let mut mask = Vec::with_capacity(run.groups * seq_len * run.size);
                for g in 0..run.groups {
                    for t in 0..seq_len {
                        for j in 0..run.size {
                            let gathered = run.start + g * run.size + j;
                            let row = plan.order.as_ref().map_or(gathered, |o| o[gathered]);
                            mask.push(p.attention_mask[row * seq_len + t]);
                        }
                    }
                }
                ops.tensor(&additive_mask(&mask), &[run.groups * seq_len, 1, 1, run.size]).map(Some)
            })
            .collect::<Result<Vec<_>>>()?;
        let group_visible = if plan.any_hidden {
            Some(ops.tensor(&plan.visible, &[p.rows, seq_len, 1])?)
        } else {
            None
        };
        Ok(LayerContext {
            rows: p.rows,
            seq_len,
            heads: c.num_heads,
            d_kv: c.d_kv,
            eps: c.layer_norm_epsilon as f32,
            cos: ops.tensor(&cos, &[seq_len, half])?,
            sin: ops.tensor(&sin, &[seq_len, half])?,
            time_mask,
            group_plan: plan,
            group_masks,
            group_visible,
        })
    }

    /// Runs the encoder; calls `observe` with the encoder input and each block's output.
    fn encoder(
        &self,
        batch: &ModelBatch,
        observe: &mut dyn FnMut(&O::Tensor) -> Result<()>,
    ) -> Result<(PatchedInput, O::Tensor)> {
        let p = self.patch(batch)?;
        let seq_len = p.seq_len(self.config.chronos_config.use_reg_token);
        let plan = GroupPlan::new(&batch.group_ids, &p.attention_mask, seq_len);
        let cx = self.layer_context(&p, &plan)?;
        let mut hidden = self.embed_tokens(&p)?;
        observe(&hidden)?;
        for block in &self.blocks {
            hidden = block.forward(&self.ops, &hidden, &cx)?;
            observe(&hidden)?;
        }
        let hidden = self.ops.rms_norm(&hidden, &self.final_layer_norm, cx.eps)?;
        Ok((p, hidden))
    }

    /// Runs the model and keeps every intermediate state on the host.
    pub fn trace(&self, batch: &ModelBatch) -> Result<Trace> {
        let mut states = Vec::new();
        let (patched, hidden) = self.encoder(batch, &mut |t| {
            states.push(self.ops.to_vec(t)?);
            Ok(())
        })?;
        let input_embeds = states.remove(0);
        Ok(Trace { patched, input_embeds, layer_outputs: states, last_hidden_state: self.ops.to_vec(&hidden)? })
    }
}

impl<O: Ops> Forecaster for Chronos2Model<O> {
    fn config(&self) -> &ModelConfig {
        &self.config
    }

    fn backend_name(&self) -> &str {
        self.ops.name()
    }

    fn forecast(&self, batch: &ModelBatch) -> Result<QuantileForecast> {
        let (p, hidden) = self.encoder(batch, &mut |_| Ok(()))?;
        let ops = &self.ops;
        let (n_out, patch) = (p.num_output_patches, self.config.patch_size());
        let seq_len = ops.shape(&hidden)[1];
        let future = ops.narrow(&hidden, 1, seq_len - n_out, n_out)?;
        let head = ops.to_vec(&self.output_patch_embedding.forward(ops, &future)?)?;
        // (rows, n_out, q * patch) -> (rows, q, n_out * patch), de-normalised in f32.
        let num_quantiles = self.config.quantiles().len();
        let horizon = n_out * patch;
        let use_arcsinh = self.config.chronos_config.use_arcsinh;
        let mut values = vec![0f32; p.rows * num_quantiles * horizon];
        for r in 0..p.rows {
            for n in 0..n_out {
                for q in 0..num_quantiles {
                    for i in 0..patch {
                        let y = head[((r * n_out + n) * num_quantiles + q) * patch + i];
                        values[(r * num_quantiles + q) * horizon + n * patch + i] = denormalize(y, p.loc[r], p.scale[r], use_arcsinh);
                    }
                }
            }
        }
        Ok(QuantileForecast { values, rows: p.rows, num_quantiles, horizon })
    }

    fn quantize(&mut self, bits: u32, group_size: usize) -> Result<()> {
        self.quantize_layers(bits, group_size)
    }

    fn footprint(&self) -> Footprint {
        self.measure_footprint()
    }

    fn encode(&self, batch: &ModelBatch) -> Result<Encoding> {
        let (p, hidden) = self.encoder(batch, &mut |_| Ok(()))?;
        let seq_len = p.seq_len(self.config.chronos_config.use_reg_token);
        Ok(Encoding {
            hidden: self.ops.to_vec(&hidden)?,
            rows: p.rows,
            seq_len,
            d_model: self.config.d_model,
            num_context_patches: p.num_context_patches,
            loc: p.loc,
            scale: p.scale,
        })
    }
}

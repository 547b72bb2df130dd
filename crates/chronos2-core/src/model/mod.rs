//! The Chronos-2 encoder model, written once over [`Ops`].
//!
//! Mirrors `chronos.chronos2.model.Chronos2Model`: patch embedding of `[time, values, mask]`
//! tokens, a [REG] token, future tokens, `num_layers` blocks of time attention (RoPE, no
//! scaling), group attention along the batch and a ReLU feed-forward, a final RMS norm, and a
//! residual output head producing `num_quantiles * patch` values per future token.
//!
//! A forward has a host half, [`Chronos2Model::prepare`] (patching, the group plan, attention
//! masks, rotary tables: a [`PreparedForward`] of host arrays), and a device half,
//! [`Chronos2Model::graph`], which builds the whole graph from those arrays once uploaded and
//! reads nothing back. `forecast`, `encode` and `trace` all run that one graph; a backend may
//! compile it, cached under the forward's [`ForwardStructure`] (shapes + group layout).

mod adapters;
mod group_plan;
mod layers;
mod stages;

use std::path::Path;

pub use adapters::{AdapterSet, RuntimeAdapter};
pub use group_plan::{GroupLayout, GroupPlan, GroupRun};
use layers::{EncoderBlock, ModelLinear, ResidualBlock};
pub use stages::Stages;

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::forecaster::{Encoding, Footprint, Forecaster, ModelBatch, QuantileForecast};
use crate::ops::Ops;
use crate::precision::Precision;
use crate::preprocess::{additive_mask, denormalize, patch_batch, rotary_tables, PatchedInput};
use crate::train::Adapter;
use crate::weights::{ModelSource, Weights};

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
    /// Adapters applied at run time, by name ([`Chronos2Model::add_adapter`]).
    adapters: AdapterSet<O>,
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

/// A host array: row-major `data` of `shape`.
#[derive(Debug, Clone, PartialEq)]
pub struct HostArray {
    pub data: Vec<f32>,
    pub shape: Vec<usize>,
}

/// Everything that shapes the device graph of a forward: the input shapes and the
/// group-attention layout (which rows are gathered and how they are batched). Two forwards with
/// equal structures run the same graph on different input values, so a backend may cache a
/// compiled graph under it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ForwardStructure {
    pub rows: usize,
    pub num_context_patches: usize,
    pub num_output_patches: usize,
    /// Context patches, `[REG]` (if used), future patches.
    pub seq_len: usize,
    pub group: GroupLayout,
    /// Whether some group-attention query has no visible key (the graph then takes the
    /// `(rows, seq_len, 1)` visibility input).
    pub group_visible: bool,
}

impl ForwardStructure {
    /// Number of inputs the graph takes: features, cos, sin, time mask, one key mask per run of
    /// groups larger than one, and the visibility when [`Self::group_visible`].
    pub fn num_inputs(&self) -> usize {
        4 + self.group.runs.iter().filter(|run| run.size > 1).count() + usize::from(self.group_visible)
    }
}

/// The host half of a forward ([`Chronos2Model::prepare`]).
#[derive(Debug, Clone)]
pub struct PreparedForward {
    /// Patched, normalised input (its `loc`/`scale` de-normalise the forecast).
    pub patched: PatchedInput,
    pub structure: ForwardStructure,
    /// The graph's inputs, in order: patch features `(rows, tokens, 3 * patch)`, rotary `cos` and
    /// `sin` `(seq_len, d_kv / 2)`, the additive time-attention key mask `(rows, 1, 1, seq_len)`,
    /// per run of groups larger than one its additive key mask `(groups * seq_len, 1, 1, size)`,
    /// and, when [`ForwardStructure::group_visible`], the visibility `(rows, seq_len, 1)`.
    pub inputs: Vec<HostArray>,
}

/// The outputs of [`Chronos2Model::graph`] (device arrays, not yet evaluated on a lazy backend).
#[derive(Debug, Clone)]
pub struct GraphOutputs<T> {
    /// Final hidden states `(rows, seq_len, d_model)` (after the final RMS norm).
    pub hidden: T,
    /// Output head on the future tokens `(rows, num_output_patches, num_quantiles * patch)`,
    /// normalised.
    pub head: T,
}

impl<O: Ops> Chronos2Model<O> {
    /// Loads `config.json` and `model.safetensors` from `dir` onto backend `ops`.
    pub fn load_dir(ops: O, dir: &Path) -> Result<Self> {
        Self::load_source(ops, &ModelSource::Dir(dir.to_path_buf()))
    }

    /// Loads the model `source` (a directory or a model in memory) onto backend `ops`.
    pub fn load_source(ops: O, source: &ModelSource) -> Result<Self> {
        let (config, weights) = source.open()?;
        Self::load(ops, config, &weights)
    }

    /// Builds the model from `config` and `weights` (every tensor must be used).
    pub fn load(ops: O, config: ModelConfig, weights: &Weights) -> Result<Self> {
        let c = &config;
        let patch = c.patch_size();
        let reg_embedding = if c.chronos_config.use_reg_token {
            let shared = weights.get("shared.weight", &[2, c.d_model])?;
            Some(ops.parameter("shared.weight", &shared[c.d_model..], &[1, 1, c.d_model])?)
        } else {
            weights.get("shared.weight", &[1, c.d_model])?;
            None
        };
        let input_patch_embedding =
            ResidualBlock::load(&ops, weights, "input_patch_embedding", 3 * patch, c.d_ff, c.d_model)?;
        let blocks = (0..c.num_layers)
            .map(|i| EncoderBlock::load(&ops, weights, &format!("encoder.block.{i}"), c))
            .collect::<Result<Vec<_>>>()?;
        let final_layer_norm = ops.parameter(
            "encoder.final_layer_norm.weight",
            &weights.get("encoder.final_layer_norm.weight", &[c.d_model])?,
            &[c.d_model],
        )?;
        let output_dim = c.quantiles().len() * patch;
        let output_patch_embedding =
            ResidualBlock::load(&ops, weights, "output_patch_embedding", c.d_model, c.d_ff, output_dim)?;
        weights.check_all_used()?;
        Ok(Chronos2Model {
            ops,
            config,
            reg_embedding,
            input_patch_embedding,
            blocks,
            final_layer_norm,
            output_patch_embedding,
            adapters: AdapterSet::default(),
        })
    }

    pub fn ops(&self) -> &O {
        &self.ops
    }

    fn linears(&self) -> Vec<&ModelLinear<O>> {
        let mut out: Vec<&ModelLinear<O>> = Vec::new();
        out.extend(self.input_patch_embedding.linears());
        for block in &self.blocks {
            out.extend(block.linears());
        }
        out.extend(self.output_patch_embedding.linears());
        out
    }

    fn linears_mut(&mut self) -> Vec<&mut O::Linear> {
        let mut out: Vec<&mut ModelLinear<O>> = Vec::new();
        out.extend(self.input_patch_embedding.linears_mut());
        for block in &mut self.blocks {
            out.extend(block.linears_mut());
        }
        out.extend(self.output_patch_embedding.linears_mut());
        out.into_iter().map(|l| &mut l.layer).collect()
    }

    /// Uploads `adapter` (LoRA, or replaced linear layers such as a trained head) under `name`,
    /// replacing an adapter of that name. The base weights are shared, never copied. Fails when
    /// the adapter does not fit the model.
    pub fn add_adapter(&self, name: &str, adapter: &Adapter) -> Result<()> {
        let built = RuntimeAdapter::build(&self.ops, adapter, &self.linears())?;
        self.adapters.insert(name, built);
        Ok(())
    }

    /// The adapters loaded on this model.
    pub fn adapters(&self) -> &AdapterSet<O> {
        &self.adapters
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

    /// Rebuilds the float linear layers in `precision` through [`Ops::linear_in_precision`]:
    /// every one for bf16; for w8a8 those whose input width is a multiple of the group size
    /// (the others stay fp32, as with weight-only quantization), except the output patch
    /// embedding, which stays fp32: it runs on the future patches only (a few rows per series,
    /// so quantizing it saves no time) and quantizing its activations was the largest error of
    /// w8a8 on the real series (`docs/accuracy.md`: 1.10% of the fp32 10-90 spread with it,
    /// 0.60% without).
    fn convert_layers(&mut self, precision: Precision) -> Result<()> {
        let ops = self.ops.clone();
        let head = self.output_patch_embedding.linears().len();
        let mut layers = self.linears_mut();
        if precision == Precision::W8a8 {
            layers.truncate(layers.len() - head);
        }
        for layer in layers {
            let shape = ops.linear_footprint(layer);
            if precision == Precision::W8a8 && !crate::quant::qualifies(shape.in_dim, crate::quant::DEFAULT_GROUP_SIZE)
            {
                continue;
            }
            let Some((weight, bias)) = ops.linear_float_weights(layer)? else { continue };
            *layer = ops.linear_in_precision(&weight, shape.out_dim, shape.in_dim, bias.as_deref(), precision)?;
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
        for layer in self.linears() {
            let l = ops.linear_footprint(&layer.layer);
            f.total_params += l.params;
            f.bytes += l.bytes;
            if l.quantized {
                f.quantized_params += l.params;
                f.quantized_layer_bytes += l.bytes;
            }
        }
        (f.adapter_params, f.adapter_bytes) = self.adapters.footprint();
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

    /// The host half of a forward: patching, the group plan, the attention masks and the rotary
    /// tables. Everything it returns is host data; [`Chronos2Model::graph`] is the device half.
    pub fn prepare(&self, batch: &ModelBatch) -> Result<PreparedForward> {
        self.validate(batch)?;
        let c = &self.config;
        let future = batch.future_covariates.as_deref().map(|f| (f, batch.future_len));
        let p = patch_batch(c, &batch.context, batch.rows, batch.context_len, future, batch.num_output_patches)?;
        let seq_len = p.seq_len(c.chronos_config.use_reg_token);
        let plan = GroupPlan::new(&batch.group_ids, &p.attention_mask, seq_len);
        let tokens = p.num_context_patches + p.num_output_patches;
        let (cos, sin) = rotary_tables(c, seq_len);
        let half = c.d_kv / 2;
        let mut inputs = vec![
            HostArray { data: p.features.clone(), shape: vec![p.rows, tokens, 3 * c.patch_size()] },
            HostArray { data: cos, shape: vec![seq_len, half] },
            HostArray { data: sin, shape: vec![seq_len, half] },
            HostArray { data: additive_mask(&p.attention_mask), shape: vec![p.rows, 1, 1, seq_len] },
        ];
        let layout = &plan.layout;
        for run in layout.runs.iter().filter(|run| run.size > 1) {
            // mask[g, t, j] = observed(row of member j of group g, t)
            let mut mask = Vec::with_capacity(run.groups * seq_len * run.size);
            for g in 0..run.groups {
                for t in 0..seq_len {
                    for j in 0..run.size {
                        let gathered = run.start + g * run.size + j;
                        let row = layout.order.as_ref().map_or(gathered, |o| o[gathered]);
                        mask.push(p.attention_mask[row * seq_len + t]);
                    }
                }
            }
            inputs.push(HostArray { data: additive_mask(&mask), shape: vec![run.groups * seq_len, 1, 1, run.size] });
        }
        if plan.any_hidden {
            inputs.push(HostArray { data: plan.visible, shape: vec![p.rows, seq_len, 1] });
        }
        let structure = ForwardStructure {
            rows: p.rows,
            num_context_patches: p.num_context_patches,
            num_output_patches: p.num_output_patches,
            seq_len,
            group: plan.layout,
            group_visible: plan.any_hidden,
        };
        Ok(PreparedForward { patched: p, structure, inputs })
    }

    /// Uploads the host inputs of `prepared`, in order.
    pub fn upload(&self, prepared: &PreparedForward) -> Result<Vec<O::Tensor>> {
        prepared.inputs.iter().map(|a| self.ops.tensor(&a.data, &a.shape)).collect()
    }

    /// The device half of a forward: the whole graph from the uploaded inputs of a
    /// [`PreparedForward`] (in the order of [`PreparedForward::inputs`]) to the final hidden
    /// states and the output head. Only builds the graph: it never reads an array back, so a lazy
    /// backend evaluates it once, when the caller reads an output, and a backend may compile it
    /// (it depends only on `structure`, the weights and `inputs`). `observe` sees the encoder input
    /// and each block's output.
    pub fn graph(
        &self,
        structure: &ForwardStructure,
        inputs: &[O::Tensor],
        observe: &mut dyn FnMut(&O::Tensor) -> Result<()>,
    ) -> Result<GraphOutputs<O::Tensor>> {
        self.graph_with(structure, inputs, None, observe)
    }

    /// [`Chronos2Model::graph`] with `adapter` applied to the linear layers it adapts.
    pub fn graph_with(
        &self,
        structure: &ForwardStructure,
        inputs: &[O::Tensor],
        adapter: Option<&RuntimeAdapter<O>>,
        observe: &mut dyn FnMut(&O::Tensor) -> Result<()>,
    ) -> Result<GraphOutputs<O::Tensor>> {
        let stages = self.stages(structure, inputs, adapter)?;
        let mut hidden = stages.embed()?;
        observe(&hidden)?;
        for i in 0..stages.num_blocks() {
            hidden = stages.block(i, &hidden)?;
            observe(&hidden)?;
        }
        stages.finish(&hidden)
    }

    /// The forecast from the host copy of [`GraphOutputs::head`]: `(rows, n_out, q * patch)` to
    /// `(rows, q, n_out * patch)`, de-normalised in f32.
    pub fn forecast_from_head(&self, prepared: &PreparedForward, head: &[f32]) -> Result<QuantileForecast> {
        let p = &prepared.patched;
        let (n_out, patch) = (p.num_output_patches, self.config.patch_size());
        let num_quantiles = self.config.quantiles().len();
        let horizon = n_out * patch;
        if head.len() != p.rows * num_quantiles * horizon {
            return Err(Error::Backend(format!(
                "output head: {} values, expected {}",
                head.len(),
                p.rows * num_quantiles * horizon
            )));
        }
        let use_arcsinh = self.config.chronos_config.use_arcsinh;
        let mut values = vec![0f32; p.rows * num_quantiles * horizon];
        for r in 0..p.rows {
            for n in 0..n_out {
                for q in 0..num_quantiles {
                    for i in 0..patch {
                        let y = head[((r * n_out + n) * num_quantiles + q) * patch + i];
                        values[(r * num_quantiles + q) * horizon + n * patch + i] =
                            denormalize(y, p.loc[r], p.scale[r], use_arcsinh);
                    }
                }
            }
        }
        Ok(QuantileForecast { values, rows: p.rows, num_quantiles, horizon })
    }

    /// The encoding from the host copy of [`GraphOutputs::hidden`].
    pub fn encoding_from_hidden(&self, prepared: PreparedForward, hidden: Vec<f32>) -> Result<Encoding> {
        let s = &prepared.structure;
        let d_model = self.config.d_model;
        if hidden.len() != s.rows * s.seq_len * d_model {
            return Err(Error::Backend(format!(
                "hidden states: {} values, expected {}",
                hidden.len(),
                s.rows * s.seq_len * d_model
            )));
        }
        let p = prepared.patched;
        Ok(Encoding {
            hidden,
            rows: p.rows,
            seq_len: s.seq_len,
            d_model,
            num_context_patches: p.num_context_patches,
            loc: p.loc,
            scale: p.scale,
        })
    }

    /// Runs the model and keeps every intermediate state on the host.
    pub fn trace(&self, batch: &ModelBatch) -> Result<Trace> {
        let prepared = self.prepare(batch)?;
        let inputs = self.upload(&prepared)?;
        let mut states = Vec::new();
        let out = self.graph(&prepared.structure, &inputs, &mut |t| {
            states.push(self.ops.to_vec(t)?);
            Ok(())
        })?;
        let input_embeds = states.remove(0);
        let last_hidden_state = self.ops.to_vec(&out.hidden)?;
        Ok(Trace { patched: prepared.patched, input_embeds, layer_outputs: states, last_hidden_state })
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
        self.forecast_adapted(batch, None)
    }

    fn forecast_adapted(&self, batch: &ModelBatch, adapter: Option<&str>) -> Result<QuantileForecast> {
        let adapter = adapter.map(|name| self.adapters.get(name)).transpose()?;
        let prepared = self.prepare(batch)?;
        let out =
            self.graph_with(&prepared.structure, &self.upload(&prepared)?, adapter.as_deref(), &mut |_| Ok(()))?;
        self.forecast_from_head(&prepared, &self.ops.to_vec(&out.head)?)
    }

    fn add_adapter(&self, name: &str, adapter: &Adapter) -> Result<()> {
        Chronos2Model::add_adapter(self, name, adapter)
    }

    fn remove_adapter(&self, name: &str) -> bool {
        self.adapters.remove(name)
    }

    fn has_adapter(&self, name: &str) -> bool {
        self.adapters.contains(name)
    }

    /// fp32 (a no-op on the float model as loaded), int8 and int4 (weight-only, group 64) run on
    /// every [`Ops`]; bf16 and w8a8 where the backend implements them
    /// ([`Ops::supports_precision`]).
    fn set_precision(&mut self, precision: Precision) -> Result<()> {
        if !self.ops.supports_precision(precision) {
            return Err(self.ops.unsupported_precision(precision));
        }
        if self.measure_footprint().quantized_params > 0 {
            return Err(Error::PrecisionAlreadySet { requested: precision });
        }
        match precision {
            Precision::Fp32 => Ok(()),
            Precision::Int8 => self.quantize_layers(8, crate::quant::DEFAULT_GROUP_SIZE),
            Precision::Int4 => self.quantize_layers(4, crate::quant::DEFAULT_GROUP_SIZE),
            Precision::Bf16 | Precision::W8a8 => self.convert_layers(precision),
        }
    }

    fn footprint(&self) -> Footprint {
        self.measure_footprint()
    }

    fn encode(&self, batch: &ModelBatch) -> Result<Encoding> {
        self.encode_adapted(batch, None)
    }

    fn encode_adapted(&self, batch: &ModelBatch, adapter: Option<&str>) -> Result<Encoding> {
        let adapter = adapter.map(|name| self.adapters.get(name)).transpose()?;
        let prepared = self.prepare(batch)?;
        let out =
            self.graph_with(&prepared.structure, &self.upload(&prepared)?, adapter.as_deref(), &mut |_| Ok(()))?;
        let hidden = self.ops.to_vec(&out.hidden)?;
        self.encoding_from_hidden(prepared, hidden)
    }
}

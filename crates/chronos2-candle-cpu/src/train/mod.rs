//! Training on candle CPU with autograd: the graph written once in `chronos2-core`, run over
//! [`TrainOps`] (differentiable candle ops and training custom ops with their own backward; the
//! fast inference kernels, which have none, are bypassed).

mod allocator;
mod checkpoint;
mod dropout;
mod frozen;
mod lora;
mod loss;
mod matmul;
mod ops;
mod params;
mod rms_norm;
mod rope;
mod rows;
mod softmax;
#[cfg(test)]
mod test_values;
mod threads;

use std::path::Path;

use candle_core::Tensor;
use chronos2_core::config::ModelConfig;
use chronos2_core::model::{Chronos2Model, ForwardStructure, Stages};
use chronos2_core::train::{DropoutMasks, LossTargets, TrainBatch, TrainModel};
use chronos2_core::weights::{ModelSource, Weights};
use chronos2_core::{Error, Forecaster, Result};

pub use checkpoint::Checkpointing;
pub use chronos2_core::train::{lora_key, TrainSpec};
pub use ops::{TrainLinear, TrainOps};
pub use params::{ParamRole, TrainParam};

use checkpoint::HeadLoss;
use ops::err;

/// Chronos-2 on candle CPU with the trainable parameters of a [`TrainSpec`].
pub struct CpuTrainModel {
    model: Chronos2Model<TrainOps>,
    params: Vec<TrainParam>,
    checkpointing: Checkpointing,
    /// The most rows a step runs at once; `None`: as many as the memory budget allows.
    micro_batch_rows: Option<usize>,
    /// The model's weights in fp32.
    weight_bytes: usize,
}

impl CpuTrainModel {
    /// Loads `config.json` and `model.safetensors` from `dir`.
    pub fn load_dir(dir: &Path, spec: TrainSpec) -> Result<Self> {
        Self::load_source(&ModelSource::Dir(dir.to_path_buf()), spec)
    }

    /// [`Self::load_dir`] from a model directory or a model in memory.
    pub fn load_source(source: &ModelSource, spec: TrainSpec) -> Result<Self> {
        let (config, weights) = source.open()?;
        Self::load(config, &weights, spec)
    }

    /// Builds the model; fails on a LoRA target that matches no linear layer.
    pub fn load(config: ModelConfig, weights: &Weights, spec: TrainSpec) -> Result<Self> {
        threads::short_candle_pool_spin();
        allocator::keep_freed_memory();
        let ops = TrainOps::new(spec);
        let model = Chronos2Model::load(ops.clone(), config, weights)?;
        let (params, modules) = {
            let store = ops.store();
            (store.params.clone(), store.linear_modules.clone())
        };
        if ops.spec().mode.uses_lora() {
            ops.spec().lora.validate(&modules)?;
        }
        let weight_bytes = 4 * model.footprint().total_params;
        Ok(CpuTrainModel { model, params, checkpointing: Checkpointing::Auto, micro_batch_rows: None, weight_bytes })
    }

    /// The trainable parameters, in build order.
    pub fn params(&self) -> &[TrainParam] {
        &self.params
    }

    /// Which encoder blocks training steps checkpoint (default [`Checkpointing::Auto`]).
    pub fn set_checkpointing(&mut self, checkpointing: Checkpointing) {
        self.checkpointing = checkpointing;
    }

    /// The most rows a training step runs at once (`None`, the default: as many as keep two
    /// blocks' graphs within the checkpoint budget, [`checkpoint::micro_batch_rows`]).
    pub fn set_micro_batch_rows(&mut self, rows: Option<usize>) {
        self.micro_batch_rows = rows;
    }

    /// Runs `run` on the stages of the forward of `batch` with the batch's loss.
    fn with_stages<T>(
        &self,
        batch: &TrainBatch,
        run: impl FnOnce(&Stages<TrainOps>, &HeadLoss, &ForwardStructure) -> Result<T>,
    ) -> Result<T> {
        let config = self.model.config();
        let prepared = self.model.prepare(&batch.model)?;
        let inputs = self.model.upload(&prepared)?;
        let stages = self.model.stages(&prepared.structure, &inputs, None)?;
        let targets = LossTargets::new(config, batch, &prepared.patched.loc, &prepared.patched.scale)?;
        let head_loss = |head: &Tensor| loss::quantile_loss(head, &targets, config.quantiles(), config.patch_size());
        run(&stages, &head_loss, &prepared.structure)
    }
}

fn set_var(p: &TrainParam, values: &[f32]) -> Result<()> {
    let shape = p.var.as_tensor().dims().to_vec();
    if values.len() != p.var.as_tensor().elem_count() {
        return Err(Error::InvalidInput(format!(
            "parameter `{}` has shape {shape:?}, got {} values",
            p.name,
            values.len()
        )));
    }
    let t = Tensor::from_slice(values, shape, &candle_core::Device::Cpu).map_err(err)?;
    p.var.set(&t).map_err(err)
}

fn scalar(t: &Tensor) -> Result<f32> {
    t.to_scalar::<f32>().map_err(err)
}

impl TrainModel for CpuTrainModel {
    fn config(&self) -> &ModelConfig {
        self.model.config()
    }

    fn parameter_names(&self) -> Vec<String> {
        self.params.iter().map(|p| p.name.clone()).collect()
    }

    fn parameter_shapes(&self) -> Vec<Vec<usize>> {
        self.params.iter().map(|p| p.var.as_tensor().dims().to_vec()).collect()
    }

    fn parameter_values(&self) -> Result<Vec<Vec<f32>>> {
        self.params.iter().map(|p| p.var.as_tensor().flatten_all().and_then(|t| t.to_vec1()).map_err(err)).collect()
    }

    fn set_parameter_values(&mut self, values: &[Vec<f32>]) -> Result<()> {
        if values.len() != self.params.len() {
            return Err(Error::InvalidInput(format!(
                "{} parameter values for {} parameters",
                values.len(),
                self.params.len()
            )));
        }
        self.params.iter().zip(values).try_for_each(|(p, v)| set_var(p, v))
    }

    /// Large batches run as micro-batches of whole groups ([`TrainBatch::micro_batches`]), each
    /// weighted by its share of the rows, so that a step's memory does not grow with the batch.
    fn loss_and_grads(&mut self, batch: &TrainBatch) -> Result<(f32, Vec<Vec<f32>>)> {
        batch.loss_and_grads_in_parts(self.micro_batch_rows(batch), |part| self.micro_batch_loss_and_grads(part))
    }

    fn set_dropout_masks(&mut self, masks: Box<dyn DropoutMasks>) {
        self.model.ops().dropout().set_masks(masks);
    }

    fn loss(&self, batch: &TrainBatch) -> Result<f32> {
        scalar(&self.with_stages(batch, |stages, head_loss, _| checkpoint::loss_only(stages, head_loss))?)
    }
}

impl CpuTrainModel {
    /// The most rows a step runs at once ([`Self::set_micro_batch_rows`]).
    fn micro_batch_rows(&self, batch: &TrainBatch) -> usize {
        if let Some(rows) = self.micro_batch_rows {
            return rows.max(1);
        }
        let config = self.model.config();
        checkpoint::micro_batch_rows(config, batch.tokens_per_row(config), self.weight_bytes)
    }

    /// The loss and gradients of one micro-batch: one training step of dropout masks.
    fn micro_batch_loss_and_grads(&self, batch: &TrainBatch) -> Result<(f32, Vec<Vec<f32>>)> {
        let step = self.model.ops().dropout().training_step();
        let (loss, grads) = self.with_stages(batch, |stages, head_loss, structure| {
            let recomputed = self.checkpointing.recomputed_blocks(
                self.model.config(),
                structure.rows * structure.seq_len,
                self.weight_bytes,
            );
            checkpoint::loss_and_grads(stages, &self.params, head_loss, recomputed)
        })?;
        drop(step);
        let values = self
            .params
            .iter()
            .zip(grads)
            .map(|(p, g)| match g {
                Some(g) => g.flatten_all().and_then(|g| g.to_vec1()).map_err(err),
                None => Ok(vec![0.0; p.var.as_tensor().elem_count()]),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((scalar(&loss)?, values))
    }
}

//! Training on MLX with `value_and_grad`: the graph written once in `chronos2-core`, run over
//! [`MlxTrainOps`], differentiated by MLX with respect to the trainable parameters.

mod dropout;
mod loss;
mod micro_batch;
mod ops;
mod params;

use std::path::Path;

use chronos2_core::config::ModelConfig;
use chronos2_core::forecaster::Footprint;
use chronos2_core::model::{Chronos2Model, PreparedForward};
use chronos2_core::ops::Ops;
use chronos2_core::train::{DropoutMasks, LossTargets, TrainBatch, TrainModel, TrainSpec};
use chronos2_core::weights::{ModelSource, Weights};
use chronos2_core::{Error, Forecaster, Result};
use mlx_rs::error::Exception;
use mlx_rs::transforms::value_and_grad_with_argnums;
use mlx_rs::Array;

pub use ops::{MlxTrainLinear, MlxTrainOps, MlxTrainTensor};

use params::MlxTrainParam;

use crate::ops::{dims, err};
use crate::MlxTensor;

/// Chronos-2 on MLX with the trainable parameters of a [`TrainSpec`].
pub struct MlxTrainModel {
    model: Chronos2Model<MlxTrainOps>,
    /// The most rows a step runs at once (`None`: [`micro_batch::micro_batch_rows`]).
    micro_batch_rows: Option<usize>,
    /// The model's weights in fp32, which the memory budget of a step is measured against.
    weight_bytes: usize,
}

impl MlxTrainModel {
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
        let ops = MlxTrainOps::new(spec);
        let model = Chronos2Model::load(ops.clone(), config, weights)?;
        if ops.spec().mode.uses_lora() {
            let modules = ops.store().linear_modules.clone();
            ops.spec().lora.validate(&modules)?;
        }
        let weight_bytes = 4 * model.footprint().total_params;
        Ok(MlxTrainModel { model, micro_batch_rows: None, weight_bytes })
    }

    /// Fixes the most rows a training step runs at once (`None`: as many as keep the step's
    /// intermediates within the memory budget, [`micro_batch::micro_batch_rows`]). A larger batch
    /// runs as micro-batches of whole groups, with the same loss and gradients.
    pub fn set_micro_batch_rows(&mut self, rows: Option<usize>) {
        self.micro_batch_rows = rows;
    }

    /// The most rows a step runs at once ([`Self::set_micro_batch_rows`]).
    fn micro_batch_rows(&self, batch: &TrainBatch) -> usize {
        if let Some(rows) = self.micro_batch_rows {
            return rows.max(1);
        }
        let config = self.model.config();
        micro_batch::micro_batch_rows(config, batch.tokens_per_row(config), self.weight_bytes)
    }

    /// Parameters and bytes of the model as held for training (LoRA adapters included; in QLoRA
    /// mode the base linears are quantized).
    pub fn footprint(&self) -> Footprint {
        self.model.footprint()
    }

    fn ops(&self) -> &MlxTrainOps {
        self.model.ops()
    }

    /// The host half of a forward and its loss targets.
    fn prepare(&self, batch: &TrainBatch) -> Result<(PreparedForward, LossTargets)> {
        let prepared = self.model.prepare(&batch.model)?;
        let p = &prepared.patched;
        let targets = LossTargets::new(self.model.config(), batch, &p.loc, &p.scale)?;
        Ok((prepared, targets))
    }

    /// The loss of a prepared batch as a lazy scalar, with the parameters the ops resolve now.
    fn forward_loss(&self, prepared: &PreparedForward, targets: &LossTargets) -> Result<Array> {
        let config = self.model.config();
        let inputs = self.model.upload(prepared)?;
        let out = self.model.graph(&prepared.structure, &inputs, &mut |_| Ok(()))?;
        let head = self.ops().array_of(&out.head);
        loss::quantile_loss(head.array(), targets, config.quantiles(), config.patch_size())
    }

    /// `value_and_grad` of the loss of one micro-batch with respect to every trainable
    /// parameter, one training step of dropout masks: the closure binds the arrays MLX passes in
    /// as the parameters and builds the graph on them.
    fn micro_batch_loss_and_grads(&self, batch: &TrainBatch) -> Result<(f32, Vec<Vec<f32>>)> {
        // in training mode: the forward(s) below drop out with this step's masks
        let _step = self.ops().dropout().training_step();
        let params: Vec<Array> = self.ops().store().values.iter().map(|v| v.array().clone()).collect();
        if params.is_empty() {
            // Nothing to differentiate (e.g. LoRA with no target): the loss alone.
            return Ok((self.loss(batch)?, Vec::new()));
        }
        let (prepared, targets) = self.prepare(batch)?;
        let argnums: Vec<i32> = (0..params.len()).map(|i| i as i32).collect();
        let loss_of = |tracers: &[Array]| -> std::result::Result<Vec<Array>, Exception> {
            let exception = |e: Error| Exception::custom(e.to_string());
            let _bound = self.ops().bind(tracers).map_err(exception)?;
            Ok(vec![self.forward_loss(&prepared, &targets).map_err(exception)?])
        };
        let (values, grads) = value_and_grad_with_argnums(loss_of, argnums.as_slice())(&params).map_err(err)?;
        let loss = values.first().ok_or_else(|| Error::Backend("value_and_grad returned no loss".into()))?;
        mlx_rs::transforms::eval(std::iter::once(loss).chain(grads.iter())).map_err(err)?;
        let grads = grads.iter().map(host).collect::<Result<Vec<_>>>()?;
        Ok((scalar(loss)?, grads))
    }
}

/// An array of `param`'s shape holding `values`.
fn parameter_array(param: &MlxTrainParam, values: &[f32]) -> Result<MlxTensor> {
    if values.len() != param.shape.iter().product::<usize>() {
        return Err(Error::InvalidInput(format!(
            "parameter `{}` has shape {:?}, got {} values",
            param.name,
            param.shape,
            values.len()
        )));
    }
    Ok(MlxTensor::from(Array::from_slice(values, &dims(&param.shape)?)))
}

fn scalar(loss: &Array) -> Result<f32> {
    loss.try_item_exact::<f32>().map_err(err)
}

/// A gradient on the host (gradients may be strided views: `to_vec` copies them contiguous).
fn host(a: &Array) -> Result<Vec<f32>> {
    crate::MlxOps::new().to_vec(&MlxTensor::from(a.clone()))
}

impl TrainModel for MlxTrainModel {
    fn config(&self) -> &ModelConfig {
        self.model.config()
    }

    fn parameter_names(&self) -> Vec<String> {
        self.ops().store().params.iter().map(|p| p.name.clone()).collect()
    }

    fn parameter_shapes(&self) -> Vec<Vec<usize>> {
        self.ops().store().params.iter().map(|p| p.shape.clone()).collect()
    }

    fn parameter_values(&self) -> Result<Vec<Vec<f32>>> {
        let values = self.ops().store().values.clone();
        values.iter().map(|v| crate::MlxOps::new().to_vec(v)).collect()
    }

    fn set_parameter_values(&mut self, values: &[Vec<f32>]) -> Result<()> {
        let mut store = self.ops().store();
        if values.len() != store.params.len() {
            return Err(Error::InvalidInput(format!(
                "{} parameter values for {} parameters",
                values.len(),
                store.params.len()
            )));
        }
        let arrays = store.params.iter().zip(values).map(|(p, v)| parameter_array(p, v)).collect::<Result<Vec<_>>>()?;
        store.values = arrays;
        Ok(())
    }

    /// Large batches run as micro-batches of whole groups ([`TrainBatch::micro_batches`]), each
    /// weighted by its share of the rows, so that a step's memory does not grow with the batch.
    fn loss_and_grads(&mut self, batch: &TrainBatch) -> Result<(f32, Vec<Vec<f32>>)> {
        batch.loss_and_grads_in_parts(self.micro_batch_rows(batch), |part| self.micro_batch_loss_and_grads(part))
    }

    fn set_dropout_masks(&mut self, masks: Box<dyn DropoutMasks>) {
        self.ops().dropout().set_masks(masks);
    }

    fn loss(&self, batch: &TrainBatch) -> Result<f32> {
        let (prepared, targets) = self.prepare(batch)?;
        scalar(&self.forward_loss(&prepared, &targets)?)
    }
}

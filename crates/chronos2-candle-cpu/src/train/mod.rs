//! Training on candle CPU with autograd: the graph written once in `chronos2-core`, run over
//! [`TrainOps`] (plain differentiable candle ops; the fast inference kernels are bypassed).

mod frozen;
mod loss;
mod ops;
mod params;

use std::path::Path;

use candle_core::Tensor;
use chronos2_core::config::ModelConfig;
use chronos2_core::hub::{CONFIG_FILE, WEIGHTS_FILE};
use chronos2_core::model::Chronos2Model;
use chronos2_core::train::{LossTargets, TrainBatch, TrainModel};
use chronos2_core::weights::Weights;
use chronos2_core::{Error, Forecaster, Result};

pub use chronos2_core::train::{lora_key, TrainSpec};
pub use ops::{TrainLinear, TrainOps};
pub use params::{ParamRole, TrainParam};

use ops::err;

/// Chronos-2 on candle CPU with the trainable parameters of a [`TrainSpec`].
pub struct CpuTrainModel {
    model: Chronos2Model<TrainOps>,
    params: Vec<TrainParam>,
}

impl CpuTrainModel {
    /// Loads `config.json` and `model.safetensors` from `dir`.
    pub fn load_dir(dir: &Path, spec: TrainSpec) -> Result<Self> {
        let config = ModelConfig::from_file(&dir.join(CONFIG_FILE))?;
        let weights = Weights::open(&dir.join(WEIGHTS_FILE))?;
        Self::load(config, &weights, spec)
    }

    /// Builds the model; fails on a LoRA target that matches no linear layer.
    pub fn load(config: ModelConfig, weights: &Weights, spec: TrainSpec) -> Result<Self> {
        let ops = TrainOps::new(spec);
        let model = Chronos2Model::load(ops.clone(), config, weights)?;
        let (params, modules) = {
            let store = ops.store();
            (store.params.clone(), store.linear_modules.clone())
        };
        if ops.spec().mode.uses_lora() {
            ops.spec().lora.validate(&modules)?;
        }
        Ok(CpuTrainModel { model, params })
    }

    /// The trainable parameters, in build order.
    pub fn params(&self) -> &[TrainParam] {
        &self.params
    }

    /// Sets the parameter `name` (e.g. to a given LoRA initialisation).
    pub fn set_param(&self, name: &str, values: &[f32]) -> Result<()> {
        let p = self
            .params
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| Error::InvalidInput(format!("no trainable parameter `{name}`")))?;
        set_var(p, values)
    }

    fn forward_loss(&self, batch: &TrainBatch) -> Result<Tensor> {
        let config = self.model.config();
        let prepared = self.model.prepare(&batch.model)?;
        let inputs = self.model.upload(&prepared)?;
        let out = self.model.graph(&prepared.structure, &inputs, &mut |_| Ok(()))?;
        let targets = LossTargets::new(config, batch, &prepared.patched.loc, &prepared.patched.scale)?;
        loss::quantile_loss(&out.head, &targets, config.quantiles(), config.patch_size())
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

    fn loss_and_grads(&mut self, batch: &TrainBatch) -> Result<(f32, Vec<Vec<f32>>)> {
        let loss = self.forward_loss(batch)?;
        let grads = loss.backward().map_err(err)?;
        let values = self
            .params
            .iter()
            .map(|p| match grads.get(p.var.as_tensor()) {
                Some(g) => g.flatten_all().and_then(|g| g.to_vec1()).map_err(err),
                None => Ok(vec![0.0; p.var.as_tensor().elem_count()]),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((scalar(&loss)?, values))
    }

    fn loss(&self, batch: &TrainBatch) -> Result<f32> {
        scalar(&self.forward_loss(batch)?.detach())
    }
}

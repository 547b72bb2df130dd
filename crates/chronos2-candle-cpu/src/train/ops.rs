//! [`Ops`] on candle autograd tensors, for training.
//!
//! The hand-written fast kernels of the CPU backend (few-row matmul, fused int8/int4, candle-nn's
//! rms_norm / rope / softmax custom ops) have no backward, so this implementation writes the
//! operations with differentiable candle ops, and the heaviest as training custom ops with their
//! own backward, parallel on rayon: the matrix products ([`matmul`]), the RMS norm ([`rms_norm`]),
//! the rotary embedding ([`rope`]) and the attention's softmax ([`softmax_last_dim`]).
//! Parameters are created through [`Ops::parameter`] / [`Ops::linear_parameter`], which know
//! their Hugging Face names: those the fine-tuning mode trains become [`Var`]s registered in a
//! [`ParamStore`], the rest constants.
//! LoRA adapters are attached to the targeted linears; in QLoRA mode the frozen base weight of a
//! linear whose input width is a multiple of 64 is held quantized (MLX's affine group-64 scheme)
//! and dequantized per use. Frozen base weights run through [`FrozenMatmul`], whose backward gives
//! only the input's gradient (no weight-sized gradient of a constant, no fp32 copy of a QLoRA base).

use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Tensor, Var};
use chronos2_core::ops::{LayerFootprint, Ops};
use chronos2_core::quant::{qualifies, quantize, QuantizedWeight};
use chronos2_core::train::rng::Rng;
use chronos2_core::train::{lora_key, DropoutSite, FinetuneMode, TrainSpec, TrainingDropout, QLORA_GROUP_SIZE};
use chronos2_core::{Error, Result};

use super::frozen::{FrozenMatmul, FrozenWeight};
use super::lora::LoraMatmul;
use super::matmul::matmul;
use super::params::{ParamRole, ParamStore};
use super::rms_norm::rms_norm;
use super::rope::rope;
use super::softmax::softmax_last_dim;

pub(crate) fn err(e: candle_core::Error) -> Error {
    Error::backend(e)
}

/// Training implementation of the graph's operations (candle CPU, autograd).
#[derive(Clone)]
pub struct TrainOps {
    device: Device,
    spec: Arc<TrainSpec>,
    store: Arc<Mutex<ParamStore>>,
    rng: Arc<Mutex<Rng>>,
    dropout: TrainingDropout,
}

/// A LoRA adapter `B A` scaled by `alpha / r`.
pub struct LoraPair {
    pub a: Tensor,
    pub b: Tensor,
    pub scaling: f64,
}

/// The base weight `(out, in)` of a training linear.
enum BaseWeight {
    /// A trained variable.
    Trained(Tensor),
    /// A frozen float or quantized weight.
    Frozen(FrozenWeight),
}

/// A linear layer for training: weight `(out, in)`, optional bias, optional LoRA adapter.
pub struct TrainLinear {
    weight: BaseWeight,
    bias: Option<Tensor>,
    lora: Option<LoraPair>,
}

impl TrainOps {
    pub fn new(spec: TrainSpec) -> Self {
        let seed = spec.seed;
        TrainOps {
            device: Device::Cpu,
            spec: Arc::new(spec),
            store: Arc::new(Mutex::new(ParamStore::default())),
            rng: Arc::new(Mutex::new(Rng::new(seed))),
            dropout: TrainingDropout::new(seed),
        }
    }

    pub fn spec(&self) -> &TrainSpec {
        &self.spec
    }

    pub(crate) fn dropout(&self) -> &TrainingDropout {
        &self.dropout
    }

    pub(crate) fn store(&self) -> std::sync::MutexGuard<'_, ParamStore> {
        self.store.lock().expect("parameter store poisoned")
    }

    fn constant(&self, data: &[f32], shape: &[usize]) -> Result<Tensor> {
        Tensor::from_slice(data, shape, &self.device).map_err(err)
    }

    /// A trainable variable registered under `name`, or a constant.
    fn maybe_var(&self, name: &str, data: &[f32], shape: &[usize], role: ParamRole, trained: bool) -> Result<Tensor> {
        let t = self.constant(data, shape)?;
        if !trained {
            return Ok(t);
        }
        let var = Var::from_tensor(&t).map_err(err)?;
        let tensor = var.as_tensor().clone();
        self.store().push(name, var, role);
        Ok(tensor)
    }

    fn lora_pair(&self, module: &str, out_dim: usize, in_dim: usize) -> Result<LoraPair> {
        let r = self.spec.lora.rank;
        let a = self.spec.lora.initial_a(in_dim, &mut self.rng.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        let a = self.maybe_var(&lora_key(module, "A"), &a, &[r, in_dim], ParamRole::LoraA(module.into()), true)?;
        let b = self.maybe_var(
            &lora_key(module, "B"),
            &vec![0.0; out_dim * r],
            &[out_dim, r],
            ParamRole::LoraB(module.into()),
            true,
        )?;
        Ok(LoraPair { a, b, scaling: self.spec.lora.scaling() as f64 })
    }
}

impl Ops for TrainOps {
    type Tensor = Tensor;
    type Linear = TrainLinear;

    fn name(&self) -> &'static str {
        "cpu-train"
    }

    fn tensor(&self, data: &[f32], shape: &[usize]) -> Result<Tensor> {
        self.constant(data, shape)
    }

    fn to_vec(&self, x: &Tensor) -> Result<Vec<f32>> {
        x.to_dtype(DType::F32).and_then(|x| x.flatten_all()).and_then(|x| x.to_vec1()).map_err(err)
    }

    fn shape(&self, x: &Tensor) -> Vec<usize> {
        x.dims().to_vec()
    }

    fn parameter(&self, name: &str, data: &[f32], shape: &[usize]) -> Result<Tensor> {
        self.maybe_var(name, data, shape, ParamRole::Base, self.spec.mode.trains_base(name))
    }

    fn linear_parameter(
        &self,
        name: &str,
        weight: &[f32],
        out_dim: usize,
        in_dim: usize,
        bias: Option<&[f32]>,
    ) -> Result<TrainLinear> {
        self.store().linear_modules.push(name.to_string());
        let weight_name = format!("{name}.weight");
        let trained = self.spec.mode.trains_base(&weight_name);
        let weight = match self.spec.mode {
            _ if trained => {
                BaseWeight::Trained(self.maybe_var(&weight_name, weight, &[out_dim, in_dim], ParamRole::Base, true)?)
            }
            FinetuneMode::Qlora { bits } if qualifies(in_dim, QLORA_GROUP_SIZE) => BaseWeight::Frozen(
                FrozenWeight::Quantized(Arc::new(quantize(weight, out_dim, in_dim, bits, QLORA_GROUP_SIZE)?)),
            ),
            _ => BaseWeight::Frozen(FrozenWeight::Dense(self.constant(weight, &[out_dim, in_dim])?)),
        };
        let bias = match bias {
            Some(b) => {
                let bias_name = format!("{name}.bias");
                let trained = self.spec.mode.trains_base(&bias_name);
                Some(self.maybe_var(&bias_name, b, &[out_dim], ParamRole::Base, trained)?)
            }
            None => None,
        };
        let lora = if self.spec.mode.uses_lora() && self.spec.lora.targets_module(name) {
            Some(self.lora_pair(name, out_dim, in_dim)?)
        } else {
            None
        };
        Ok(TrainLinear { weight, bias, lora })
    }

    fn linear_from_host(
        &self,
        weight: &[f32],
        out_dim: usize,
        in_dim: usize,
        bias: Option<&[f32]>,
    ) -> Result<TrainLinear> {
        Ok(TrainLinear {
            weight: BaseWeight::Frozen(FrozenWeight::Dense(self.constant(weight, &[out_dim, in_dim])?)),
            bias: bias.map(|b| self.constant(b, &[out_dim])).transpose()?,
            lora: None,
        })
    }

    fn linear_from_quantized(&self, weight: &QuantizedWeight, bias: Option<&[f32]>) -> Result<TrainLinear> {
        Ok(TrainLinear {
            weight: BaseWeight::Frozen(FrozenWeight::Quantized(Arc::new(weight.clone()))),
            bias: bias.map(|b| self.constant(b, &[weight.out_dim])).transpose()?,
            lora: None,
        })
    }

    fn linear_float_weights(&self, layer: &TrainLinear) -> Result<Option<(Vec<f32>, Option<Vec<f32>>)>> {
        let bias = layer.bias.as_ref().map(|b| self.to_vec(b)).transpose()?;
        match &layer.weight {
            BaseWeight::Trained(w) | BaseWeight::Frozen(FrozenWeight::Dense(w)) => Ok(Some((self.to_vec(w)?, bias))),
            BaseWeight::Frozen(FrozenWeight::Quantized(_)) => Ok(None),
        }
    }

    fn linear_footprint(&self, layer: &TrainLinear) -> LayerFootprint {
        let lora = layer.lora.as_ref().map_or(0, |l| l.a.elem_count() + l.b.elem_count());
        let float = lora + layer.bias.as_ref().map_or(0, Tensor::elem_count);
        match &layer.weight {
            BaseWeight::Trained(w) | BaseWeight::Frozen(FrozenWeight::Dense(w)) => {
                let (out_dim, in_dim) = w.dims2().unwrap_or((0, 0));
                let params = w.elem_count() + float;
                LayerFootprint { out_dim, in_dim, params, bytes: params * 4, quantized: false }
            }
            BaseWeight::Frozen(FrozenWeight::Quantized(q)) => LayerFootprint {
                out_dim: q.out_dim,
                in_dim: q.in_dim,
                params: q.out_dim * q.in_dim + float,
                bytes: 4 * (q.packed.len() + q.scales.len() + q.biases.len() + float),
                quantized: true,
            },
        }
    }

    fn tensor_bytes(&self, x: &Tensor) -> usize {
        x.elem_count() * x.dtype().size_in_bytes()
    }

    fn linear(&self, x: &Tensor, layer: &TrainLinear) -> Result<Tensor> {
        if x.rank() < 2 {
            let y = self.linear(&x.unsqueeze(0).map_err(err)?, layer)?;
            return y.squeeze(0).map_err(err);
        }
        // Products over the last dimension, batched over the others, without reshapes (candle's
        // backward of a reshape zeroes a buffer and adds the gradient into it).
        let mut y = match (&layer.weight, &layer.lora) {
            (BaseWeight::Trained(w), None) => matmul(x, &w.t().map_err(err)?).map_err(err)?,
            (BaseWeight::Frozen(f), None) => {
                let op = FrozenMatmul { weight: f.clone() };
                x.contiguous().and_then(|x| x.apply_op1(op)).map_err(err)?
            }
            (BaseWeight::Frozen(f), Some(l)) => {
                let op = LoraMatmul { base: f.clone(), scaling: l.scaling as f32 };
                x.contiguous().and_then(|x| x.apply_op3(&l.a, &l.b, op)).map_err(err)?
            }
            (BaseWeight::Trained(_), Some(_)) => {
                return Err(Error::InvalidInput("a LoRA adapter on a trained base weight".into()))
            }
        };
        if let Some(bias) = &layer.bias {
            y = y.broadcast_add(bias).map_err(err)?;
        }
        Ok(y)
    }

    fn rms_norm(&self, x: &Tensor, weight: &Tensor, eps: f32) -> Result<Tensor> {
        rms_norm(x, weight, eps).map_err(err)
    }

    crate::plain_ops::plain_candle_ops!();

    fn rope(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        rope(x, cos, sin).map_err(err)
    }

    fn dropout_active(&self) -> bool {
        self.dropout.active()
    }

    fn dropout(&self, x: &Tensor, rate: f32, site: DropoutSite) -> Result<Tensor> {
        super::dropout::dropout(&self.dropout, x, rate, site)
    }

    fn attention_with_dropout(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        key_mask: &Tensor,
        rate: f32,
        site: DropoutSite,
    ) -> Result<Tensor> {
        super::dropout::attention_with_dropout(&self.dropout, (q, k, v), key_mask, rate, site)
    }

    fn attention(&self, q: &Tensor, k: &Tensor, v: &Tensor, key_mask: &Tensor) -> Result<Tensor> {
        let run = || -> candle_core::Result<Tensor> {
            let scores = matmul(q, &k.t()?)?.broadcast_add(key_mask)?;
            matmul(&softmax_last_dim(&scores)?, v)
        };
        run().map_err(err)
    }
}

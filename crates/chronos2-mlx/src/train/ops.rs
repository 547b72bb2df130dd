//! [`Ops`] on MLX arrays for training: the inference operations of [`MlxOps`] on arrays whose
//! trainable parameters can be swapped for the arrays `value_and_grad` differentiates.
//!
//! MLX differentiates a function with respect to its *arguments*, so a trainable parameter is not
//! an array captured by the graph but a slot ([`MlxTrainTensor::Param`]) of the [`ParamStore`]:
//! every operation resolves it to the parameter's current value, or, while
//! [`MlxTrainOps::bind`] is in force, to the array `value_and_grad` passed in. Parameters are
//! created through [`Ops::parameter`] / [`Ops::linear_parameter`], which know their Hugging Face
//! names: those the fine-tuning mode trains become slots, the rest constant arrays. LoRA adapters
//! are attached to the targeted linears (the same build order and seed as the CPU backend, so the
//! same initialisation). In QLoRA mode the frozen base weight of a linear whose input width is a
//! multiple of 64 is quantized (MLX's affine group-64 scheme) and applied by MLX's
//! `quantized_matmul`, whose gradient with respect to its input flows (its weight takes none).
//!
//! Attention is written with plain differentiable ops (`softmax(q k^T + mask) v`) rather than the
//! fused kernel of inference, so its backward never depends on a fused kernel's VJP; RMS norm
//! (`fast::rms_norm`) and the rest are the inference operations, which MLX differentiates.

use std::sync::{Arc, Mutex, MutexGuard};

use chronos2_core::ops::{LayerFootprint, Ops};
use chronos2_core::quant::{qualifies, quantize, QuantizedWeight};
use chronos2_core::train::rng::Rng;
use chronos2_core::train::{lora_key, DropoutSite, FinetuneMode, TrainSpec, TrainingDropout, QLORA_GROUP_SIZE};
use chronos2_core::{Error, Result};
use mlx_rs::ops::{add, matmul, multiply, softmax_axis, transpose};
use mlx_rs::Array;

use super::params::ParamStore;
use crate::ops::err;
use crate::{LinearWeight, MlxLinear, MlxOps, MlxTensor};

/// An array of the training graph.
#[derive(Debug, Clone)]
pub enum MlxTrainTensor {
    /// An input, a frozen parameter or an intermediate result.
    Array(MlxTensor),
    /// Trainable parameter `i` of the [`ParamStore`].
    Param(usize),
}

/// A LoRA adapter `B A` scaled by `alpha / r`.
#[derive(Debug)]
struct LoraPair {
    a: MlxTrainTensor,
    b: MlxTrainTensor,
    scaling: f32,
}

/// The base weight of a training linear.
#[derive(Debug)]
enum BaseWeight {
    /// `(out, in)`, trainable or frozen.
    Float(MlxTrainTensor),
    /// A frozen weight in an inference format (the quantized base of QLoRA).
    Frozen(LinearWeight),
}

/// A linear layer for training: base weight, optional bias, optional LoRA adapter.
#[derive(Debug)]
pub struct MlxTrainLinear {
    weight: BaseWeight,
    bias: Option<MlxTrainTensor>,
    lora: Option<LoraPair>,
    in_dim: usize,
    out_dim: usize,
}

/// Training implementation of the graph's operations on MLX.
#[derive(Clone)]
pub struct MlxTrainOps {
    inner: MlxOps,
    spec: Arc<TrainSpec>,
    store: Arc<Mutex<ParamStore>>,
    rng: Arc<Mutex<Rng>>,
    dropout: TrainingDropout,
}

/// While alive, the graph uses the bound arrays in place of the parameters' values
/// ([`MlxTrainOps::bind`]).
pub(crate) struct Binding<'a> {
    ops: &'a MlxTrainOps,
}

impl Drop for Binding<'_> {
    fn drop(&mut self) {
        self.ops.store().bound = None;
    }
}

impl MlxTrainOps {
    pub fn new(spec: TrainSpec) -> Self {
        let seed = spec.seed;
        MlxTrainOps {
            inner: MlxOps::new(),
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

    pub(crate) fn store(&self) -> MutexGuard<'_, ParamStore> {
        // Every critical section leaves the store consistent; a panic elsewhere does not poison it.
        self.store.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes the graph use `arrays` (one per parameter, in order) as the parameters until the
    /// returned guard drops: `value_and_grad` differentiates with respect to them.
    pub(crate) fn bind(&self, arrays: &[Array]) -> Result<Binding<'_>> {
        let mut store = self.store();
        if arrays.len() != store.params.len() {
            return Err(Error::Backend(format!("bind: {} arrays for {} parameters", arrays.len(), store.params.len())));
        }
        store.bound = Some(arrays.iter().cloned().map(MlxTensor::from).collect());
        Ok(Binding { ops: self })
    }

    /// The array `x` stands for now.
    pub(crate) fn array_of(&self, x: &MlxTrainTensor) -> MlxTensor {
        self.get(x)
    }

    fn get(&self, x: &MlxTrainTensor) -> MlxTensor {
        match x {
            MlxTrainTensor::Array(a) => a.clone(),
            MlxTrainTensor::Param(i) => self.store().get(*i),
        }
    }

    fn constant(&self, data: &[f32], shape: &[usize]) -> Result<MlxTensor> {
        self.inner.tensor(data, shape)
    }

    /// A trainable slot registered under `name`, or a constant array.
    fn maybe_param(&self, name: &str, data: &[f32], shape: &[usize], trained: bool) -> Result<MlxTrainTensor> {
        let value = self.constant(data, shape)?;
        if !trained {
            return Ok(MlxTrainTensor::Array(value));
        }
        Ok(MlxTrainTensor::Param(self.store().push(name, shape, value)))
    }

    fn lora_pair(&self, module: &str, out_dim: usize, in_dim: usize) -> Result<LoraPair> {
        let r = self.spec.lora.rank;
        let a = self.spec.lora.initial_a(in_dim, &mut self.rng.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        let a = self.maybe_param(&lora_key(module, "A"), &a, &[r, in_dim], true)?;
        let b = self.maybe_param(&lora_key(module, "B"), &vec![0.0; out_dim * r], &[out_dim, r], true)?;
        Ok(LoraPair { a, b, scaling: self.spec.lora.scaling() })
    }

    /// The layer with its parameters resolved, as the inference ops apply it.
    fn resolve(&self, layer: &MlxTrainLinear) -> MlxLinear {
        let weight = match &layer.weight {
            BaseWeight::Float(w) => LinearWeight::Float(self.get(w)),
            BaseWeight::Frozen(w) => w.clone(),
        };
        let bias = layer.bias.as_ref().map(|b| self.get(b));
        MlxLinear { weight, bias, in_dim: layer.in_dim, out_dim: layer.out_dim }
    }

    fn unary(
        &self,
        x: &MlxTrainTensor,
        f: impl FnOnce(&MlxOps, &MlxTensor) -> Result<MlxTensor>,
    ) -> Result<MlxTrainTensor> {
        f(&self.inner, &self.get(x)).map(MlxTrainTensor::Array)
    }
}

fn frozen(layer: MlxLinear) -> MlxTrainLinear {
    let weight = match layer.weight {
        LinearWeight::Float(w) => BaseWeight::Float(MlxTrainTensor::Array(w)),
        other => BaseWeight::Frozen(other),
    };
    MlxTrainLinear {
        weight,
        bias: layer.bias.map(MlxTrainTensor::Array),
        lora: None,
        in_dim: layer.in_dim,
        out_dim: layer.out_dim,
    }
}

impl Ops for MlxTrainOps {
    type Tensor = MlxTrainTensor;
    type Linear = MlxTrainLinear;

    fn name(&self) -> &'static str {
        "mlx-train"
    }

    fn tensor(&self, data: &[f32], shape: &[usize]) -> Result<MlxTrainTensor> {
        self.constant(data, shape).map(MlxTrainTensor::Array)
    }

    fn to_vec(&self, x: &MlxTrainTensor) -> Result<Vec<f32>> {
        self.inner.to_vec(&self.get(x))
    }

    fn shape(&self, x: &MlxTrainTensor) -> Vec<usize> {
        self.inner.shape(&self.get(x))
    }

    fn parameter(&self, name: &str, data: &[f32], shape: &[usize]) -> Result<MlxTrainTensor> {
        self.maybe_param(name, data, shape, self.spec.mode.trains_base(name))
    }

    fn linear_parameter(
        &self,
        name: &str,
        weight: &[f32],
        out_dim: usize,
        in_dim: usize,
        bias: Option<&[f32]>,
    ) -> Result<MlxTrainLinear> {
        self.store().linear_modules.push(name.to_string());
        let weight_name = format!("{name}.weight");
        let mut layer = match self.spec.mode {
            FinetuneMode::Qlora { bits } if qualifies(in_dim, QLORA_GROUP_SIZE) => {
                let q = quantize(weight, out_dim, in_dim, bits, QLORA_GROUP_SIZE)?;
                self.linear_from_quantized(&q, bias)?
            }
            mode => {
                let trained = mode.trains_base(&weight_name);
                let weight = self.maybe_param(&weight_name, weight, &[out_dim, in_dim], trained)?;
                let bias = match bias {
                    Some(b) => {
                        let bias_name = format!("{name}.bias");
                        Some(self.maybe_param(&bias_name, b, &[out_dim], mode.trains_base(&bias_name))?)
                    }
                    None => None,
                };
                MlxTrainLinear { weight: BaseWeight::Float(weight), bias, lora: None, in_dim, out_dim }
            }
        };
        if self.spec.mode.uses_lora() && self.spec.lora.targets_module(name) {
            layer.lora = Some(self.lora_pair(name, out_dim, in_dim)?);
        }
        Ok(layer)
    }

    fn linear_from_host(
        &self,
        weight: &[f32],
        out_dim: usize,
        in_dim: usize,
        bias: Option<&[f32]>,
    ) -> Result<MlxTrainLinear> {
        self.inner.linear_from_host(weight, out_dim, in_dim, bias).map(frozen)
    }

    fn linear_from_quantized(&self, weight: &QuantizedWeight, bias: Option<&[f32]>) -> Result<MlxTrainLinear> {
        self.inner.linear_from_quantized(weight, bias).map(frozen)
    }

    fn linear_float_weights(&self, layer: &MlxTrainLinear) -> Result<Option<(Vec<f32>, Option<Vec<f32>>)>> {
        self.inner.linear_float_weights(&self.resolve(layer))
    }

    fn linear_footprint(&self, layer: &MlxTrainLinear) -> LayerFootprint {
        let mut f = self.inner.linear_footprint(&self.resolve(layer));
        if let Some(l) = &layer.lora {
            let (a, b) = (self.get(&l.a), self.get(&l.b));
            f.params += a.array().size() + b.array().size();
            f.bytes += self.inner.tensor_bytes(&a) + self.inner.tensor_bytes(&b);
        }
        f
    }

    fn tensor_bytes(&self, x: &MlxTrainTensor) -> usize {
        self.inner.tensor_bytes(&self.get(x))
    }

    fn linear(&self, x: &MlxTrainTensor, layer: &MlxTrainLinear) -> Result<MlxTrainTensor> {
        let x = self.get(x);
        let y = self.inner.linear(&x, &self.resolve(layer))?;
        let Some(l) = &layer.lora else { return Ok(MlxTrainTensor::Array(y)) };
        let (a, b) = (self.get(&l.a), self.get(&l.b));
        let delta = || -> std::result::Result<Array, mlx_rs::error::Exception> {
            let low = matmul(x.array(), transpose(a.array())?)?;
            let delta = matmul(&low, transpose(b.array())?)?;
            add(y.array(), multiply(&delta, Array::from_f32(l.scaling))?)
        };
        delta().map(|d| MlxTrainTensor::Array(d.into())).map_err(err)
    }

    fn rms_norm(&self, x: &MlxTrainTensor, weight: &MlxTrainTensor, eps: f32) -> Result<MlxTrainTensor> {
        let weight = self.get(weight);
        self.unary(x, |o, x| o.rms_norm(x, &weight, eps))
    }

    fn relu(&self, x: &MlxTrainTensor) -> Result<MlxTrainTensor> {
        self.unary(x, |o, x| o.relu(x))
    }

    fn add(&self, a: &MlxTrainTensor, b: &MlxTrainTensor) -> Result<MlxTrainTensor> {
        let b = self.get(b);
        self.unary(a, |o, a| o.add(a, &b))
    }

    fn mean_keepdim(&self, x: &MlxTrainTensor, axis: usize) -> Result<MlxTrainTensor> {
        self.unary(x, |o, x| o.mean_keepdim(x, axis))
    }

    fn select(&self, keep: &MlxTrainTensor, a: &MlxTrainTensor, b: &MlxTrainTensor) -> Result<MlxTrainTensor> {
        let (a, b) = (self.get(a), self.get(b));
        self.unary(keep, |o, keep| o.select(keep, &a, &b))
    }

    fn reshape(&self, x: &MlxTrainTensor, shape: &[usize]) -> Result<MlxTrainTensor> {
        self.unary(x, |o, x| o.reshape(x, shape))
    }

    fn permute(&self, x: &MlxTrainTensor, axes: &[usize]) -> Result<MlxTrainTensor> {
        self.unary(x, |o, x| o.permute(x, axes))
    }

    fn narrow(&self, x: &MlxTrainTensor, axis: usize, start: usize, len: usize) -> Result<MlxTrainTensor> {
        self.unary(x, |o, x| o.narrow(x, axis, start, len))
    }

    fn concat(&self, xs: &[MlxTrainTensor], axis: usize) -> Result<MlxTrainTensor> {
        let arrays: Vec<MlxTensor> = xs.iter().map(|x| self.get(x)).collect();
        self.inner.concat(&arrays, axis).map(MlxTrainTensor::Array)
    }

    fn take_rows(&self, x: &MlxTrainTensor, indices: &[usize]) -> Result<MlxTrainTensor> {
        self.unary(x, |o, x| o.take_rows(x, indices))
    }

    fn broadcast_to(&self, x: &MlxTrainTensor, shape: &[usize]) -> Result<MlxTrainTensor> {
        self.unary(x, |o, x| o.broadcast_to(x, shape))
    }

    fn rope(&self, x: &MlxTrainTensor, cos: &MlxTrainTensor, sin: &MlxTrainTensor) -> Result<MlxTrainTensor> {
        let (cos, sin) = (self.get(cos), self.get(sin));
        self.unary(x, |o, x| o.rope(x, &cos, &sin))
    }

    /// `softmax(q k^T + mask) v` (scale 1.0) in plain differentiable ops; the mask is 0 or
    /// `f32::MIN` (a fully masked row softmaxes to uniform weights, as in the reference).
    fn dropout_active(&self) -> bool {
        self.dropout.active()
    }

    fn dropout(&self, x: &MlxTrainTensor, rate: f32, site: DropoutSite) -> Result<MlxTrainTensor> {
        let x = self.get(x);
        super::dropout::dropout(&self.dropout, x.array(), rate, site).map(|a| MlxTrainTensor::Array(a.into()))
    }

    fn attention_with_dropout(
        &self,
        q: &MlxTrainTensor,
        k: &MlxTrainTensor,
        v: &MlxTrainTensor,
        key_mask: &MlxTrainTensor,
        rate: f32,
        site: DropoutSite,
    ) -> Result<MlxTrainTensor> {
        let (q, k, v, mask) = (self.get(q), self.get(k), self.get(v), self.get(key_mask));
        super::dropout::attention_with_dropout(
            &self.dropout,
            (q.array(), k.array(), v.array()),
            mask.array(),
            rate,
            site,
        )
        .map(|a| MlxTrainTensor::Array(a.into()))
    }

    fn attention(
        &self,
        q: &MlxTrainTensor,
        k: &MlxTrainTensor,
        v: &MlxTrainTensor,
        key_mask: &MlxTrainTensor,
    ) -> Result<MlxTrainTensor> {
        let (q, k, v, mask) = (self.get(q), self.get(k), self.get(v), self.get(key_mask));
        let run = || -> std::result::Result<Array, mlx_rs::error::Exception> {
            let kt = k.array().swap_axes(-1, -2)?;
            let scores = add(matmul(q.array(), &kt)?, mask.array())?;
            matmul(softmax_axis(&scores, -1, true)?, v.array())
        };
        run().map(|a| MlxTrainTensor::Array(a.into())).map_err(err)
    }
}

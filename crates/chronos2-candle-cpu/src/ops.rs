//! [`Ops`] on candle CPU tensors.

use candle_core::{DType, Device, Tensor};
use chronos2_core::ops::{LayerFootprint, Ops};
use chronos2_core::quant::QuantizedWeight;
use chronos2_core::{Error, Result};

use crate::quant::QuantizedLinear;
use crate::small_matmul;

#[cfg(all(feature = "accelerate", target_os = "macos"))]
extern crate accelerate_src;

fn err(e: candle_core::Error) -> Error {
    Error::backend(e)
}

/// candle CPU implementation of the model-graph operations.
#[derive(Debug, Clone)]
pub struct CandleCpuOps {
    device: Device,
}

impl CandleCpuOps {
    pub fn new() -> Self {
        CandleCpuOps { device: Device::Cpu }
    }
}

impl CandleCpuOps {
    /// `x (rows, in) · weight (out, in)^T` for few rows, streaming the weight once.
    fn linear_few_rows(
        &self,
        x: &Tensor,
        weight: &Tensor,
        rows: usize,
        out_dim: usize,
        in_dim: usize,
    ) -> Result<Tensor> {
        let x = x.flatten_all().and_then(|x| x.to_vec1::<f32>()).map_err(err)?;
        let (storage, layout) = weight.storage_and_layout();
        let candle_core::Storage::Cpu(cpu) = &*storage else {
            return Err(Error::Backend("weight is not in CPU memory".into()));
        };
        let data = cpu.as_slice::<f32>().map_err(err)?;
        let Some((start, end)) = layout.contiguous_offsets() else {
            return Err(Error::Backend("weight is not contiguous".into()));
        };
        let y = small_matmul::matmul_small(&x, rows, &data[start..end], out_dim, in_dim);
        Tensor::from_vec(y, (rows, out_dim), &self.device).map_err(err)
    }
}

impl Default for CandleCpuOps {
    fn default() -> Self {
        Self::new()
    }
}

/// A linear layer: a float weight `(out, in)` as stored by PyTorch with an optional bias, or
/// an MLX-style affine quantized weight run by the fused int8/int4 kernel.
pub enum CandleLinear {
    Float { weight: Tensor, bias: Option<Tensor> },
    Quantized(QuantizedLinear),
}

impl Ops for CandleCpuOps {
    type Tensor = Tensor;
    type Linear = CandleLinear;

    fn name(&self) -> &'static str {
        "cpu"
    }

    fn tensor(&self, data: &[f32], shape: &[usize]) -> Result<Tensor> {
        Tensor::from_slice(data, shape, &self.device).map_err(err)
    }

    fn to_vec(&self, x: &Tensor) -> Result<Vec<f32>> {
        x.to_dtype(DType::F32).and_then(|x| x.flatten_all()).and_then(|x| x.to_vec1()).map_err(err)
    }

    fn shape(&self, x: &Tensor) -> Vec<usize> {
        x.dims().to_vec()
    }

    fn linear_from_host(
        &self,
        weight: &[f32],
        out_dim: usize,
        in_dim: usize,
        bias: Option<&[f32]>,
    ) -> Result<CandleLinear> {
        Ok(CandleLinear::Float {
            weight: self.tensor(weight, &[out_dim, in_dim])?,
            bias: bias.map(|b| self.tensor(b, &[out_dim])).transpose()?,
        })
    }

    fn linear_from_quantized(&self, weight: &QuantizedWeight, bias: Option<&[f32]>) -> Result<CandleLinear> {
        QuantizedLinear::new(weight.clone(), bias.map(<[f32]>::to_vec)).map(CandleLinear::Quantized).map_err(err)
    }

    fn linear_float_weights(&self, layer: &CandleLinear) -> Result<Option<(Vec<f32>, Option<Vec<f32>>)>> {
        match layer {
            CandleLinear::Float { weight, bias } => {
                Ok(Some((self.to_vec(weight)?, bias.as_ref().map(|b| self.to_vec(b)).transpose()?)))
            }
            CandleLinear::Quantized(_) => Ok(None),
        }
    }

    fn linear_footprint(&self, layer: &CandleLinear) -> LayerFootprint {
        match layer {
            CandleLinear::Float { weight, bias } => {
                let params = weight.elem_count() + bias.as_ref().map_or(0, Tensor::elem_count);
                let bytes = self.tensor_bytes(weight) + bias.as_ref().map_or(0, |b| self.tensor_bytes(b));
                let (out_dim, in_dim) = weight.dims2().unwrap_or((0, 0));
                LayerFootprint { out_dim, in_dim, params, bytes, quantized: false }
            }
            CandleLinear::Quantized(q) => LayerFootprint {
                out_dim: q.out_dim(),
                in_dim: q.in_dim(),
                params: q.in_dim() * q.out_dim() + q.bias().map_or(0, <[f32]>::len),
                bytes: q.footprint_bytes(),
                quantized: true,
            },
        }
    }

    fn tensor_bytes(&self, x: &Tensor) -> usize {
        x.elem_count() * x.dtype().size_in_bytes()
    }

    fn linear(&self, x: &Tensor, layer: &CandleLinear) -> Result<Tensor> {
        let (weight, bias) = match layer {
            CandleLinear::Float { weight, bias } => (weight, bias),
            CandleLinear::Quantized(q) => return q.forward(x).map_err(err),
        };
        let dims = x.dims();
        let in_dim = dims[dims.len() - 1];
        let rows = x.elem_count() / in_dim;
        let out_dim = weight.dim(0).map_err(err)?;
        let x2 = x.reshape((rows, in_dim)).map_err(err)?;
        let mut y = if rows <= small_matmul::MAX_ROWS && x2.dtype() == DType::F32 {
            self.linear_few_rows(&x2, weight, rows, out_dim, in_dim)?
        } else {
            x2.matmul(&weight.t().map_err(err)?).map_err(err)?
        };
        if let Some(bias) = bias {
            y = y.broadcast_add(bias).map_err(err)?;
        }
        let mut out_dims = dims.to_vec();
        *out_dims.last_mut().expect("non-empty shape") = out_dim;
        y.reshape(out_dims).map_err(err)
    }

    fn rms_norm(&self, x: &Tensor, weight: &Tensor, eps: f32) -> Result<Tensor> {
        candle_nn::ops::rms_norm(&x.contiguous().map_err(err)?, weight, eps).map_err(err)
    }

    fn relu(&self, x: &Tensor) -> Result<Tensor> {
        x.relu().map_err(err)
    }

    fn add(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        a.add(b).map_err(err)
    }

    fn mean_keepdim(&self, x: &Tensor, axis: usize) -> Result<Tensor> {
        x.mean_keepdim(axis).map_err(err)
    }

    fn select(&self, keep: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let keep = keep.ge(0.5f64).and_then(|k| k.broadcast_as(a.shape())).map_err(err)?;
        keep.where_cond(a, b).map_err(err)
    }

    fn reshape(&self, x: &Tensor, shape: &[usize]) -> Result<Tensor> {
        x.reshape(shape).map_err(err)
    }

    fn permute(&self, x: &Tensor, axes: &[usize]) -> Result<Tensor> {
        x.permute(axes).map_err(err)
    }

    fn narrow(&self, x: &Tensor, axis: usize, start: usize, len: usize) -> Result<Tensor> {
        x.narrow(axis, start, len).map_err(err)
    }

    fn concat(&self, xs: &[Tensor], axis: usize) -> Result<Tensor> {
        Tensor::cat(xs, axis).map_err(err)
    }

    fn take_rows(&self, x: &Tensor, indices: &[usize]) -> Result<Tensor> {
        let ids: Vec<u32> = indices.iter().map(|&i| i as u32).collect();
        let ids = Tensor::from_vec(ids, indices.len(), &self.device).map_err(err)?;
        x.index_select(&ids, 0).map_err(err)
    }

    fn broadcast_to(&self, x: &Tensor, shape: &[usize]) -> Result<Tensor> {
        x.broadcast_as(shape).map_err(err)
    }

    fn rope(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        candle_nn::rotary_emb::rope(&x.contiguous().map_err(err)?, cos, sin).map_err(err)
    }

    fn attention(&self, q: &Tensor, k: &Tensor, v: &Tensor, key_mask: &Tensor) -> Result<Tensor> {
        let scores =
            q.contiguous().and_then(|q| q.matmul(&k.t()?)).and_then(|s| s.broadcast_add(key_mask)).map_err(err)?;
        let weights = candle_nn::ops::softmax_last_dim(&scores).map_err(err)?;
        weights.matmul(&v.contiguous().map_err(err)?).map_err(err)
    }
}

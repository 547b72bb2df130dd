//! [`Ops`] on candle CPU tensors.

use std::mem::MaybeUninit;

use candle_core::{DType, Device, Tensor};
use chronos2_core::ops::{LayerFootprint, Ops};
use chronos2_core::quant::QuantizedWeight;
use chronos2_core::{Error, Precision, Result};
use rayon::prelude::*;

#[cfg(all(feature = "accelerate", target_os = "macos"))]
use crate::accelerate::AccelerateMatmul as FloatMatmul;
#[cfg(not(all(feature = "accelerate", target_os = "macos")))]
use crate::attention::{self, AttentionShape};
use crate::gemm::Bf16Matmul;
#[cfg(not(all(feature = "accelerate", target_os = "macos")))]
use crate::gemm::PackedMatmul as FloatMatmul;
#[cfg(not(all(feature = "accelerate", target_os = "macos")))]
use crate::isa::Isa;
use crate::quant::QuantizedLinear;
use crate::w8a8::W8a8Matmul;

#[cfg(all(feature = "accelerate", target_os = "macos"))]
extern crate accelerate_src;

fn err(e: candle_core::Error) -> Error {
    Error::backend(e)
}

/// The footprint of a linear layer whose weight is one `(out_dim, in_dim)` matrix of
/// `weight_bytes`, plus an fp32 bias.
fn dense_footprint(
    out_dim: usize,
    in_dim: usize,
    weight_bytes: usize,
    bias: &Option<Vec<f32>>,
    quantized: bool,
) -> LayerFootprint {
    let bias_len = bias.as_ref().map_or(0, Vec::len);
    LayerFootprint {
        out_dim,
        in_dim,
        params: out_dim * in_dim + bias_len,
        bytes: weight_bytes + 4 * bias_len,
        quantized,
    }
}

/// candle CPU implementation of the model-graph operations.
#[derive(Debug, Clone)]
pub struct CandleCpuOps {
    device: Device,
    /// Float linear layers are built in bf16 ([`CandleCpuOps::building_bf16`]).
    bf16_linears: bool,
}

impl CandleCpuOps {
    pub fn new() -> Self {
        CandleCpuOps { device: Device::Cpu, bf16_linears: false }
    }

    /// Ops whose float linear layers ([`Ops::linear_from_host`]) are built in bf16 directly, so
    /// that a model loaded with them never holds its fp32 weights (one tensor at a time).
    pub fn building_bf16() -> Self {
        CandleCpuOps { device: Device::Cpu, bf16_linears: true }
    }
}

impl Default for CandleCpuOps {
    fn default() -> Self {
        Self::new()
    }
}

/// A linear layer: a float weight packed once for the GEMM kernel (on macOS with Accelerate: held
/// for Accelerate's `sgemm`) with an optional bias, a bf16 weight, or an MLX-style affine
/// quantized weight run by the fused int8/int4 kernel.
pub enum CandleLinear {
    Float {
        matmul: FloatMatmul,
        bias: Option<Vec<f32>>,
    },
    /// Weight stored in bf16, computed in fp32.
    Bf16 {
        matmul: Bf16Matmul,
        bias: Option<Vec<f32>>,
    },
    Quantized(QuantizedLinear),
    /// int8 weights (MLX group-64) times activations quantized per token and group of 64.
    W8a8 {
        matmul: W8a8Matmul,
        bias: Option<Vec<f32>>,
    },
}

#[cfg(all(feature = "accelerate", target_os = "macos"))]
fn float_weights(matmul: &FloatMatmul) -> Result<Vec<f32>> {
    matmul.unpack().map_err(err)
}

#[cfg(not(all(feature = "accelerate", target_os = "macos")))]
fn float_weights(matmul: &FloatMatmul) -> Result<Vec<f32>> {
    Ok(matmul.unpack())
}

/// Runs `f` on the row-major f32 data of `x` (made contiguous and f32 first if needed).
fn with_f32<R>(x: &Tensor, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let x = if x.dtype() == DType::F32 { crate::layout::contiguous(x) } else { x.to_dtype(DType::F32) }.map_err(err)?;
    let (storage, layout) = x.storage_and_layout();
    let candle_core::Storage::Cpu(cpu) = &*storage else {
        return Err(Error::Backend("tensor is not in CPU memory".into()));
    };
    let data = cpu.as_slice::<f32>().map_err(err)?;
    let Some((start, end)) = layout.contiguous_offsets() else {
        return Err(Error::Backend("tensor is not contiguous".into()));
    };
    f(&data[start..end])
}

/// Element-wise ops run here rather than in candle: candle runs large ones on its own thread
/// pool, whose workers spin after each op and take the cores from the GEMM's rayon threads.
/// Chunks of this many values go to the rayon threads (large inputs only).
const ELEMENTWISE_CHUNK: usize = 1 << 14;

/// A vector of `len` values written by `fill(chunk, offset of the chunk)` (which writes every
/// value of its chunk), in parallel chunks for large `len`; never zeroed first.
fn map_rows(len: usize, fill: impl Fn(&mut [MaybeUninit<f32>], usize) + Sync) -> Vec<f32> {
    crate::gemm::filled_vec(len, |out| {
        if len >= 4 * ELEMENTWISE_CHUNK {
            out.par_chunks_mut(ELEMENTWISE_CHUNK).enumerate().for_each(|(c, o)| fill(o, c * ELEMENTWISE_CHUNK));
        } else {
            fill(out, 0);
        }
    })
}

fn relu_into(out: &mut [MaybeUninit<f32>], x: &[f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        o.write(v.max(0.0));
    }
}

fn add_into(out: &mut [MaybeUninit<f32>], a: &[f32], b: &[f32]) {
    for ((o, &u), &v) in out.iter_mut().zip(a).zip(b) {
        o.write(u + v);
    }
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
        if let Some(b) = bias {
            if b.len() != out_dim {
                return Err(Error::InvalidInput(format!("linear bias has {} values, expected {out_dim}", b.len())));
            }
        }
        if self.bf16_linears {
            return self.linear_in_precision(weight, out_dim, in_dim, bias, Precision::Bf16);
        }
        Ok(CandleLinear::Float {
            matmul: FloatMatmul::new(weight, out_dim, in_dim).map_err(err)?,
            bias: bias.map(<[f32]>::to_vec),
        })
    }

    fn linear_from_quantized(&self, weight: &QuantizedWeight, bias: Option<&[f32]>) -> Result<CandleLinear> {
        QuantizedLinear::new(weight.clone(), bias.map(<[f32]>::to_vec)).map(CandleLinear::Quantized).map_err(err)
    }

    /// Every precision; w8a8 runs on AVX512-VNNI where the CPU has it, else on a portable kernel
    /// with the same numbers.
    fn supports_precision(&self, _precision: Precision) -> bool {
        true
    }

    fn linear_in_precision(
        &self,
        weight: &[f32],
        out_dim: usize,
        in_dim: usize,
        bias: Option<&[f32]>,
        precision: Precision,
    ) -> Result<CandleLinear> {
        if bias.is_some_and(|b| b.len() != out_dim) {
            return Err(Error::InvalidInput(format!("linear bias does not have {out_dim} values")));
        }
        let bias = bias.map(<[f32]>::to_vec);
        match precision {
            Precision::Bf16 => {
                Ok(CandleLinear::Bf16 { matmul: Bf16Matmul::new(weight, out_dim, in_dim).map_err(err)?, bias })
            }
            Precision::W8a8 => {
                let q = chronos2_core::quant::quantize(weight, out_dim, in_dim, 8, crate::w8a8::GROUP)?;
                Ok(CandleLinear::W8a8 { matmul: W8a8Matmul::new(&q).map_err(err)?, bias })
            }
            Precision::Fp32 | Precision::Int8 | Precision::Int4 => {
                Err(Error::InvalidInput(format!("linear_in_precision builds bf16 and w8a8 layers, not {precision}")))
            }
        }
    }

    fn linear_float_weights(&self, layer: &CandleLinear) -> Result<Option<(Vec<f32>, Option<Vec<f32>>)>> {
        match layer {
            CandleLinear::Float { matmul, bias } => Ok(Some((float_weights(matmul)?, bias.clone()))),
            CandleLinear::Bf16 { .. } | CandleLinear::Quantized(_) | CandleLinear::W8a8 { .. } => Ok(None),
        }
    }

    fn linear_footprint(&self, layer: &CandleLinear) -> LayerFootprint {
        match layer {
            CandleLinear::Float { matmul, bias } => {
                dense_footprint(matmul.out_dim(), matmul.in_dim(), matmul.footprint_bytes(), bias, false)
            }
            CandleLinear::Bf16 { matmul, bias } => {
                dense_footprint(matmul.out_dim(), matmul.in_dim(), matmul.footprint_bytes(), bias, false)
            }
            CandleLinear::W8a8 { matmul, bias } => {
                dense_footprint(matmul.out_dim(), matmul.in_dim(), matmul.footprint_bytes(), bias, true)
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
        let (in_dim, out_dim) = match layer {
            CandleLinear::Float { matmul, .. } => (matmul.in_dim(), matmul.out_dim()),
            CandleLinear::Bf16 { matmul, .. } => (matmul.in_dim(), matmul.out_dim()),
            CandleLinear::Quantized(q) => (q.in_dim(), q.out_dim()),
            CandleLinear::W8a8 { matmul, .. } => (matmul.in_dim(), matmul.out_dim()),
        };
        let dims = x.dims();
        if dims.last() != Some(&in_dim) {
            return Err(Error::InvalidInput(format!("linear: input shape {dims:?}, expected last axis {in_dim}")));
        }
        let rows = x.elem_count() / in_dim;
        let y = with_f32(x, |xs| {
            crate::gemm::output_vec(rows * out_dim, |y| match layer {
                CandleLinear::Float { matmul, bias } => matmul.matmul_uninit(xs, rows, bias.as_deref(), y),
                CandleLinear::Bf16 { matmul, bias } => matmul.matmul_uninit(xs, rows, bias.as_deref(), y),
                CandleLinear::Quantized(q) => q.matmul().matmul_uninit(xs, rows, q.bias(), y),
                CandleLinear::W8a8 { matmul, bias } => matmul.matmul_uninit(xs, rows, bias.as_deref(), y),
            })
            .map_err(err)
        })?;
        let mut out_dims = dims.to_vec();
        *out_dims.last_mut().expect("non-empty shape") = out_dim;
        Tensor::from_vec(y, out_dims, &self.device).map_err(err)
    }

    fn rms_norm(&self, x: &Tensor, weight: &Tensor, eps: f32) -> Result<Tensor> {
        let d = weight.elem_count();
        let plain = weight.rank() == 1 && x.dims().last() == Some(&d) && d > 0;
        if !plain || x.dtype() != DType::F32 || weight.dtype() != DType::F32 {
            return candle_nn::ops::rms_norm(&x.contiguous().map_err(err)?, weight, eps).map_err(err);
        }
        let out = with_f32(x, |xs| with_f32(weight, |w| Ok(crate::norm::rms_norm(xs, w, eps))))?;
        Tensor::from_vec(out, x.dims(), &self.device).map_err(err)
    }

    crate::plain_ops::plain_candle_ops!(without_elementwise);

    fn reshape(&self, x: &Tensor, shape: &[usize]) -> Result<Tensor> {
        crate::layout::contiguous(x).and_then(|x| x.reshape(shape)).map_err(err)
    }

    fn relu(&self, x: &Tensor) -> Result<Tensor> {
        if x.dtype() != DType::F32 || !x.is_contiguous() {
            return x.relu().map_err(err);
        }
        let out = with_f32(x, |xs| Ok(map_rows(xs.len(), |o, at| relu_into(o, &xs[at..]))))?;
        Tensor::from_vec(out, x.dims(), &self.device).map_err(err)
    }

    fn add(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let plain = |t: &Tensor| t.dtype() == DType::F32 && t.is_contiguous();
        if a.dims() != b.dims() || !plain(a) || !plain(b) {
            return a.broadcast_add(b).map_err(err);
        }
        let out =
            with_f32(a, |xa| with_f32(b, |xb| Ok(map_rows(xa.len(), |o, at| add_into(o, &xa[at..], &xb[at..])))))?;
        Tensor::from_vec(out, a.dims(), &self.device).map_err(err)
    }

    fn rope(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        crate::layout::rope(x, cos, sin).map_err(err)
    }

    #[cfg(all(feature = "accelerate", target_os = "macos"))]
    fn attention(&self, q: &Tensor, k: &Tensor, v: &Tensor, key_mask: &Tensor) -> Result<Tensor> {
        crate::accelerate::attention(q, k, v, key_mask).map_err(err)
    }

    #[cfg(not(all(feature = "accelerate", target_os = "macos")))]
    fn attention(&self, q: &Tensor, k: &Tensor, v: &Tensor, key_mask: &Tensor) -> Result<Tensor> {
        let (batch, heads, q_len, d) = q.dims4().map_err(err)?;
        let k_len = k.dim(2).map_err(err)?;
        let shape = AttentionShape { batch, heads, q_len, k_len, d };
        if k.dims() != [batch, heads, k_len, d] || v.dims() != k.dims() || key_mask.elem_count() != batch * k_len {
            return Err(Error::InvalidInput(format!(
                "attention: q {:?}, k {:?}, v {:?}, mask {:?} do not fit together",
                q.dims(),
                k.dims(),
                v.dims(),
                key_mask.dims()
            )));
        }
        let out = with_f32(q, |q| {
            with_f32(k, |k| {
                with_f32(v, |v| {
                    with_f32(key_mask, |mask| attention::attention(q, k, v, mask, shape, Isa::detect()).map_err(err))
                })
            })
        })?;
        Tensor::from_vec(out, (batch, heads, q_len, d), &self.device).map_err(err)
    }
}

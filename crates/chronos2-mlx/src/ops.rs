//! [`Ops`] on MLX arrays.
//!
//! Every operation only records a node of MLX's lazy graph; nothing is evaluated until
//! [`Ops::to_vec`]. Fused kernels: `fast::scaled_dot_product_attention` (scale 1.0, additive
//! mask) and `fast::rms_norm`. RoPE is applied from the `cos`/`sin` tables the graph passes, in
//! the rotate-half form, so it matches the reference bit for bit in its inputs (see
//! [`MlxOps::rope`](Ops::rope)).

use std::fmt;

use chronos2_core::ops::{LayerFootprint, Ops};
use chronos2_core::quant::QuantizedWeight;
use chronos2_core::{Error, Precision, Result};
use mlx_rs::fast::{self, ScaledDotProductAttentionMask};
use mlx_rs::ops::indexing::{ArrayIndex, ArrayIndexOp, TryIndexOp};
use mlx_rs::ops::{
    addmm, broadcast_to, concatenate, matmul, maximum, multiply, quantized_matmul, reshape, select, subtract,
    transpose, transpose_axes,
};
use mlx_rs::{Array, Dtype};

pub(crate) fn err(e: impl fmt::Display) -> Error {
    Error::backend(e)
}

pub(crate) fn dim(v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| Error::Backend(format!("dimension {v} exceeds MLX's i32 range")))
}

pub(crate) fn dims(shape: &[usize]) -> Result<Vec<i32>> {
    shape.iter().map(|&d| dim(d)).collect()
}

/// An MLX array (a cheap, reference-counted handle to a node of MLX's lazy graph).
///
/// A newtype because [`Ops::Tensor`] must be `Sync` and `mlx_rs::Array` is only `Send`.
#[derive(Clone)]
pub struct MlxTensor(Array);

// SAFETY: `Array` is a pointer to a reference-counted MLX array; `Clone` only copies the handle
// (`mlx_array_set`), and mlx-rs declares `Array: Send`. Sharing `&MlxTensor` across threads
// therefore allows nothing that cloning it and sending the clone (already possible through
// `Send + Clone`) would not: both threads could only build new graph nodes from, or evaluate, the
// same MLX array. This crate never mutates an array through `&`.
// What MLX guarantees and what we rely on: since MLX 0.31.2 independent graphs may be evaluated
// on different threads (each thread evaluates on its own default stream; from 0.32 the CPU
// backend's command encoders are thread-local; we build against 0.32.2 on Linux and mlx-rs
// 0.33's MLX on macOS). MLX does not promise that two threads may evaluate the *same* unevaluated
// array at once. The arrays a loaded model shares between calls (weights, biases, quantized
// parts, adapters) are therefore all evaluated when the model is built (`from_slice` copies host
// data into an evaluated array; the one lazy conversion, bf16 in `linear_in_precision`, is
// evaluated there), so concurrent calls only read them as inputs of their own graphs. Arrays made
// during a call stay on the calling thread.
unsafe impl Sync for MlxTensor {}

impl MlxTensor {
    pub fn array(&self) -> &Array {
        &self.0
    }

    pub fn into_array(self) -> Array {
        self.0
    }
}

impl From<Array> for MlxTensor {
    fn from(a: Array) -> Self {
        MlxTensor(a)
    }
}

impl fmt::Debug for MlxTensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print values: that would evaluate the graph.
        write!(f, "MlxTensor({:?}, {:?})", self.0.shape(), self.0.dtype())
    }
}

/// The weight of a linear layer, in the form the matmul kernel consumes.
#[derive(Debug, Clone)]
pub enum LinearWeight {
    /// Float weight `(out, in)` (PyTorch layout); applied as `x @ W^T` through a transposed
    /// view, which MLX's matmul (BLAS on CPU, Metal) consumes without copying.
    Float(MlxTensor),
    /// Weight `(out, in)` stored in bf16 (half the bytes of fp32). MLX promotes it to f32 inside
    /// the matmul: activations stay f32, products and sums are fp32 (the CPU backend's bf16
    /// semantics). On MLX's CPU backend this is about as fast as fp32, while a bf16 x bf16 matmul
    /// is 5-15x slower (measured at the model's linear shapes).
    Bf16(MlxTensor),
    /// MLX affine quantization (`chronos2_core::quant`, bit-compatible with `mx.quantize`):
    /// packed codes `(out, in * bits / 32)` `u32`, scales and biases `(out, in / group_size)`;
    /// applied with `quantized_matmul(x, w, scales, biases, transpose = true)`.
    Quantized { packed: MlxTensor, scales: MlxTensor, biases: MlxTensor, group_size: i32, bits: i32 },
}

/// A linear layer `y = x W^T (+ b)` on MLX.
#[derive(Debug, Clone)]
pub struct MlxLinear {
    pub weight: LinearWeight,
    /// `(out,)`.
    pub bias: Option<MlxTensor>,
    pub in_dim: usize,
    pub out_dim: usize,
}

/// MLX implementation of the model-graph operations.
///
/// Arrays go to MLX's default device and stream of the calling thread: the GPU (Metal) on Apple
/// Silicon, the CPU on Linux. Computation is in `f32`.
#[derive(Debug, Clone, Default)]
pub struct MlxOps {
    _private: (),
}

impl MlxOps {
    pub fn new() -> Self {
        MlxOps { _private: () }
    }

    /// Evaluates several arrays in one MLX graph evaluation (e.g. all the model weights after
    /// loading). Not needed for correctness: [`Ops::to_vec`] evaluates what it needs.
    pub fn eval(&self, xs: &[&MlxTensor]) -> Result<()> {
        mlx_rs::transforms::eval(xs.iter().map(|t| &t.0)).map_err(err)
    }

    fn scalar_like(&self, v: f32, x: &Array) -> Result<Array> {
        let s = Array::from_f32(v);
        if x.dtype() == Dtype::Float32 {
            Ok(s)
        } else {
            s.as_dtype(x.dtype()).map_err(err)
        }
    }

    fn check_axis(&self, x: &Array, axis: usize, what: &str) -> Result<i32> {
        if axis >= x.ndim() {
            return Err(Error::Backend(format!("{what}: axis {axis} out of range for shape {:?}", x.shape())));
        }
        dim(axis)
    }
}

impl Ops for MlxOps {
    type Tensor = MlxTensor;
    type Linear = MlxLinear;

    fn name(&self) -> &'static str {
        "mlx"
    }

    fn tensor(&self, data: &[f32], shape: &[usize]) -> Result<MlxTensor> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(Error::Backend(format!("tensor: {} values for shape {shape:?}", data.len())));
        }
        Ok(MlxTensor(Array::from_slice(data, &dims(shape)?)))
    }

    fn to_vec(&self, x: &MlxTensor) -> Result<Vec<f32>> {
        let a = if x.0.dtype() == Dtype::Float32 { x.0.clone() } else { x.0.as_dtype(Dtype::Float32).map_err(err)? };
        // `contiguous` is a no-op on row-major arrays; views (transposes, slices, broadcasts) are
        // copied. `try_as_slice` evaluates the graph.
        let a = a.contiguous().map_err(err)?;
        a.try_as_slice::<f32>().map(<[f32]>::to_vec).map_err(err)
    }

    fn shape(&self, x: &MlxTensor) -> Vec<usize> {
        x.0.shape().iter().map(|&d| d as usize).collect()
    }

    fn linear_from_host(
        &self,
        weight: &[f32],
        out_dim: usize,
        in_dim: usize,
        bias: Option<&[f32]>,
    ) -> Result<MlxLinear> {
        let weight = self.tensor(weight, &[out_dim, in_dim])?;
        let bias = bias.map(|b| self.tensor(b, &[out_dim])).transpose()?;
        Ok(MlxLinear { weight: LinearWeight::Float(weight), bias, in_dim, out_dim })
    }

    /// MLX-affine quantized weight: see [`LinearWeight::Quantized`].
    fn linear_from_quantized(&self, q: &QuantizedWeight, bias: Option<&[f32]>) -> Result<MlxLinear> {
        let (out_dim, in_dim) = (q.out_dim, q.in_dim);
        let words = q.words_per_row();
        let groups = q.groups_per_row();
        if q.packed.len() != out_dim * words || q.scales.len() != out_dim * groups || q.biases.len() != q.scales.len() {
            return Err(Error::Backend(format!("quantized weight ({out_dim}, {in_dim}): inconsistent part sizes")));
        }
        let packed = Array::from_slice(&q.packed, &[dim(out_dim)?, dim(words)?]);
        let scales = self.tensor(&q.scales, &[out_dim, groups])?;
        let biases = self.tensor(&q.biases, &[out_dim, groups])?;
        let bias = bias.map(|b| self.tensor(b, &[out_dim])).transpose()?;
        Ok(MlxLinear {
            weight: LinearWeight::Quantized {
                packed: MlxTensor(packed),
                scales,
                biases,
                group_size: dim(q.group_size)?,
                bits: dim(q.bits as usize)?,
            },
            bias,
            in_dim,
            out_dim,
        })
    }

    /// fp32, int8 and int4 (weight-only), and bf16 weights; not w8a8.
    fn supports_precision(&self, precision: Precision) -> bool {
        matches!(precision, Precision::Fp32 | Precision::Int8 | Precision::Int4 | Precision::Bf16)
    }

    /// bf16: see [`LinearWeight::Bf16`]; the bias stays f32.
    fn linear_in_precision(
        &self,
        weight: &[f32],
        out_dim: usize,
        in_dim: usize,
        bias: Option<&[f32]>,
        precision: Precision,
    ) -> Result<MlxLinear> {
        if precision != Precision::Bf16 {
            return Err(self.unsupported_precision(precision));
        }
        let weight = self.tensor(weight, &[out_dim, in_dim])?.0.as_dtype(Dtype::Bfloat16).map_err(err)?;
        // Materialised now: a model's arrays are shared by concurrent calls (see `MlxTensor`'s
        // `Sync`), which must find them evaluated, never evaluate them.
        mlx_rs::transforms::eval([&weight]).map_err(err)?;
        let bias = bias.map(|b| self.tensor(b, &[out_dim])).transpose()?;
        Ok(MlxLinear { weight: LinearWeight::Bf16(MlxTensor(weight)), bias, in_dim, out_dim })
    }

    /// The float weights; `None` for quantized and bf16 layers (a precision is set once, on the
    /// float model as loaded).
    fn linear_float_weights(&self, layer: &MlxLinear) -> Result<Option<(Vec<f32>, Option<Vec<f32>>)>> {
        match &layer.weight {
            LinearWeight::Float(w) => {
                let bias = layer.bias.as_ref().map(|b| self.to_vec(b)).transpose()?;
                Ok(Some((self.to_vec(w)?, bias)))
            }
            LinearWeight::Bf16(_) | LinearWeight::Quantized { .. } => Ok(None),
        }
    }

    fn linear_footprint(&self, layer: &MlxLinear) -> LayerFootprint {
        let bias_bytes = layer.bias.as_ref().map_or(0, |b| self.tensor_bytes(b));
        let params = layer.out_dim * layer.in_dim + layer.bias.as_ref().map_or(0, |_| layer.out_dim);
        let (bytes, quantized) = match &layer.weight {
            LinearWeight::Float(w) | LinearWeight::Bf16(w) => (self.tensor_bytes(w), false),
            LinearWeight::Quantized { packed, scales, biases, .. } => {
                (self.tensor_bytes(packed) + self.tensor_bytes(scales) + self.tensor_bytes(biases), true)
            }
        };
        LayerFootprint { out_dim: layer.out_dim, in_dim: layer.in_dim, params, bytes: bytes + bias_bytes, quantized }
    }

    /// `size x item size`: the buffer the array has, or will have once evaluated.
    fn tensor_bytes(&self, x: &MlxTensor) -> usize {
        x.0.nbytes()
    }

    fn linear(&self, x: &MlxTensor, layer: &MlxLinear) -> Result<MlxTensor> {
        let shape = x.0.shape().to_vec();
        let in_dim = dim(layer.in_dim)?;
        if shape.last() != Some(&in_dim) {
            return Err(Error::Backend(format!("linear: input {shape:?} for a layer of in_dim {in_dim}")));
        }
        let rows: i32 = shape[..shape.len() - 1].iter().product();
        let x2 = reshape(&x.0, &[rows, in_dim]).map_err(err)?;
        let y = match &layer.weight {
            LinearWeight::Float(w) | LinearWeight::Bf16(w) => {
                let wt = transpose(&w.0).map_err(err)?;
                match &layer.bias {
                    Some(b) => addmm(&b.0, &x2, &wt, 1.0, 1.0),
                    None => matmul(&x2, &wt),
                }
                .map_err(err)?
            }
            LinearWeight::Quantized { packed, scales, biases, group_size, bits } => {
                let y =
                    quantized_matmul(&x2, &packed.0, &scales.0, &biases.0, true, *group_size, *bits).map_err(err)?;
                match &layer.bias {
                    Some(b) => mlx_rs::ops::add(&y, &b.0).map_err(err)?,
                    None => y,
                }
            }
        };
        let mut out_shape = shape;
        *out_shape.last_mut().expect("non-empty shape") = dim(layer.out_dim)?;
        reshape(&y, &out_shape).map(MlxTensor).map_err(err)
    }

    fn rms_norm(&self, x: &MlxTensor, weight: &MlxTensor, eps: f32) -> Result<MlxTensor> {
        fast::rms_norm(&x.0, Some(&weight.0), eps).map(MlxTensor).map_err(err)
    }

    fn relu(&self, x: &MlxTensor) -> Result<MlxTensor> {
        maximum(&x.0, self.scalar_like(0.0, &x.0)?).map(MlxTensor).map_err(err)
    }

    fn add(&self, a: &MlxTensor, b: &MlxTensor) -> Result<MlxTensor> {
        mlx_rs::ops::add(&a.0, &b.0).map(MlxTensor).map_err(err)
    }

    fn mean_keepdim(&self, x: &MlxTensor, axis: usize) -> Result<MlxTensor> {
        let axis = self.check_axis(&x.0, axis, "mean_keepdim")?;
        x.0.mean_axis(axis, true).map(MlxTensor).map_err(err)
    }

    fn select(&self, keep: &MlxTensor, a: &MlxTensor, b: &MlxTensor) -> Result<MlxTensor> {
        let keep = keep.0.gt(self.scalar_like(0.5, &keep.0)?).map_err(err)?;
        select(&keep, &a.0, &b.0).map(MlxTensor).map_err(err)
    }

    fn reshape(&self, x: &MlxTensor, shape: &[usize]) -> Result<MlxTensor> {
        reshape(&x.0, &dims(shape)?).map(MlxTensor).map_err(err)
    }

    fn permute(&self, x: &MlxTensor, axes: &[usize]) -> Result<MlxTensor> {
        transpose_axes(&x.0, &dims(axes)?).map(MlxTensor).map_err(err)
    }

    fn narrow(&self, x: &MlxTensor, axis: usize, start: usize, len: usize) -> Result<MlxTensor> {
        self.check_axis(&x.0, axis, "narrow")?;
        let size = x.0.shape()[axis] as usize;
        if start + len > size {
            return Err(Error::Backend(format!(
                "narrow: {start}..{} out of range for axis {axis} of {:?}",
                start + len,
                x.0.shape()
            )));
        }
        let mut index: Vec<ArrayIndexOp> = (0..axis).map(|_| (..).index_op()).collect();
        index.push((dim(start)?..dim(start + len)?).index_op());
        x.0.try_index(&index[..]).map(MlxTensor).map_err(err)
    }

    fn concat(&self, xs: &[MlxTensor], axis: usize) -> Result<MlxTensor> {
        let arrays: Vec<&Array> = xs.iter().map(|t| &t.0).collect();
        concatenate(&arrays, dim(axis)?).map(MlxTensor).map_err(err)
    }

    fn take_rows(&self, x: &MlxTensor, indices: &[usize]) -> Result<MlxTensor> {
        let rows = x.0.shape().first().copied().unwrap_or(0) as usize;
        if let Some(&bad) = indices.iter().find(|&&i| i >= rows) {
            return Err(Error::Backend(format!("take_rows: index {bad} out of range for {rows} rows")));
        }
        let ids: Vec<u32> = indices.iter().map(|&i| i as u32).collect();
        let ids = Array::from_slice(&ids, &[dim(ids.len())?]);
        x.0.take_axis(&ids, 0).map(MlxTensor).map_err(err)
    }

    fn broadcast_to(&self, x: &MlxTensor, shape: &[usize]) -> Result<MlxTensor> {
        broadcast_to(&x.0, &dims(shape)?).map(MlxTensor).map_err(err)
    }

    /// Rotate-half RoPE from the given tables: `[x1 c - x2 s, x2 c + x1 s]` with `x = [x1, x2]`.
    ///
    /// `fast::rope` (non-traditional, `base = theta`) computes the same rotation, but derives its
    /// angles from `theta` itself in f32, which differs from the reference's tables by up to
    /// ~`position * 1e-7` radians (about 1e-4 at a few hundred patches); using the tables keeps
    /// parity at ~1e-6.
    fn rope(&self, x: &MlxTensor, cos: &MlxTensor, sin: &MlxTensor) -> Result<MlxTensor> {
        let shape = x.0.shape();
        let d = *shape.last().ok_or_else(|| Error::Backend("rope: scalar input".into()))?;
        if d % 2 != 0 || cos.0.shape().last() != Some(&(d / 2)) || sin.0.shape() != cos.0.shape() {
            return Err(Error::Backend(format!(
                "rope: x {:?} with cos {:?} / sin {:?} (want (seq, d/2))",
                shape,
                cos.0.shape(),
                sin.0.shape()
            )));
        }
        let last = shape.len() - 1;
        let half = (d / 2) as usize;
        let x1 = self.narrow(x, last, 0, half)?.0;
        let x2 = self.narrow(x, last, half, half)?.0;
        let (c, s) = (&cos.0, &sin.0);
        let m = |a: &Array, b: &Array| multiply(a, b).map_err(err);
        let out1 = subtract(m(&x1, c)?, m(&x2, s)?).map_err(err)?;
        let out2 = mlx_rs::ops::add(m(&x2, c)?, m(&x1, s)?).map_err(err)?;
        concatenate(&[out1, out2], dim(last)?).map(MlxTensor).map_err(err)
    }

    /// `fast::scaled_dot_product_attention` with scale 1.0 and the additive key mask.
    ///
    /// The mask (0 or `f32::MIN`) is halved first: MLX's fused Metal kernels work in base 2 and
    /// may multiply an additive mask by `log2(e)`, which would turn `f32::MIN` into `-inf` and a
    /// fully masked row into NaN. `f32::MIN / 2` stays finite there, and it still absorbs every
    /// score (`s + f32::MIN / 2 == f32::MIN / 2` for `|s| < 1e31`), so a fully masked row still
    /// softmaxes to uniform weights, as in the reference, and masked keys still get weight 0.
    /// (On the CPU, MLX runs its unfused fallback, `softmax(q k^T + mask) v` in f32.)
    fn attention(&self, q: &MlxTensor, k: &MlxTensor, v: &MlxTensor, key_mask: &MlxTensor) -> Result<MlxTensor> {
        let half = multiply(&key_mask.0, self.scalar_like(0.5, &key_mask.0)?).map_err(err)?;
        let mask = ScaledDotProductAttentionMask::Array(&half);
        fast::scaled_dot_product_attention(&q.0, &k.0, &v.0, 1.0, mask, None::<&Array>).map(MlxTensor).map_err(err)
    }
}

//! The frozen base weight of a training linear, as a custom op whose backward gives only the
//! gradient with respect to the input (`dL/dx = dL/dy W`). candle's own matmul backward also
//! computes a weight-sized gradient for the constant weight of every frozen linear (and keeps it
//! until the gradients are dropped), which doubled the base's memory in LoRA training.
//!
//! A QLoRA base is held quantized (MLX's affine int8 / int4 codes, group 64): each forward and
//! each backward dequantizes the weight into a temporary buffer, multiplies, and drops it.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, Device, Layout, Shape, Tensor};
use chronos2_core::quant::{dequantize, QuantizedWeight};

use super::matmul::{matmul, matmul_slices};

/// A frozen `(out, in)` weight.
#[derive(Clone)]
pub enum FrozenWeight {
    /// A float constant.
    Dense(Tensor),
    /// Quantized (QLoRA), dequantized per use.
    Quantized(Arc<QuantizedWeight>),
}

impl FrozenWeight {
    /// `(out, in)`.
    pub fn dims(&self) -> (usize, usize) {
        match self {
            FrozenWeight::Dense(w) => w.dims2().unwrap_or((0, 0)),
            FrozenWeight::Quantized(q) => (q.out_dim, q.in_dim),
        }
    }

    fn dense(&self, device: &Device) -> candle_core::Result<Tensor> {
        match self {
            FrozenWeight::Dense(w) => Ok(w.clone()),
            FrozenWeight::Quantized(q) => Tensor::from_vec(dequantize(q), (q.out_dim, q.in_dim), device),
        }
    }

    /// Runs `f` on the weight's `(out, in)` values and layout (a quantized one dequantized).
    fn with_values<R>(&self, f: impl FnOnce(&[f32], &Layout) -> candle_core::Result<R>) -> candle_core::Result<R> {
        let weight = self.dense(&Device::Cpu)?;
        let (w, w_layout) = weight.storage_and_layout();
        let candle_core::Storage::Cpu(CpuStorage::F32(w)) = &*w else {
            candle_core::bail!("frozen weight: it must be f32 on the CPU");
        };
        f(w, w_layout)
    }

    /// `x Wᵀ` for `rows` contiguous rows `x` of the input width: `(rows, out)`, contiguous.
    pub fn times_transposed(&self, x: &[f32], rows: usize) -> candle_core::Result<Vec<f32>> {
        let in_dim = self.dims().1;
        // The weight read transposed (copied row-major first where the product is faster so).
        self.with_values(|w, layout| {
            Ok(matmul_slices(x, &Layout::contiguous((rows, in_dim)), w, &layout.transpose(0, 1)?)?.0)
        })
    }

    /// `g W` for `rows` contiguous rows `g` of the output width: `(rows, in)`, contiguous.
    pub fn times(&self, g: &[f32], rows: usize) -> candle_core::Result<Vec<f32>> {
        let out_dim = self.dims().0;
        self.with_values(|w, layout| Ok(matmul_slices(g, &Layout::contiguous((rows, out_dim)), w, layout)?.0))
    }
}

/// `x W^T` for a contiguous `x (..., in)` and a frozen `W (out, in)`; differentiable in `x` only.
pub struct FrozenMatmul {
    pub weight: FrozenWeight,
}

impl CustomOp1 for FrozenMatmul {
    fn name(&self) -> &'static str {
        "frozen-matmul"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(values) = storage else {
            candle_core::bail!("{}: the input must be f32", self.name());
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("{}: the input must be contiguous", self.name());
        };
        let in_dim = layout.dims().last().copied().unwrap_or(1);
        let rows = layout.shape().elem_count() / in_dim.max(1);
        let (out_dim, weight_in) = self.weight.dims();
        if in_dim != weight_in {
            candle_core::bail!("{}: input width {in_dim}, the weight takes {weight_in}", self.name());
        }
        let y = self.weight.times_transposed(&values[start..end], rows)?;
        let mut dims = layout.dims().to_vec();
        *dims.last_mut().expect("checked above: a last dimension") = out_dim;
        Ok((CpuStorage::F32(y), Shape::from(dims)))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(matmul(grad_res, &self.weight.dense(grad_res.device())?)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;
    use chronos2_core::quant::quantize;

    /// Forward and input gradient equal those of a plain matmul on the (dequantized) weight.
    #[test]
    fn matches_the_plain_matmul_and_its_input_gradient() {
        let (rows, in_dim, out_dim) = (3, 128, 5);
        let w: Vec<f32> = (0..out_dim * in_dim).map(|i| ((i * 37 % 101) as f32 - 50.0) / 40.0).collect();
        let q = Arc::new(quantize(&w, out_dim, in_dim, 4, 64).unwrap());
        let dense = Tensor::from_vec(dequantize(&q), (out_dim, in_dim), &Device::Cpu).unwrap();
        let x0: Vec<f32> = (0..rows * in_dim).map(|i| ((i * 13 % 29) as f32 - 14.0) / 7.0).collect();
        let x = Var::from_tensor(&Tensor::from_vec(x0, (rows, in_dim), &Device::Cpu).unwrap()).unwrap();
        let weights =
            Tensor::arange(0f32, (rows * out_dim) as f32, &Device::Cpu).unwrap().reshape((rows, out_dim)).unwrap();

        let grad = |y: &Tensor| {
            let loss = (y * &weights).unwrap().sum_all().unwrap();
            loss.backward().unwrap().get(x.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
        };
        let y_ref = x.as_tensor().matmul(&dense.t().unwrap()).unwrap();
        let g_ref = grad(&y_ref);
        assert!(g_ref.iter().any(|v| v.abs() > 1.0));
        for weight in [FrozenWeight::Quantized(q), FrozenWeight::Dense(dense.clone())] {
            let y = x.as_tensor().apply_op1(FrozenMatmul { weight }).unwrap();
            let diff = (&y - &y_ref).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(diff < 1e-4, "forward differs by {diff}");
            let g = grad(&y);
            let diff = g.iter().zip(&g_ref).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(diff < 1e-3, "input gradient differs by {diff}");
        }
    }
}

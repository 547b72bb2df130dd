//! A LoRA linear on a frozen base, `y = x Wᵀ + s (x Aᵀ) Bᵀ`, as one custom op with its own
//! backward.
//!
//! Written with separate ops (the frozen product, two adapter products, a scale and an add),
//! a LoRA linear is five nodes of candle's graph, and candle's backward zeroes a buffer and adds
//! each node's gradient into it: four activation-sized zero-and-add passes per linear more than
//! one op needs, on 49 LoRA linears of chronos2-mini. Here the adapter's product is added into
//! the base's output, and the input's two gradients into one buffer, by the gemm crate itself.

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Storage, Tensor};

use super::frozen::FrozenWeight;
use super::matmul::{matmul_accumulate, matmul_scaled, matmul_slices};
use super::rows::contiguous_f32;

/// `x W^T + scaling · (x A^T) B^T` for a contiguous `x (..., in)`, a frozen `W (out, in)` and the
/// adapter `A (r, in)`, `B (out, r)`; differentiable in `x`, `A` and `B`.
pub struct LoraMatmul {
    pub base: FrozenWeight,
    pub scaling: f32,
}

/// The rows, input width and output width of a product on `x` laid out by `layout`.
fn rows_in_out(op: &LoraMatmul, layout: &Layout) -> candle_core::Result<(usize, usize, usize)> {
    let in_dim = layout.dims().last().copied().unwrap_or(1);
    let (out_dim, weight_in) = op.base.dims();
    if in_dim != weight_in {
        candle_core::bail!("{}: input width {in_dim}, the weight takes {weight_in}", op.name());
    }
    Ok((layout.shape().elem_count() / in_dim.max(1), in_dim, out_dim))
}

fn f32_values<'a>(op: &str, storage: &'a CpuStorage) -> candle_core::Result<&'a [f32]> {
    match storage {
        CpuStorage::F32(values) => Ok(values),
        _ => candle_core::bail!("{op}: the operands must be f32"),
    }
}

impl LoraMatmul {
    /// `y = x Wᵀ + s (x Aᵀ) Bᵀ` on the operands' values.
    fn forward(
        &self,
        x: &[f32],
        rows: usize,
        in_dim: usize,
        (a, la): (&[f32], &Layout),
        (b, lb): (&[f32], &Layout),
    ) -> candle_core::Result<Vec<f32>> {
        let x_layout = Layout::contiguous((rows, in_dim));
        let mut y = self.base.times_transposed(x, rows)?;
        let (low, low_shape) = matmul_slices(x, &x_layout, a, &la.transpose(0, 1)?)?;
        matmul_accumulate(&low, &Layout::contiguous(low_shape), b, &lb.transpose(0, 1)?, self.scaling, &mut y)?;
        Ok(y)
    }
}

impl CustomOp3 for LoraMatmul {
    fn name(&self) -> &'static str {
        "lora-matmul"
    }

    fn cpu_fwd(
        &self,
        sx: &CpuStorage,
        lx: &Layout,
        sa: &CpuStorage,
        la: &Layout,
        sb: &CpuStorage,
        lb: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (rows, in_dim, out_dim) = rows_in_out(self, lx)?;
        let x = contiguous_f32(self.name(), sx, lx)?;
        let (a, b) = (f32_values(self.name(), sa)?, f32_values(self.name(), sb)?);
        let y = self.forward(x, rows, in_dim, (a, la), (b, lb))?;
        let mut dims = lx.dims().to_vec();
        *dims.last_mut().expect("checked above: a last dimension") = out_dim;
        Ok((CpuStorage::F32(y), Shape::from(dims)))
    }

    /// With `G = dL/dy` and `H = G B`: `dx = G W + s H A`, `dA = s Hᵀ x`, `dB = s Gᵀ (x Aᵀ)`,
    /// each only for an operand that takes part in the graph.
    fn bwd(
        &self,
        x: &Tensor,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (rows, in_dim, out_dim) = rows_in_out(self, x.layout())?;
        let grad = grad.contiguous()?;
        let (g_storage, g_layout) = grad.storage_and_layout();
        let (x_storage, x_layout) = x.storage_and_layout();
        let (a_storage, la) = a.storage_and_layout();
        let (b_storage, lb) = b.storage_and_layout();
        let (Storage::Cpu(g), Storage::Cpu(xs), Storage::Cpu(av), Storage::Cpu(bv)) =
            (&*g_storage, &*x_storage, &*a_storage, &*b_storage)
        else {
            candle_core::bail!("{}: the operands must be on the CPU", self.name());
        };
        let name = self.name();
        let g = contiguous_f32(name, g, g_layout)?;
        let xv = contiguous_f32(name, xs, x_layout)?;
        let (av, bv) = (f32_values(name, av)?, f32_values(name, bv)?);
        let (g_rows, x_rows) = (Layout::contiguous((rows, out_dim)), Layout::contiguous((rows, in_dim)));
        let (h, h_shape) = matmul_slices(g, &g_rows, bv, lb)?;
        let h_rows = Layout::contiguous(h_shape);
        let device = x.device();

        let dx = if x.track_op() {
            let mut dx = self.base.times(g, rows)?;
            matmul_accumulate(&h, &h_rows, av, la, self.scaling, &mut dx)?;
            Some(Tensor::from_vec(dx, x.dims(), device)?)
        } else {
            None
        };
        let da = if a.track_op() {
            let da = matmul_scaled(&h, &h_rows.transpose(0, 1)?, xv, &x_rows, self.scaling)?;
            Some(Tensor::from_vec(da, a.dims(), device)?)
        } else {
            None
        };
        let db = if b.track_op() {
            let (low, low_shape) = matmul_slices(xv, &x_rows, av, &la.transpose(0, 1)?)?;
            let db = matmul_scaled(g, &g_rows.transpose(0, 1)?, &low, &Layout::contiguous(low_shape), self.scaling)?;
            Some(Tensor::from_vec(db, b.dims(), device)?)
        } else {
            None
        };
        Ok((dx, da, db))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_values::{max_diff, values};
    use std::sync::Arc;

    use super::*;
    use candle_core::{Device, Var};
    use chronos2_core::quant::{dequantize, quantize};

    /// Forward and the gradients of `x`, `A` and `B` equal those of the same linear written with
    /// candle's ops, on a float and a quantized base, for a batched input large enough for the
    /// products to be split into tiles (and the base copied row-major).
    #[test]
    fn matches_the_linear_written_with_candle_ops() {
        let dev = Device::Cpu;
        let (batch, seq, in_dim, out_dim, r, scaling) = (3, 47, 256, 128, 8, 2.0);
        let w = values(out_dim * in_dim, 1);
        let quantized = Arc::new(quantize(&w, out_dim, in_dim, 8, 64).unwrap());
        let bases = [
            (FrozenWeight::Dense(Tensor::from_vec(w.clone(), (out_dim, in_dim), &dev).unwrap()), w),
            (FrozenWeight::Quantized(quantized.clone()), dequantize(&quantized)),
        ];
        for (base, dense) in bases {
            let x = Var::from_vec(values(batch * seq * in_dim, 2), (batch, seq, in_dim), &dev).unwrap();
            let a = Var::from_vec(values(r * in_dim, 3), (r, in_dim), &dev).unwrap();
            let b = Var::from_vec(values(out_dim * r, 4), (out_dim, r), &dev).unwrap();
            let weights = Tensor::from_vec(values(batch * seq * out_dim, 5), (batch, seq, out_dim), &dev).unwrap();
            let run = |y: Tensor| {
                let grads = (&y * &weights).unwrap().sum_all().unwrap().backward().unwrap();
                let grad = |v: &Var| grads.get(v.as_tensor()).unwrap().clone();
                (y, grad(&x), grad(&a), grad(&b))
            };
            let w = Tensor::from_vec(dense, (out_dim, in_dim), &dev).unwrap();
            let plain = {
                let base = x.as_tensor().broadcast_matmul(&w.t().unwrap()).unwrap();
                let low = x.as_tensor().broadcast_matmul(&a.as_tensor().t().unwrap()).unwrap();
                let delta = low.broadcast_matmul(&b.as_tensor().t().unwrap()).unwrap();
                (base + (delta * scaling).unwrap()).unwrap()
            };
            let expected = run(plain);
            let op = LoraMatmul { base, scaling: scaling as f32 };
            let fused = run(x.as_tensor().apply_op3(a.as_tensor(), b.as_tensor(), op).unwrap());
            assert_eq!(fused.0.dims(), &[batch, seq, out_dim]);
            assert!(max_diff(&fused.0, &expected.0) < 1e-3, "forward");
            assert!(max_diff(&fused.1, &expected.1) < 1e-3, "dx");
            assert!(max_diff(&fused.2, &expected.2) < 1e-2, "dA");
            assert!(max_diff(&fused.3, &expected.3) < 1e-2, "dB");
            for g in [&expected.1, &expected.2, &expected.3] {
                assert!(max_diff(g, &g.zeros_like().unwrap()) > 1.0, "a gradient that can fail");
            }
        }
    }
}

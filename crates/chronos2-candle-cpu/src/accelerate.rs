//! macOS with the `accelerate` feature: float linears and the attention's products go through
//! candle's matmul, which calls Apple Accelerate's `sgemm` (AMX) — faster there than any
//! hand-written kernel. (Compiled on macOS only; not built or tested on the Linux CI.)

use std::mem::MaybeUninit;

use candle_core::{Device, Tensor};

/// A float weight `(n, k)` kept transposed `(k, n)` for Accelerate's `sgemm`.
#[derive(Debug, Clone)]
pub struct AccelerateMatmul {
    weight_t: Tensor,
    out_dim: usize,
    in_dim: usize,
}

impl AccelerateMatmul {
    /// From a row-major `(out_dim, in_dim)` weight (PyTorch layout).
    pub fn new(weight: &[f32], out_dim: usize, in_dim: usize) -> candle_core::Result<Self> {
        if out_dim == 0 || in_dim == 0 || weight.len() != out_dim * in_dim {
            candle_core::bail!("accelerate matmul: {} values for a ({out_dim}, {in_dim}) weight", weight.len());
        }
        let weight_t = Tensor::from_slice(weight, (out_dim, in_dim), &Device::Cpu)?.t()?.contiguous()?;
        Ok(AccelerateMatmul { weight_t, out_dim, in_dim })
    }

    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    pub fn in_dim(&self) -> usize {
        self.in_dim
    }

    pub fn footprint_bytes(&self) -> usize {
        4 * self.out_dim * self.in_dim
    }

    /// The weight in its `(out_dim, in_dim)` row-major layout.
    pub fn unpack(&self) -> candle_core::Result<Vec<f32>> {
        self.weight_t.t()?.contiguous()?.flatten_all()?.to_vec1()
    }

    /// `y (m, out) = x (m, in) · W^T (+ bias)`.
    pub fn matmul(&self, x: &[f32], m: usize, bias: Option<&[f32]>, y: &mut [f32]) -> candle_core::Result<()> {
        self.matmul_uninit(x, m, bias, crate::gemm::as_uninit(y))
    }

    /// [`matmul`](Self::matmul) into an output that may be uninitialised (every value is written).
    pub(crate) fn matmul_uninit(
        &self,
        x: &[f32],
        m: usize,
        bias: Option<&[f32]>,
        y: &mut [MaybeUninit<f32>],
    ) -> candle_core::Result<()> {
        crate::gemm::check_shapes(x.len(), m, self.in_dim, self.out_dim, bias, y.len())?;
        if m == 0 {
            return Ok(());
        }
        let xt = Tensor::from_slice(x, (m, self.in_dim), &Device::Cpu)?;
        let out = xt.matmul(&self.weight_t)?.flatten_all()?.to_vec1::<f32>()?;
        for (yrow, orow) in y.chunks_exact_mut(self.out_dim).zip(out.chunks_exact(self.out_dim)) {
            match bias {
                Some(b) => {
                    for ((yv, &v), bv) in yrow.iter_mut().zip(orow).zip(b) {
                        yv.write(v + bv);
                    }
                }
                None => {
                    for (yv, &v) in yrow.iter_mut().zip(orow) {
                        yv.write(v);
                    }
                }
            }
        }
        Ok(())
    }
}

/// `softmax(q kᵀ + mask) v` with candle's matmul (Accelerate) on `(n, heads, len, d)` tensors and
/// a `(n, 1, 1, len)` additive mask.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, key_mask: &Tensor) -> candle_core::Result<Tensor> {
    let scores = q.contiguous()?.matmul(&k.t()?)?.broadcast_add(key_mask)?;
    let weights = candle_nn::ops::softmax_last_dim(&scores)?;
    weights.matmul(&v.contiguous()?)
}

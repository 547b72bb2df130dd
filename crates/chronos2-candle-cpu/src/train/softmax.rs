//! Softmax over the last dimension as one custom op with its own backward, row-parallel on rayon.
//!
//! Written with candle's ops, a softmax and its backward are a dozen passes over the attention
//! scores, and the row maxima and sums (and the sums of the broadcasts' backward) run on one
//! thread. The backward here is the softmax's own: `dx = y (dy - Σ dy y)`.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::rows::{contiguous_f32, rows_per_task};
use crate::gemm::filled_vec;

/// `softmax(x)` over the last dimension; differentiable.
pub fn softmax_last_dim(x: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1(Softmax)
}

/// The contiguous f32 values of `storage` laid out by `layout`, and the last dimension's size.
fn rows_of<'a>(name: &str, storage: &'a CpuStorage, layout: &Layout) -> candle_core::Result<(&'a [f32], usize)> {
    let width = layout.dims().last().copied().unwrap_or(1);
    Ok((contiguous_f32(name, storage, layout)?, width))
}

struct Softmax;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "train-softmax"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, width) = rows_of(self.name(), storage, layout)?;
        let y = filled_vec(x.len(), |y| {
            if width == 0 {
                return;
            }
            let chunk = rows_per_task(width) * width;
            y.par_chunks_mut(chunk).zip(x.par_chunks(chunk)).for_each(|(y, x)| {
                for (y, x) in y.chunks_mut(width).zip(x.chunks(width)) {
                    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let mut sum = 0.0f32;
                    for (y, &x) in y.iter_mut().zip(x) {
                        let e = (x - max).exp();
                        y.write(e);
                        sum += e;
                    }
                    for y in y.iter_mut() {
                        // SAFETY: written just above.
                        let e = unsafe { y.assume_init() };
                        y.write(e / sum);
                    }
                }
            });
        });
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(res.apply_op2_no_bwd(&grad_res.contiguous()?, &SoftmaxBackward)?))
    }
}

/// `y (dy - Σ dy y)` per row, from the softmax's output `y` and the gradient `dy`.
struct SoftmaxBackward;

impl CustomOp2 for SoftmaxBackward {
    fn name(&self) -> &'static str {
        "train-softmax-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (y, width) = rows_of(self.name(), s1, l1)?;
        let (dy, _) = rows_of(self.name(), s2, l2)?;
        if l1.dims() != l2.dims() {
            candle_core::bail!("{}: shapes {:?} and {:?} differ", self.name(), l1.dims(), l2.dims());
        }
        let dx = filled_vec(y.len(), |dx| {
            if width == 0 {
                return;
            }
            let chunk = rows_per_task(width) * width;
            dx.par_chunks_mut(chunk).zip(y.par_chunks(chunk).zip(dy.par_chunks(chunk))).for_each(|(dx, (y, dy))| {
                for ((dx, y), dy) in dx.chunks_mut(width).zip(y.chunks(width)).zip(dy.chunks(width)) {
                    let dot: f32 = y.iter().zip(dy).map(|(y, dy)| y * dy).sum();
                    for ((dx, &y), &dy) in dx.iter_mut().zip(y).zip(dy) {
                        dx.write(y * (dy - dot));
                    }
                }
            });
        });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_values::max_diff;
    use super::*;
    use candle_core::{Device, Var, D};

    /// candle's ops, as the training graph wrote the softmax before.
    fn reference(x: &Tensor) -> Tensor {
        let max = x.detach().max_keepdim(D::Minus1).unwrap();
        let e = x.broadcast_sub(&max).unwrap().exp().unwrap();
        e.broadcast_div(&e.sum_keepdim(D::Minus1).unwrap()).unwrap()
    }

    /// Forward and input gradient equal candle's softmax on odd shapes, with masked (-inf-like)
    /// entries, a non-contiguous input and many rows (several rayon tasks).
    #[test]
    fn matches_candle_softmax_and_its_gradient() {
        let dev = Device::Cpu;
        for (i, dims) in [vec![3, 7], vec![2, 5, 37], vec![300, 35], vec![4, 1]].into_iter().enumerate() {
            let n: usize = dims.iter().product();
            let v: Vec<f32> =
                (0..n).map(|j| if j % 11 == 3 { -1e9 } else { ((j * 37 + i) % 101) as f32 / 20.0 - 2.5 }).collect();
            let x = Var::from_tensor(&Tensor::from_vec(v, dims.clone(), &dev).unwrap()).unwrap();
            let w = Tensor::from_vec((0..n).map(|j| ((j * 13) % 17) as f32 - 8.0).collect::<Vec<_>>(), dims, &dev);
            let w = w.unwrap();
            let run = |y: Tensor| {
                let g = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
                (y, g.get(x.as_tensor()).unwrap().clone())
            };
            let (y_ref, g_ref) = run(reference(x.as_tensor()));
            let (y, g) = run(softmax_last_dim(x.as_tensor()).unwrap());
            assert!(max_diff(&y, &y_ref) < 1e-6, "case {i}: forward");
            assert!(max_diff(&g, &g_ref) < 1e-5, "case {i}: gradient");
        }
        // a transposed (non-contiguous) input
        let x = Tensor::from_vec((0..24).map(|j| j as f32 / 7.0).collect::<Vec<_>>(), (4, 6), &dev).unwrap();
        let xt = x.t().unwrap();
        assert!(max_diff(&softmax_last_dim(&xt).unwrap(), &reference(&xt)) < 1e-6);
    }

    /// A gradient that can fail: it is not zero.
    #[test]
    fn gradient_is_not_trivial() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::new(&[[0.5f32, -1.0, 2.0]], &dev).unwrap()).unwrap();
        let w = Tensor::new(&[[1.0f32, 0.0, -1.0]], &dev).unwrap();
        let y = softmax_last_dim(x.as_tensor()).unwrap();
        let g = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g = g.get(x.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(g.iter().map(|v| v.abs()).sum::<f32>() > 0.1, "{g:?}");
    }
}

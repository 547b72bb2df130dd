//! RMS norm over the last dimension (`x / sqrt(mean(x²) + eps) * w`) as one custom op with its
//! own backward, row-parallel on rayon.
//!
//! Written with candle's ops, the norm is seven ops and its backward some twenty, whose row
//! means and broadcast sums run on one thread. Here, per row with `inv = 1/sqrt(mean(x²) + eps)`
//! and `g = dy w`: `dx = inv g - x inv³ Σ(g x) / d`, and `dw = Σ_rows dy x inv`.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::rows::{contiguous_f32, rows_per_task};
use crate::gemm::filled_vec;

/// `x / sqrt(mean(x²) + eps) * weight` over the last dimension; differentiable in both.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f32) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op2(&weight.contiguous()?, RmsNorm { eps })
}

/// `x`'s values and row width, checked against the weight's (and the gradient's) layouts.
fn rows<'a>(
    name: &str,
    x: (&'a CpuStorage, &Layout),
    weight_len: usize,
    same_as_x: Option<&Layout>,
) -> candle_core::Result<(&'a [f32], usize)> {
    let width = x.1.dims().last().copied().unwrap_or(1);
    if width != weight_len {
        candle_core::bail!("{name}: rows of {width}, a weight of {weight_len}");
    }
    if same_as_x.is_some_and(|l| l.dims() != x.1.dims()) {
        candle_core::bail!("{name}: the gradient's shape differs from the input's {:?}", x.1.dims());
    }
    Ok((contiguous_f32(name, x.0, x.1)?, width))
}

fn inv_rms(x: &[f32], eps: f32) -> f32 {
    let ms = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    1.0 / (ms + eps).sqrt()
}

struct RmsNorm {
    eps: f32,
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "train-rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let w = contiguous_f32(self.name(), s2, l2)?;
        let (x, width) = rows(self.name(), (s1, l1), w.len(), None)?;
        let y = filled_vec(x.len(), |y| {
            if width == 0 {
                return;
            }
            let chunk = rows_per_task(width) * width;
            y.par_chunks_mut(chunk).zip(x.par_chunks(chunk)).for_each(|(y, x)| {
                for (y, x) in y.chunks_mut(width).zip(x.chunks(width)) {
                    let inv = inv_rms(x, self.eps);
                    for ((y, &x), &w) in y.iter_mut().zip(x).zip(w) {
                        y.write(x * inv * w);
                    }
                }
            });
        });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let dx =
            if x.track_op() { Some(x.apply_op3_no_bwd(w, &grad, &RmsNormInputGrad { eps: self.eps })?) } else { None };
        let dw =
            if w.track_op() { Some(x.apply_op2_no_bwd(&grad, &RmsNormWeightGrad { eps: self.eps })?) } else { None };
        Ok((dx, dw))
    }
}

/// `dx = inv g - x inv³ Σ(g x) / d` with `g = dy w`, from `(x, w, dy)`.
struct RmsNormInputGrad {
    eps: f32,
}

impl CustomOp3 for RmsNormInputGrad {
    fn name(&self) -> &'static str {
        "train-rms-norm-input-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let w = contiguous_f32(self.name(), s2, l2)?;
        let (x, width) = rows(self.name(), (s1, l1), w.len(), Some(l3))?;
        let dy = contiguous_f32(self.name(), s3, l3)?;
        let dx = filled_vec(x.len(), |dx| {
            if width == 0 {
                return;
            }
            let chunk = rows_per_task(width) * width;
            dx.par_chunks_mut(chunk).zip(x.par_chunks(chunk).zip(dy.par_chunks(chunk))).for_each(|(dx, (x, dy))| {
                for ((dx, x), dy) in dx.chunks_mut(width).zip(x.chunks(width)).zip(dy.chunks(width)) {
                    let inv = inv_rms(x, self.eps);
                    let gx: f32 = x.iter().zip(dy).zip(w).map(|((x, dy), w)| dy * w * x).sum();
                    let c = inv * inv * inv * gx / width as f32;
                    for (((dx, &x), &dy), &w) in dx.iter_mut().zip(x).zip(dy).zip(w) {
                        dx.write(inv * dy * w - x * c);
                    }
                }
            });
        });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// `dw = Σ_rows dy x inv`, from `(x, dy)`.
struct RmsNormWeightGrad {
    eps: f32,
}

impl CustomOp2 for RmsNormWeightGrad {
    fn name(&self) -> &'static str {
        "train-rms-norm-weight-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let width = l1.dims().last().copied().unwrap_or(1);
        let (x, _) = rows(self.name(), (s1, l1), width, Some(l2))?;
        let dy = contiguous_f32(self.name(), s2, l2)?;
        let mut dw = vec![0.0f32; width];
        if width > 0 {
            let chunk = rows_per_task(width) * width;
            let partials: Vec<Vec<f32>> = x
                .par_chunks(chunk)
                .zip(dy.par_chunks(chunk))
                .map(|(x, dy)| {
                    let mut part = vec![0.0f32; width];
                    for (x, dy) in x.chunks(width).zip(dy.chunks(width)) {
                        let inv = inv_rms(x, self.eps);
                        for ((p, &x), &dy) in part.iter_mut().zip(x).zip(dy) {
                            *p += dy * x * inv;
                        }
                    }
                    part
                })
                .collect();
            for part in partials {
                dw.iter_mut().zip(part).for_each(|(d, p)| *d += p);
            }
        }
        Ok((CpuStorage::F32(dw), Shape::from(width)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_values::max_diff;
    use super::*;
    use candle_core::{Device, Var, D};

    /// candle's ops, as the training graph wrote the norm before.
    fn reference(x: &Tensor, w: &Tensor, eps: f32) -> Tensor {
        let inv = x.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
        let inv = inv.affine(1.0, eps as f64).unwrap().sqrt().unwrap().recip().unwrap();
        x.broadcast_mul(&inv).unwrap().broadcast_mul(w).unwrap()
    }

    /// Forward and both gradients equal candle's on odd shapes, including one of many rows
    /// (several rayon tasks and partial weight sums) and a non-contiguous input.
    #[test]
    fn matches_candle_rms_norm_and_its_gradients() {
        let dev = Device::Cpu;
        let eps = 1e-6;
        for (i, dims) in [vec![3, 7], vec![2, 5, 33], vec![700, 19], vec![1, 1]].into_iter().enumerate() {
            let n: usize = dims.iter().product();
            let d = *dims.last().unwrap();
            let v: Vec<f32> = (0..n).map(|j| ((j * 37 + i) % 101) as f32 / 20.0 - 2.5).collect();
            let x = Var::from_tensor(&Tensor::from_vec(v, dims.clone(), &dev).unwrap()).unwrap();
            let wv: Vec<f32> = (0..d).map(|j| 0.5 + (j % 5) as f32 / 3.0).collect();
            let w = Var::from_tensor(&Tensor::from_vec(wv, d, &dev).unwrap()).unwrap();
            let weights =
                Tensor::from_vec((0..n).map(|j| ((j * 13) % 17) as f32 - 8.0).collect::<Vec<_>>(), dims, &dev);
            let weights = weights.unwrap();
            let run = |y: Tensor| {
                let g = (&y * &weights).unwrap().sum_all().unwrap().backward().unwrap();
                (y, g.get(x.as_tensor()).unwrap().clone(), g.get(w.as_tensor()).unwrap().clone())
            };
            let (y_ref, gx_ref, gw_ref) = run(reference(x.as_tensor(), w.as_tensor(), eps));
            let (y, gx, gw) = run(rms_norm(x.as_tensor(), w.as_tensor(), eps).unwrap());
            let scale = max_diff(&gw_ref, &gw_ref.zeros_like().unwrap()).max(1.0);
            assert!(max_diff(&y, &y_ref) < 1e-5, "case {i}: forward");
            assert!(max_diff(&gx, &gx_ref) < 1e-4, "case {i}: input gradient");
            assert!(max_diff(&gw, &gw_ref) < 1e-5 * scale, "case {i}: weight gradient");
            if d > 1 {
                assert!(max_diff(&gx_ref, &gx_ref.zeros_like().unwrap()) > 0.01, "case {i}: a gradient that can fail");
            }
        }
        let x = Tensor::from_vec((0..24).map(|j| j as f32 / 7.0 - 1.0).collect::<Vec<_>>(), (4, 6), &dev).unwrap();
        let w = Tensor::ones(4, candle_core::DType::F32, &dev).unwrap();
        let xt = x.t().unwrap();
        assert!(max_diff(&rms_norm(&xt, &w, eps).unwrap(), &reference(&xt, &w, eps)) < 1e-5);
    }

    /// A constant weight gets no gradient computed.
    #[test]
    fn no_weight_gradient_for_a_constant_weight() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::new(&[[0.5f32, -1.0, 2.0]], &dev).unwrap()).unwrap();
        let w = Tensor::new(&[1.0f32, 2.0, 3.0], &dev).unwrap();
        let g = rms_norm(x.as_tensor(), &w, 1e-6).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(g.get(x.as_tensor()).is_some());
        assert!(g.get(&w).is_none());
    }
}

//! The rotary embedding (rotate-half form) as one custom op with its own backward, parallel on
//! rayon over the `(n, heads)` planes, reading a permuted input in place.
//!
//! Written with candle's ops it is two narrows, four broadcast products, a sum, a difference and a
//! concatenation, and its backward twice that. The rotation's backward is the rotation by the
//! opposite angle: the same op with `-sin`.

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::rows::contiguous_f32;
use crate::gemm::filled_vec;

/// `x (n, heads, seq, d)` rotated: `[x1 cos - x2 sin, x2 cos + x1 sin]` for the halves `x1`, `x2`
/// of its last dimension, with `cos`, `sin` of shape `(seq, d / 2)`; differentiable in `x`.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> candle_core::Result<Tensor> {
    x.apply_op3(&cos.contiguous()?, &sin.contiguous()?, Rope)
}

struct Rope;

impl CustomOp3 for Rope {
    fn name(&self) -> &'static str {
        "train-rope"
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
        let CpuStorage::F32(x) = s1 else {
            candle_core::bail!("{}: the input must be f32", self.name());
        };
        let (cos, sin) = (contiguous_f32(self.name(), s2, l2)?, contiguous_f32(self.name(), s3, l3)?);
        let &[n, heads, seq, d] = l1.dims() else {
            candle_core::bail!("{}: the input must be (n, heads, seq, d), got {:?}", self.name(), l1.dims());
        };
        let half = d / 2;
        if d % 2 != 0 || cos.len() != seq * half || sin.len() != seq * half {
            candle_core::bail!("{}: x {:?} with cos/sin of {} values", self.name(), l1.dims(), cos.len());
        }
        let &[s0, s1, s2, s3] = l1.stride() else { unreachable!("four dimensions") };
        let start = l1.start_offset();
        let plane = seq * d;
        let y = filled_vec(n * heads * plane, |y| {
            if plane == 0 {
                return;
            }
            y.par_chunks_mut(plane).enumerate().for_each(|(p, y)| {
                let base = start + (p / heads) * s0 + (p % heads) * s1;
                for t in 0..seq {
                    let (row, out) = (base + t * s2, &mut y[t * d..(t + 1) * d]);
                    let (c, s) = (&cos[t * half..(t + 1) * half], &sin[t * half..(t + 1) * half]);
                    for j in 0..half {
                        let (x1, x2) = (x[row + j * s3], x[row + (j + half) * s3]);
                        out[j].write(x1 * c[j] - x2 * s[j]);
                        out[j + half].write(x2 * c[j] + x1 * s[j]);
                    }
                }
            });
        });
        Ok((CpuStorage::F32(y), Shape::from((n, heads, seq, d))))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        Ok((Some(grad.apply_op3_no_bwd(cos, &sin.neg()?, &Rope)?), None, None))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_values::max_diff;
    use super::*;
    use candle_core::{Device, Var, D};

    /// candle's ops, as the training graph wrote the rotation before.
    fn reference(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Tensor {
        let half = x.dim(D::Minus1).unwrap() / 2;
        let x1 = x.narrow(D::Minus1, 0, half).unwrap();
        let x2 = x.narrow(D::Minus1, half, half).unwrap();
        let first = x1.broadcast_mul(cos).unwrap().sub(&x2.broadcast_mul(sin).unwrap()).unwrap();
        let second = x2.broadcast_mul(cos).unwrap().add(&x1.broadcast_mul(sin).unwrap()).unwrap();
        Tensor::cat(&[first, second], D::Minus1).unwrap()
    }

    /// Forward and input gradient equal candle's on odd shapes, for a contiguous input and for one
    /// permuted from `(n, seq, heads, d)` as the attention's projections are.
    #[test]
    fn matches_candle_rope_and_its_gradient() {
        let dev = Device::Cpu;
        for (i, &(n, heads, seq, d)) in [(1, 1, 1, 2), (3, 2, 5, 6), (2, 3, 7, 10)].iter().enumerate() {
            let half = d / 2;
            let angles: Vec<f32> = (0..seq * half).map(|j| j as f32 * 0.37).collect();
            let cos = Tensor::from_vec(angles.iter().map(|a| a.cos()).collect::<Vec<_>>(), (seq, half), &dev).unwrap();
            let sin = Tensor::from_vec(angles.iter().map(|a| a.sin()).collect::<Vec<_>>(), (seq, half), &dev).unwrap();
            let count = n * heads * seq * d;
            let v: Vec<f32> = (0..count).map(|j| ((j * 37 + i) % 101) as f32 / 20.0 - 2.5).collect();
            let w = Tensor::from_vec(
                (0..count).map(|j| ((j * 13) % 17) as f32 - 8.0).collect::<Vec<_>>(),
                (n, heads, seq, d),
                &dev,
            )
            .unwrap();
            for permuted in [false, true] {
                let stored = if permuted { (n, seq, heads, d) } else { (n, heads, seq, d) };
                let x = Var::from_tensor(&Tensor::from_vec(v.clone(), stored, &dev).unwrap()).unwrap();
                let view = if permuted { x.as_tensor().permute((0, 2, 1, 3)).unwrap() } else { x.as_tensor().clone() };
                let run = |y: Tensor| {
                    let g = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
                    (y, g.get(x.as_tensor()).unwrap().clone())
                };
                let (y_ref, g_ref) = run(reference(&view, &cos, &sin));
                let (y, g) = run(rope(&view, &cos, &sin).unwrap());
                assert!(max_diff(&y, &y_ref) < 1e-5, "case {i} permuted {permuted}: forward");
                assert!(max_diff(&g, &g_ref) < 1e-5, "case {i} permuted {permuted}: gradient");
                assert!(max_diff(&g_ref, &g_ref.zeros_like().unwrap()) > 0.1, "case {i}: a gradient that can fail");
            }
        }
    }
}

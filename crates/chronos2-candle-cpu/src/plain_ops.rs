//! The [`chronos2_core::ops::Ops`] methods that are plain candle tensor operations, the same for
//! inference ([`crate::ops::CandleCpuOps`]) and training ([`crate::train`]'s differentiable ops):
//! written once here and expanded inside both `impl Ops` blocks. The expansion site provides
//! `Tensor`, `Result`, `err` (candle error to core error) and a `self.device` field.
//!
//! `plain_candle_ops!(without_elementwise)` leaves out `relu`, `add` and `reshape` for an
//! implementation that runs them itself (inference does: candle's large element-wise ops run
//! on its own spinning thread pool, which competes with the GEMM's rayon threads for the cores,
//! and candle's reshape of a permuted tensor copies it on one thread).

macro_rules! plain_candle_ops {
    () => {
        fn relu(&self, x: &Tensor) -> Result<Tensor> {
            x.relu().map_err(err)
        }

        fn add(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
            a.add(b).map_err(err)
        }

        fn reshape(&self, x: &Tensor, shape: &[usize]) -> Result<Tensor> {
            x.reshape(shape).map_err(err)
        }

        crate::plain_ops::plain_candle_ops!(without_elementwise);
    };
    (without_elementwise) => {
        fn mean_keepdim(&self, x: &Tensor, axis: usize) -> Result<Tensor> {
            x.mean_keepdim(axis).map_err(err)
        }

        fn select(&self, keep: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
            let keep = keep.ge(0.5f64).and_then(|k| k.broadcast_as(a.shape())).map_err(err)?;
            keep.where_cond(a, b).map_err(err)
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
    };
}

pub(crate) use plain_candle_ops;

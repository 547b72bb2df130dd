//! Test helpers shared by the training ops' unit tests.

use candle_core::Tensor;

/// `n` deterministic values in [-1, 1), varied by `seed`.
pub(super) fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 37 + seed * 11) % 101) as f32 / 50.0 - 1.0).collect()
}

/// The largest absolute difference between two tensors of one shape.
pub(super) fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

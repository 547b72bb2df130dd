use candle_core::{Device, Tensor};

use super::rms_norm;

fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n).map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 2001) as f32 / 400.0 - 2.5).collect()
}

/// `x / sqrt(mean(x²) + eps) · w` per row, in f64.
fn naive(x: &[f32], w: &[f32], eps: f32) -> Vec<f64> {
    let d = w.len();
    x.chunks_exact(d)
        .flat_map(|row| {
            let ms = row.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / d as f64;
            let m = (ms + eps as f64).sqrt();
            row.iter().zip(w).map(move |(&v, &wv)| v as f64 / m * wv as f64)
        })
        .collect()
}

#[test]
fn rms_norm_matches_a_naive_reference_and_candle_on_odd_shapes() {
    // Rows 1, 3, 17, 65 (and a parallel 2240 x 768); widths below, at and off the 16 lanes.
    for (rows, d) in [(1, 1), (3, 15), (17, 33), (65, 768), (2240, 768), (5, 3072)] {
        let x = values(rows * d, 1);
        let w = values(d, 2);
        let ours = rms_norm(&x, &w, 1e-6);
        let reference = naive(&x, &w, 1e-6);
        assert_eq!(ours.len(), reference.len());
        for (i, (&o, &r)) in ours.iter().zip(&reference).enumerate() {
            assert!((o as f64 - r).abs() <= 1e-5 * (1.0 + r.abs()), "{rows}x{d} at {i}: {o} vs {r}");
        }
        let xt = Tensor::from_vec(x.clone(), (rows, d), &Device::Cpu).unwrap();
        let wt = Tensor::from_vec(w.clone(), d, &Device::Cpu).unwrap();
        let candle = candle_nn::ops::rms_norm(&xt, &wt, 1e-6).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for (&o, &c) in ours.iter().zip(&candle) {
            assert!((o - c).abs() <= 1e-5 * (1.0 + c.abs()), "{rows}x{d}: {o} vs candle {c}");
        }
    }
}

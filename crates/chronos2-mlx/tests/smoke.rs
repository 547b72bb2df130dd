//! Smoke test of the MLX build itself (mlx-rs 0.33 on this platform): matmul and the fused
//! kernels the backend relies on, against straightforward host computations.
#![cfg(mlx_backend)]

use chronos2_mlx::mlx_rs::fast::{self, ScaledDotProductAttentionMask};
use chronos2_mlx::mlx_rs::{Array, Dtype};

fn close(what: &str, actual: &[f32], expected: &[f32], rtol: f32) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    let scale = expected.iter().fold(0f32, |m, e| m.max(e.abs()));
    let worst = actual.iter().zip(expected).map(|(a, e)| (a - e).abs()).fold(0f32, f32::max);
    assert!(
        worst <= rtol * scale + 1e-6,
        "{what}: max |diff| {worst} > {rtol} * {scale}\nactual   {actual:?}\nexpected {expected:?}"
    );
}

fn values(a: &Array) -> Vec<f32> {
    a.as_dtype(Dtype::Float32).unwrap().contiguous().unwrap().as_slice::<f32>().to_vec()
}

#[test]
fn matmul() {
    let a = Array::from_slice(&[1f32, 2., 3., 4., 5., 6.], &[2, 3]);
    let b = Array::from_slice(&[1f32, -1., 0.5, 2., -3., 0.], &[3, 2]);
    let c = a.matmul(&b).unwrap();
    assert_eq!(c.shape(), &[2, 2]);
    close("matmul", &values(&c), &[-7., 3., -11.5, 6.], 1e-6);
}

#[test]
fn sdpa_scale_one_additive_mask() {
    // (1, 1, 2 queries, d 2), 3 keys; key 2 masked out with a finite f32::MIN.
    let q = Array::from_slice(&[1f32, 0., 0.5, -1.], &[1, 1, 2, 2]);
    let k = Array::from_slice(&[1f32, 2., -1., 0., 3., 3.], &[1, 1, 3, 2]);
    let v = Array::from_slice(&[1f32, 10., 2., 20., 3., 30.], &[1, 1, 3, 2]);
    let mask = Array::from_slice(&[0f32, 0., f32::MIN], &[1, 1, 1, 3]);
    let out = fast::scaled_dot_product_attention(
        &q,
        &k,
        &v,
        1.0,
        ScaledDotProductAttentionMask::Array(&mask),
        None::<&Array>,
    )
    .unwrap();
    let mut expected = Vec::new();
    for qi in [[1f32, 0.], [0.5, -1.]] {
        let s: Vec<f32> = [[1f32, 2.], [-1., 0.]].iter().map(|kj| qi[0] * kj[0] + qi[1] * kj[1]).collect();
        let m = s[0].max(s[1]);
        let e: Vec<f32> = s.iter().map(|x| (x - m).exp()).collect();
        let z = e[0] + e[1];
        expected.extend([(e[0] * 1. + e[1] * 2.) / z, (e[0] * 10. + e[1] * 20.) / z]);
    }
    close("sdpa", &values(&out), &expected, 1e-6);

    // Every key masked: uniform weights (mean of v), no NaN.
    let all = Array::from_slice(&[f32::MIN; 3], &[1, 1, 1, 3]);
    let out =
        fast::scaled_dot_product_attention(&q, &k, &v, 1.0, ScaledDotProductAttentionMask::Array(&all), None::<&Array>)
            .unwrap();
    close("sdpa fully masked", &values(&out), &[2., 20., 2., 20.], 1e-6);
}

#[test]
fn rms_norm() {
    let x = [1f32, -2., 3., 0.5, 4., -1., 0., 2.];
    let w = [0.5f32, 1., 2., -1.];
    let eps = 1e-6;
    let out = fast::rms_norm(Array::from_slice(&x, &[2, 4]), Some(&Array::from_slice(&w, &[4])), eps).unwrap();
    let expected: Vec<f32> = x
        .chunks(4)
        .flat_map(|r| {
            let inv = 1.0 / (r.iter().map(|v| v * v).sum::<f32>() / 4.0 + eps).sqrt();
            r.iter().zip(&w).map(move |(v, w)| v * inv * w).collect::<Vec<_>>()
        })
        .collect();
    close("rms_norm", &values(&out), &expected, 1e-6);
}

#[test]
fn rope_non_traditional() {
    // (1 batch, 1 head, seq 5, d 8), base 10000, offset 0: rotate-half form.
    let (seq, d, base) = (5usize, 8usize, 10000f32);
    let x: Vec<f32> = (0..seq * d).map(|i| ((i * 7 % 11) as f32 - 5.0) / 3.0).collect();
    let out =
        fast::rope(Array::from_slice(&x, &[1, 1, seq as i32, d as i32]), d as i32, false, base, 1.0, 0, None).unwrap();
    let half = d / 2;
    let mut expected = vec![0f32; seq * d];
    for p in 0..seq {
        for j in 0..half {
            let inv_freq = 1.0 / base.powf((2 * j) as f32 / d as f32);
            let (s, c) = (p as f32 * inv_freq).sin_cos();
            let (x1, x2) = (x[p * d + j], x[p * d + half + j]);
            expected[p * d + j] = x1 * c - x2 * s;
            expected[p * d + half + j] = x2 * c + x1 * s;
        }
    }
    close("rope", &values(&out), &expected, 1e-5);
}

#[test]
fn available() {
    let device = chronos2_mlx::check_available().unwrap();
    println!("MLX device: {device}");
}

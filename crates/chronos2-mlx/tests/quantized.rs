//! Quantized linear layers: `MlxOps::linear_from_quantized` (`quantized_matmul`) against the host
//! dequantized weight, and `chronos2_core::quant::quantize` against MLX's own `quantize`.
#![cfg(mlx_backend)]

use chronos2_core::ops::Ops;
use chronos2_core::quant::{dequantize, quantize};
use chronos2_mlx::mlx_rs::{self, Array};
use chronos2_mlx::MlxOps;

fn rand_vec(seed: &mut u64, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

#[test]
fn quantized_linear_matches_dequantized_host_linear() {
    let ops = MlxOps::new();
    let mut seed = 0x9e3779b97f4a7c15u64;
    for (bits, group) in [(8, 64), (4, 64), (4, 32), (2, 128), (8, 128)] {
        let (rows, in_dim, out_dim) = (5, 256, 24);
        let w = rand_vec(&mut seed, out_dim * in_dim);
        let b = rand_vec(&mut seed, out_dim);
        let x = rand_vec(&mut seed, rows * in_dim);
        let q = quantize(&w, out_dim, in_dim, bits, group).unwrap();
        let wd = dequantize(&q);
        for bias in [None, Some(&b[..])] {
            let layer = ops.linear_from_quantized(&q, bias).unwrap();
            let fp = ops.linear_footprint(&layer);
            assert!(fp.quantized && fp.out_dim == out_dim && fp.in_dim == in_dim);
            assert_eq!(fp.bytes, q.footprint_bytes() + bias.map_or(0, |b| 4 * b.len()));
            assert_eq!(fp.params, out_dim * in_dim + bias.map_or(0, |b| b.len()));
            assert!(ops.linear_float_weights(&layer).unwrap().is_none());
            let y = ops.to_vec(&ops.linear(&ops.tensor(&x, &[1, rows, in_dim]).unwrap(), &layer).unwrap()).unwrap();
            let mut want = vec![0f32; rows * out_dim];
            for r in 0..rows {
                for o in 0..out_dim {
                    let acc: f64 = (0..in_dim).map(|i| x[r * in_dim + i] as f64 * wd[o * in_dim + i] as f64).sum();
                    want[r * out_dim + o] = (acc + bias.map_or(0.0, |b| b[o] as f64)) as f32;
                }
            }
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            let worst = y.iter().zip(&want).map(|(a, e)| (a - e).abs()).fold(0f32, f32::max);
            assert!(worst <= 1e-5 * scale + 1e-6, "bits {bits} group {group}: max diff {worst} (scale {scale})");
        }
    }
}

#[test]
fn core_quantize_is_bit_exact_with_mlx_quantize() {
    let mut seed = 12345u64;
    for (bits, group) in [(8, 64), (4, 64), (4, 32), (2, 128)] {
        let (out_dim, in_dim) = (16, 256);
        let mut w = rand_vec(&mut seed, out_dim * in_dim);
        // include all-negative and all-positive groups
        w[..group].iter_mut().for_each(|v| *v = -v.abs());
        w[group..2 * group].iter_mut().for_each(|v| *v = v.abs());
        let q = quantize(&w, out_dim, in_dim, bits, group).unwrap();
        let (wq, scales, biases) =
            mlx_rs::ops::quantize(Array::from_slice(&w, &[out_dim as i32, in_dim as i32]), group as i32, bits as i32)
                .unwrap();
        assert_eq!(wq.as_slice::<u32>(), &q.packed[..], "codes, bits {bits} group {group}");
        assert_eq!(scales.as_slice::<f32>(), &q.scales[..], "scales, bits {bits} group {group}");
        assert_eq!(biases.as_slice::<f32>(), &q.biases[..], "biases, bits {bits} group {group}");
    }
}

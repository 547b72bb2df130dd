//! Every [`Ops`] method of [`CudaOps`] against the candle CPU backend (itself checked against the
//! reference by its parity tests) on pseudo-random inputs, and bf16 linears against an f64
//! oracle of the bf16-rounded operands.
#![allow(clippy::needless_range_loop)]

mod common;

use chronos2_candle_cpu::CandleCpuOps;
use chronos2_core::ops::Ops;
use chronos2_core::Precision;
use chronos2_test_fixtures::{expect_close, Rng};

const RTOL: f32 = 1e-5;

/// Runs `$body` (an expression over ops `$o`) on the CPU and GPU backends and compares.
macro_rules! both {
    ($what:expr, $gpu:expr, |$o:ident| $body:expr) => {{
        let cpu_out = {
            let $o = &CandleCpuOps::new();
            let t = $body;
            $o.to_vec(&t).unwrap()
        };
        let gpu_out = {
            let $o = $gpu;
            let t = $body;
            $o.to_vec(&t).unwrap()
        };
        expect_close($what, &gpu_out, &cpu_out, RTOL);
    }};
}

#[test]
#[ignore = "needs an NVIDIA GPU (run with --include-ignored on the device)"]
fn elementwise_norm_and_layout_ops_match_the_cpu_backend() {
    let gpu = &common::gpu();
    let mut rng = Rng(7);
    let (a, b) = (rng.vec(2 * 5 * 768), rng.vec(2 * 5 * 768));
    let w = rng.vec(768);
    let keep: Vec<f32> = (0..10).map(|i| (i % 3 == 0) as u8 as f32).collect();
    both!("add", gpu, |o| o.add(&o.tensor(&a, &[2, 5, 768]).unwrap(), &o.tensor(&b, &[2, 5, 768]).unwrap()).unwrap());
    both!("relu", gpu, |o| o.relu(&o.tensor(&a, &[2, 5, 768]).unwrap()).unwrap());
    both!("rms_norm", gpu, |o| o
        .rms_norm(&o.tensor(&a, &[2, 5, 768]).unwrap(), &o.tensor(&w, &[768]).unwrap(), 1e-6)
        .unwrap());
    both!("rms_norm d=8", gpu, |o| o
        .rms_norm(&o.tensor(&a[..80], &[10, 8]).unwrap(), &o.tensor(&w[..8], &[8]).unwrap(), 1e-6)
        .unwrap());
    for axis in 0..3 {
        both!(&format!("mean_keepdim axis {axis}"), gpu, |o| o
            .mean_keepdim(&o.tensor(&a, &[2, 5, 768]).unwrap(), axis)
            .unwrap());
    }
    both!("select (broadcast keep)", gpu, |o| o
        .select(
            &o.tensor(&keep, &[2, 5, 1]).unwrap(),
            &o.tensor(&a, &[2, 5, 768]).unwrap(),
            &o.tensor(&b, &[2, 5, 768]).unwrap()
        )
        .unwrap());
    both!("reshape", gpu, |o| o.reshape(&o.tensor(&a, &[2, 5, 768]).unwrap(), &[10, 12, 64]).unwrap());
    both!("permute 0213", gpu, |o| o.permute(&o.tensor(&a, &[2, 5, 12, 64]).unwrap(), &[0, 2, 1, 3]).unwrap());
    both!("permute 5-d", gpu, |o| o.permute(&o.tensor(&a, &[2, 5, 3, 4, 64]).unwrap(), &[0, 2, 3, 1, 4]).unwrap());
    both!("narrow axis 0 (view)", gpu, |o| o.narrow(&o.tensor(&a, &[10, 768]).unwrap(), 0, 3, 4).unwrap());
    both!("narrow of a view then add", gpu, |o| {
        let v = o.narrow(&o.tensor(&a, &[10, 768]).unwrap(), 0, 3, 4).unwrap();
        o.add(&v, &v).unwrap()
    });
    both!("narrow axis 1", gpu, |o| o.narrow(&o.tensor(&a, &[2, 5, 768]).unwrap(), 1, 2, 3).unwrap());
    both!("concat axis 1", gpu, |o| {
        let x = o.tensor(&a, &[2, 5, 768]).unwrap();
        let y = o.tensor(&b[..768 * 2], &[2, 1, 768]).unwrap();
        o.concat(&[o.narrow(&x, 1, 0, 3).unwrap(), y, o.narrow(&x, 1, 3, 2).unwrap()], 1).unwrap()
    });
    both!("concat axis 0", gpu, |o| o
        .concat(&[o.tensor(&a[..768], &[1, 768]).unwrap(), o.tensor(&b[..1536], &[2, 768]).unwrap()], 0)
        .unwrap());
    both!("take_rows", gpu, |o| o.take_rows(&o.tensor(&a, &[10, 768]).unwrap(), &[9, 0, 3, 3, 5]).unwrap());
    both!("broadcast_to", gpu, |o| o.broadcast_to(&o.tensor(&w, &[768]).unwrap(), &[4, 1, 768]).unwrap());
    both!("broadcast_to keepdim", gpu, |o| o
        .broadcast_to(&o.tensor(&a[..5 * 768], &[1, 5, 768]).unwrap(), &[3, 5, 768])
        .unwrap());
    let (cos, sin) = (rng.vec(5 * 32), rng.vec(5 * 32));
    both!("rope", gpu, |o| o
        .rope(
            &o.tensor(&a[..2 * 3 * 5 * 64], &[2, 3, 5, 64]).unwrap(),
            &o.tensor(&cos, &[5, 32]).unwrap(),
            &o.tensor(&sin, &[5, 32]).unwrap()
        )
        .unwrap());
}

#[test]
#[ignore = "needs an NVIDIA GPU (run with --include-ignored on the device)"]
fn fp32_linear_matches_the_cpu_backend() {
    let gpu = &common::gpu();
    let mut rng = Rng(11);
    for (rows, in_dim, out_dim, bias) in [(1, 768, 3072, false), (37, 48, 768, true), (300, 3072, 768, false)] {
        let x = rng.vec(rows * in_dim);
        let w = rng.vec(out_dim * in_dim);
        let b = bias.then(|| rng.vec(out_dim));
        both!(&format!("linear {rows}x{in_dim}->{out_dim}"), gpu, |o| {
            let layer = o.linear_from_host(&w, out_dim, in_dim, b.as_deref()).unwrap();
            o.linear(&o.tensor(&x, &[rows, in_dim]).unwrap(), &layer).unwrap()
        });
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU (run with --include-ignored on the device)"]
fn bf16_linear_matches_an_f64_product_of_the_rounded_operands() {
    use chronos2_cuda::{bf16_bits, bf16_to_f32};
    let gpu = &common::gpu();
    let mut rng = Rng(13);
    let (rows, in_dim, out_dim) = (70, 768, 256);
    let x = rng.vec(rows * in_dim);
    let w = rng.vec(out_dim * in_dim);
    let b = rng.vec(out_dim);
    let round = |v: &[f32]| v.iter().map(|&f| bf16_to_f32(bf16_bits(f)) as f64).collect::<Vec<f64>>();
    let (xr, wr) = (round(&x), round(&w));
    let mut expected = vec![0f32; rows * out_dim];
    for r in 0..rows {
        for o in 0..out_dim {
            let dot: f64 = (0..in_dim).map(|k| xr[r * in_dim + k] * wr[o * in_dim + k]).sum();
            expected[r * out_dim + o] = (dot + b[o] as f64) as f32;
        }
    }
    let layer = gpu.linear_in_precision(&w, out_dim, in_dim, Some(&b), Precision::Bf16).unwrap();
    let y = gpu.to_vec(&gpu.linear(&gpu.tensor(&x, &[rows, in_dim]).unwrap(), &layer).unwrap()).unwrap();
    expect_close("bf16 linear vs f64 of bf16 operands", &y, &expected, 1e-5);
    assert_eq!(gpu.linear_footprint(&layer).bytes, out_dim * in_dim * 2 + out_dim * 4);
    assert!(gpu.linear_float_weights(&layer).unwrap().is_none());
}

#[test]
#[ignore = "needs an NVIDIA GPU (run with --include-ignored on the device)"]
fn attention_matches_the_cpu_backend_with_masked_keys_and_fully_masked_rows() {
    let gpu = &common::gpu();
    let mut rng = Rng(17);
    // (n, heads, len, d): time attention shapes (d 64, one and several key tiles), a tiny head
    // and a group-attention-like shape (many rows, few keys).
    for (n, heads, len, d) in [(2, 12, 35, 64), (1, 12, 130, 64), (3, 2, 9, 6), (40, 4, 3, 8), (1, 1, 1, 64)] {
        let scale = 3.0; // sharp attention, as the unscaled model's
        let q: Vec<f32> = rng.vec(n * heads * len * d).iter().map(|v| v * scale).collect();
        let k = rng.vec(n * heads * len * d);
        let v = rng.vec(n * heads * len * d);
        // Row 0: every other key masked; the last row (when n > 1): every key masked.
        let mut mask = vec![0f32; n * len];
        for j in (0..len).step_by(2) {
            mask[j] = f32::MIN;
        }
        if n > 1 {
            mask[(n - 1) * len..].fill(f32::MIN);
        }
        both!(&format!("attention n{n} h{heads} len{len} d{d}"), gpu, |o| {
            let s = [n, heads, len, d];
            o.attention(
                &o.tensor(&q, &s).unwrap(),
                &o.tensor(&k, &s).unwrap(),
                &o.tensor(&v, &s).unwrap(),
                &o.tensor(&mask, &[n, 1, 1, len]).unwrap(),
            )
            .unwrap()
        });
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU (run with --include-ignored on the device)"]
fn quantized_precisions_are_refused_naming_fp32_and_bf16() {
    let gpu = common::gpu();
    for p in [Precision::Int8, Precision::Int4, Precision::W8a8] {
        assert!(!gpu.supports_precision(p));
        let e = gpu.unsupported_precision(p).to_string();
        assert!(e.contains("cuda") && e.contains("fp32, bf16"), "{e}");
    }
}

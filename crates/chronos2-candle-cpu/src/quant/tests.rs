use candle_core::{Device, Tensor};
use chronos2_core::quant::{dequantize, quantize, QuantizedWeight};
use chronos2_test_fixtures::{random_values as values, xorshift_weights};

use super::{Isa, QuantizedLinear, QuantizedMatmul};

fn isas() -> Vec<Isa> {
    Isa::all_available()
}

/// `x · dequantize(W)^T + b`, naive, in f64 (eight independent partial sums per dot product),
/// with the per-element bound `sum |x_k w_k|` for the tolerance.
fn reference(x: &[f32], m: usize, w: &QuantizedWeight, bias: Option<&[f32]>) -> (Vec<f32>, Vec<f32>) {
    let (n, k) = (w.out_dim, w.in_dim);
    let wd = dequantize(w);
    let mut y = vec![0f32; m * n];
    let mut mag = vec![0f32; m * n];
    for i in 0..m {
        let xr = &x[i * k..(i + 1) * k];
        for j in 0..n {
            let wr = &wd[j * k..(j + 1) * k];
            let (mut acc, mut abs) = ([0f64; 8], [0f64; 8]);
            for (xc, wc) in xr.chunks(8).zip(wr.chunks(8)) {
                for l in 0..xc.len() {
                    let p = xc[l] as f64 * wc[l] as f64;
                    acc[l] += p;
                    abs[l] += p.abs();
                }
            }
            let b = bias.map_or(0.0, |b| b[j] as f64);
            y[i * n + j] = (acc.iter().sum::<f64>() + b) as f32;
            mag[i * n + j] = (abs.iter().sum::<f64>() + b.abs()) as f32;
        }
    }
    (y, mag)
}

fn check(got: &[f32], want: &[f32], mag: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (idx, ((&g, &w), &a)) in got.iter().zip(want).zip(mag).enumerate() {
        let tol = 2e-5 * a + 1e-6;
        assert!((g - w).abs() <= tol, "{what}: element {idx}: got {g}, want {w} (tol {tol})");
    }
}

fn quantized(out_dim: usize, in_dim: usize, bits: u32, group_size: usize, seed: u64) -> QuantizedWeight {
    let w = values(out_dim * in_dim, seed, 0.05);
    quantize(&w, out_dim, in_dim, bits, group_size).unwrap()
}

#[test]
fn small_shapes_every_kernel_bits_group_and_bias() {
    // Odd m (partial row blocks), out_dim not a multiple of the 32-row strip.
    for bits in [8, 4] {
        for (gs, n, k) in [(64, 100, 256), (32, 33, 96), (128, 64, 384), (64, 1, 64)] {
            let w = quantized(n, k, bits, gs, 11 + n as u64);
            let bias = values(n, 5, 0.3);
            for m in [1, 2, 7, 12, 13, 25, 30] {
                let x = values(m * k, m as u64, 1.0);
                for with_bias in [false, true] {
                    let b = with_bias.then_some(&bias[..]);
                    let (want, mag) = reference(&x, m, &w, b);
                    for isa in isas() {
                        let mm = QuantizedMatmul::with_isa(&w, isa).unwrap();
                        let mut y = vec![f32::NAN; m * n];
                        mm.matmul(&x, m, b, &mut y).unwrap();
                        check(
                            &y,
                            &want,
                            &mag,
                            &format!("{isa:?} {bits} bits gs {gs} ({m}x{k})x({k}x{n}) bias {with_bias}"),
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn model_shapes_match_naive_dequantized_matmul() {
    // Chronos-2 MLP shapes, m from one row to beyond the k-blocking threshold (272 rows).
    for bits in [8, 4] {
        for (n, k) in [(3072, 768), (768, 3072)] {
            let w = quantized(n, k, bits, 64, bits as u64 * 1000 + n as u64);
            let bias = values(n, 3, 0.1);
            let mm = QuantizedMatmul::new(&w).unwrap();
            for m in [1, 11, 13, 299] {
                let x = values(m * k, 77 + m as u64, 1.0);
                let (want, mag) = reference(&x, m, &w, Some(&bias));
                let mut y = vec![f32::NAN; m * n];
                mm.matmul(&x, m, Some(&bias), &mut y).unwrap();
                check(&y, &want, &mag, &format!("{:?} {bits} bits ({m}x{k})x({k}x{n})", mm.isa()));
            }
        }
    }
}

#[test]
fn every_kernel_on_a_k_blocked_shape() {
    // Several row blocks and k over many 128-blocks: partial tiles are accumulated; and more
    // rows than one L2 block of x (about 500), so panels are dequantized once per block.
    for (m, n, k) in [(181, 70, 1024), (1100, 40, 256)] {
        for bits in [8, 4] {
            let w = quantized(n, k, bits, 64, 9);
            let x = values(m * k, 4, 1.0);
            let (want, mag) = reference(&x, m, &w, None);
            for isa in isas() {
                let mm = QuantizedMatmul::with_isa(&w, isa).unwrap();
                let mut y = vec![f32::NAN; m * n];
                mm.matmul(&x, m, None, &mut y).unwrap();
                check(&y, &want, &mag, &format!("{isa:?} {bits} bits k-blocked"));
            }
        }
    }
}

#[test]
fn candle_forward_over_leading_axes() {
    let (n, k) = (96, 128);
    let w = quantized(n, k, 4, 64, 21);
    let bias = values(n, 8, 0.2);
    let layer = QuantizedLinear::new(w.clone(), Some(bias.clone())).unwrap();
    // Same layer through the float entry point.
    let wf = values(n * k, 21, 0.05);
    let same = QuantizedLinear::quantize(&wf, n, k, Some(&bias), 4, 64).unwrap();
    assert_eq!(same.forward_slice(&values(k, 1, 1.0), 1).unwrap(), layer.forward_slice(&values(k, 1, 1.0), 1).unwrap());
    let x = values(2 * 3 * k, 6, 1.0);
    let xt = Tensor::from_slice(&x, (2, 3, k), &Device::Cpu).unwrap();
    let y = layer.forward(&xt).unwrap();
    assert_eq!(y.dims(), &[2, 3, n]);
    let got = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let (want, mag) = reference(&x, 6, &w, Some(&bias));
    check(&got, &want, &mag, "candle forward");
    // A non-contiguous input (transposed view) gives the same rows.
    let xt2 = Tensor::from_slice(&x, (6, k), &Device::Cpu).unwrap().t().unwrap().contiguous().unwrap().t().unwrap();
    assert!(!xt2.is_contiguous());
    let got2 = layer.forward(&xt2).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(got, got2);
    // Wrong feature count is an error, not a panic.
    let bad = Tensor::zeros((2, k + 64), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(layer.forward(&bad).is_err());
    assert_eq!(layer.out_dim(), n);
    assert_eq!(layer.in_dim(), k);
}

#[test]
fn rejects_unsupported_weights() {
    let w = values(32 * 64, 1, 0.1);
    let q2 = quantize(&w, 32, 64, 2, 64).unwrap();
    assert!(QuantizedMatmul::new(&q2).is_err());
    let q8 = quantize(&w, 32, 64, 8, 64).unwrap();
    assert!(QuantizedLinear::new(q8.clone(), Some(vec![0.0; 31])).is_err());
    let layer = QuantizedLinear::new(q8, None).unwrap();
    // Codes plus scales and biases, strips padded to 32 rows: 32 x 64 bytes + 32 x 2 x 4 bytes.
    assert_eq!(layer.footprint_bytes(), 32 * 64 + 32 * 2 * 4);
    // m = 0 is fine.
    assert!(layer.forward_slice(&[], 0).unwrap().is_empty());
    // Mis-sized arguments are errors, not panics.
    assert!(layer.forward_slice(&[0.0; 63], 1).is_err());
    let mut y = vec![0f32; 31];
    assert!(layer.matmul().matmul(&[0.0; 64], 1, None, &mut y).is_err());
    assert!(layer.matmul().matmul(&[0.0; 64], 1, Some(&[0.0; 5]), &mut [0f32; 32]).is_err());
}

#[test]
fn outputs_match_mlx_quantized_matmul() {
    // Reference: mlx-cpu 0.32.2, Python (w = xorshift_weights(8 * 128, 2024) as (8, 128),
    // x = xorshift_weights(3 * 128, 7) * 16 as (3, 128), float32):
    //   q, s, b = mx.quantize(mx.array(w), group_size=64, bits=B)
    //   y = mx.quantized_matmul(mx.array(x), q, s, b, transpose=True, group_size=64, bits=B)
    // (MLX's own result is within 1e-7 of the f64 product with its dequantized weight.)
    const MLX_Y8: [f32; 24] = [
        -0.17398162,
        -0.07739276,
        -0.2037228,
        -0.1808132,
        -0.21675411,
        0.27626786,
        0.056506135,
        0.06823641,
        0.036225893,
        0.06316121,
        0.05229239,
        -0.08424554,
        0.331536,
        -0.088254094,
        0.298671,
        -0.18164957,
        0.0673624,
        -0.070754185,
        0.073200494,
        -0.0015854016,
        -0.1993917,
        0.012639221,
        -0.32458028,
        0.08523691,
    ];
    const MLX_Y4: [f32; 24] = [
        -0.16862215,
        -0.0566092,
        -0.18147255,
        -0.18465123,
        -0.20939769,
        0.27419484,
        0.04811894,
        0.0874715,
        0.0373893,
        0.044192955,
        0.05545699,
        -0.07899451,
        0.33529305,
        -0.080743894,
        0.3067466,
        -0.17971304,
        0.07029483,
        -0.0696291,
        0.0599934,
        -0.0102817565,
        -0.22484912,
        0.0049357302,
        -0.31941962,
        0.07957563,
    ];
    let w = xorshift_weights(8 * 128, 2024);
    let x: Vec<f32> = xorshift_weights(3 * 128, 7).iter().map(|v| v * 16.0).collect();
    for (bits, want) in [(8, MLX_Y8), (4, MLX_Y4)] {
        let q = quantize(&w, 8, 128, bits, 64).unwrap();
        for isa in isas() {
            let y = QuantizedLinear::from_matmul(QuantizedMatmul::with_isa(&q, isa).unwrap(), None)
                .unwrap()
                .forward_slice(&x, 3)
                .unwrap();
            for (i, (&g, &e)) in y.iter().zip(&want).enumerate() {
                assert!((g - e).abs() <= 5e-7, "{isa:?} {bits} bits, output {i}: {g} vs MLX {e}");
            }
        }
    }
}

use chronos2_core::quant::{dequantize, quantize, QuantizedWeight};
use chronos2_test_fixtures::random_values as values;

use super::{W8a8Isa, W8a8Matmul, GROUP};

fn weight(n: usize, k: usize, seed: u64) -> QuantizedWeight {
    quantize(&values(n * k, seed, 0.05), n, k, 8, GROUP).unwrap()
}

/// `x` quantized per row and group of 64 as the module docs say (asymmetric, `sx = (max - min) /
/// 255`, codes rounded to nearest, ties to even), back in f64.
fn quantized_activations(x: &[f32], k: usize) -> Vec<f64> {
    let mut xd = vec![0f64; x.len()];
    for (row, out) in x.chunks(k).zip(xd.chunks_mut(k)) {
        for (g, o) in row.chunks(GROUP).zip(out.chunks_mut(GROUP)) {
            let mn = g.iter().fold(f32::INFINITY, |a, &v| a.min(v));
            let mx = g.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
            let inv = if mx > mn { 255.0 / (mx - mn) } else { 0.0 };
            let sx = ((mx - mn) / 255.0) as f64;
            for (v, d) in g.iter().zip(o.iter_mut()) {
                let q = ((v - mn) * inv).round_ties_even().clamp(0.0, 255.0);
                *d = q as f64 * sx + mn as f64;
            }
        }
    }
    xd
}

/// The product with the dequantized weight of `x` quantized per row and group of 64, in f64;
/// and the bound `Σ |x_k w_k|`.
fn reference(x: &[f32], m: usize, w: &QuantizedWeight) -> (Vec<f64>, Vec<f64>) {
    let (n, k) = (w.out_dim, w.in_dim);
    let wd = dequantize(w);
    let xd = quantized_activations(x, k);
    let (mut y, mut mag) = (vec![0f64; m * n], vec![0f64; m * n]);
    for i in 0..m {
        for j in 0..n {
            for t in 0..k {
                let p = xd[i * k + t] * wd[j * k + t] as f64;
                y[i * n + j] += p;
                mag[i * n + j] += p.abs();
            }
        }
    }
    (y, mag)
}

#[test]
fn every_kernel_gives_identical_numbers_close_to_the_quantized_product() {
    for (n, k) in [(1, 64), (33, 128), (70, 192), (96, 768)] {
        let w = weight(n, k, n as u64);
        let bias = values(n, 2, 0.5);
        for m in [1, 3, 17, 65] {
            let mut x = values(m * k, 10 + m as u64, 1.0);
            // A row group of zeros and one of equal values (range 0) stay exact; a one-sided
            // (post-ReLU-like) group.
            x[..GROUP].fill(0.0);
            if k >= 3 * GROUP {
                x[GROUP..2 * GROUP].fill(0.75);
                x[2 * GROUP..3 * GROUP].iter_mut().for_each(|v| *v = v.max(0.0));
            }
            let (want, mag) = reference(&x, m, &w);
            let mut first: Option<Vec<f32>> = None;
            for isa in W8a8Isa::all_available() {
                let mm = W8a8Matmul::with_isa(&w, isa).unwrap();
                let mut y = vec![f32::NAN; m * n];
                mm.matmul(&x, m, Some(&bias), &mut y).unwrap();
                for (idx, &g) in y.iter().enumerate() {
                    let expect = want[idx] + bias[idx % n] as f64;
                    let tol = 1e-5 * (mag[idx] + bias[idx % n].abs() as f64) + 1e-6;
                    assert!((g as f64 - expect).abs() <= tol, "{isa:?} ({m}x{k})x({k}x{n}) [{idx}]: {g} vs {expect}");
                }
                match &first {
                    None => first = Some(y),
                    Some(f) => assert_eq!(&y, f, "{isa:?} differs from the portable kernel ({m}x{k})x({k}x{n})"),
                }
            }
        }
    }
}

#[test]
fn stays_within_the_activation_quantization_error_of_the_float_product() {
    // Against the unquantized x: each group's activation error is at most sx / 2 per element,
    // sx = (max - min) / 255.
    let (m, n, k) = (5, 40, 256);
    let w = weight(n, k, 3);
    let wd = dequantize(&w);
    let x = values(m * k, 4, 1.0);
    let mut y = vec![0f32; m * n];
    W8a8Matmul::new(&w).unwrap().matmul(&x, m, None, &mut y).unwrap();
    for i in 0..m {
        for j in 0..n {
            let (mut exact, mut bound) = (0f64, 0f64);
            for g in 0..k / GROUP {
                let xs = &x[i * k + g * GROUP..i * k + (g + 1) * GROUP];
                let mn = xs.iter().fold(f32::INFINITY, |a, &v| a.min(v));
                let mx = xs.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
                let sx = (mx - mn) as f64 / 255.0;
                for t in g * GROUP..(g + 1) * GROUP {
                    exact += x[i * k + t] as f64 * wd[j * k + t] as f64;
                    bound += wd[j * k + t].abs() as f64 * sx / 2.0;
                }
            }
            assert!((y[i * n + j] as f64 - exact).abs() <= bound * 1.01 + 1e-6, "[{i},{j}]");
        }
    }
}

#[test]
fn rejects_other_formats_and_mis_sized_calls() {
    let w = values(32 * 128, 1, 0.1);
    assert!(W8a8Matmul::new(&quantize(&w, 32, 128, 4, 64).unwrap()).is_err());
    assert!(W8a8Matmul::new(&quantize(&w, 32, 128, 8, 128).unwrap()).is_err());
    let mm = W8a8Matmul::new(&quantize(&w, 32, 128, 8, 64).unwrap()).unwrap();
    assert_eq!(mm.footprint_bytes(), 32 * 128 + 2 * 3 * 32 * 4);
    let mut y = vec![0f32; 32];
    assert!(mm.matmul(&[0.0; 127], 1, None, &mut y).is_err());
    assert!(mm.matmul(&[0.0; 128], 1, Some(&[0.0; 3]), &mut y).is_err());
    assert!(mm.matmul(&[], 0, None, &mut []).is_ok());
}

/// The AMX-INT8 kernel gives the VNNI kernel's numbers bit for bit (same integer sums, same float
/// operations), over partial and whole 32-row blocks, parallel tasks and widths not a multiple
/// of 32.
#[cfg(target_arch = "x86_64")]
#[test]
fn amx_gives_the_vnni_numbers() {
    if !W8a8Isa::Amx.available() {
        println!("SKIPPED: no AMX (amx_gives_the_vnni_numbers)");
        return;
    }
    for (n, k) in [(33, 128), (70, 192), (3072, 768), (768, 3072)] {
        let w = weight(n, k, k as u64);
        let bias = values(n, 2, 0.5);
        let (amx, vnni) =
            (W8a8Matmul::with_isa(&w, W8a8Isa::Amx).unwrap(), W8a8Matmul::with_isa(&w, W8a8Isa::Vnni).unwrap());
        for m in [1, 16, 17, 32, 33, 300] {
            let mut x = values(m * k, 20 + m as u64, 1.0);
            x[..GROUP].iter_mut().for_each(|v| *v = v.max(0.0));
            let (mut ya, mut yv) = (vec![f32::NAN; m * n], vec![f32::NAN; m * n]);
            amx.matmul(&x, m, Some(&bias), &mut ya).unwrap();
            vnni.matmul(&x, m, Some(&bias), &mut yv).unwrap();
            assert_eq!(ya, yv, "AMX vs VNNI ({m}x{k})x({k}x{n})");
        }
    }
    println!("AMX-INT8 kernel tested");
}

/// The AVX2 kernel gives the portable kernel's numbers bit for bit on shapes that are not
/// multiples of its tiles (rows not of 6, outputs not of 16 or 32, an odd number of groups),
/// with constant, one-sided, large, tiny and tie-rounding groups, on a product large enough
/// for parallel quantization and strip tasks, and on 2.5 million activations.
#[cfg(target_arch = "x86_64")]
#[test]
fn avx2_gives_the_portable_numbers_on_odd_shapes() {
    if !W8a8Isa::Avx2.available() {
        println!("SKIPPED: no AVX2 + FMA (avx2_gives_the_portable_numbers_on_odd_shapes)");
        return;
    }
    for (n, k) in [(1, 64), (17, 64), (47, 320), (100, 576), (300, 768)] {
        let w = weight(n, k, 7 + n as u64);
        let bias = values(n, 5, 0.5);
        let (avx2, plain) =
            (W8a8Matmul::with_isa(&w, W8a8Isa::Avx2).unwrap(), W8a8Matmul::with_isa(&w, W8a8Isa::Portable).unwrap());
        // Many rows where the product is cheap: about one value in 10^5 has a product
        // `(v - min) · 255 / range` that f32 rounds to a half-way value, where a fused
        // multiply-add in the quantizer would round the other way.
        let rows: &[usize] = if n < 32 { &[1, 2, 5, 7, 13, 50, 20_000] } else { &[1, 2, 5, 7, 13, 50] };
        for &m in rows {
            let mut x = values(m * k, 30 + m as u64, 1.0);
            let groups: Vec<&mut [f32]> = x.chunks_mut(GROUP).collect();
            for (g, group) in groups.into_iter().enumerate() {
                match g % 6 {
                    0 => group.fill(-2.5),
                    1 => group.iter_mut().for_each(|v| *v = v.max(0.0)),
                    2 => group.iter_mut().for_each(|v| *v *= 3.0e4),
                    3 => group.iter_mut().for_each(|v| *v *= 1.0e-6),
                    // Range 127.5 (codes `2 (v - min)`): 0.25 + j / 2 lies half-way between codes.
                    4 => {
                        for (j, v) in group.iter_mut().enumerate() {
                            *v = 0.25 + 0.5 * j as f32;
                        }
                        group[0] = 0.0;
                        group[1] = 127.5;
                    }
                    _ => {}
                }
            }
            let (mut ya, mut yp) = (vec![f32::NAN; m * n], vec![f32::NAN; m * n]);
            avx2.matmul(&x, m, Some(&bias), &mut ya).unwrap();
            plain.matmul(&x, m, Some(&bias), &mut yp).unwrap();
            assert!(ya.iter().all(|v| v.is_finite()), "({m}x{k})x({k}x{n})");
            assert_eq!(ya, yp, "AVX2 vs portable ({m}x{k})x({k}x{n})");
        }
    }
    println!("AVX2 kernel tested");
}

use chronos2_test_fixtures::random_values as values;

use super::{Isa, PackedMatmul, Prefetch, Scratch};

/// `x · W^T + b` in f64, with the per-element bound `Σ |x_k w_k|` for the tolerance.
fn naive(x: &[f32], m: usize, w: &[f32], n: usize, k: usize, bias: Option<&[f32]>) -> (Vec<f32>, Vec<f32>) {
    let mut y = vec![0f32; m * n];
    let mut mag = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let (mut acc, mut abs) = (bias.map_or(0.0, |b| b[j] as f64), bias.map_or(0.0, |b| b[j].abs() as f64));
            for t in 0..k {
                let p = x[i * k + t] as f64 * w[j * k + t] as f64;
                acc += p;
                abs += p.abs();
            }
            y[i * n + j] = acc as f32;
            mag[i * n + j] = abs as f32;
        }
    }
    (y, mag)
}

fn check(got: &[f32], want: &[f32], mag: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (idx, ((&g, &w), &a)) in got.iter().zip(want).zip(mag).enumerate() {
        let tol = 1e-5 * a + 1e-6;
        assert!((g - w).abs() <= tol, "{what}: element {idx}: got {g}, want {w} (tol {tol})");
    }
}

#[test]
fn odd_shapes_on_every_kernel_set() {
    // Rows 1, 3, 17, 65, 200 (partial row blocks, many row blocks sharing a panel); widths not a
    // multiple of the 32-row strip; k below, at and across the 128 block of k.
    for (n, k) in [(1, 5), (33, 48), (70, 257), (100, 600)] {
        let w = values(n * k, n as u64, 0.1);
        let bias = values(n, 3, 0.5);
        for m in [1, 3, 17, 65, 200] {
            let x = values(m * k, m as u64 + 9, 1.0);
            for b in [None, Some(&bias[..])] {
                let (want, mag) = naive(&x, m, &w, n, k, b);
                for isa in Isa::all_available() {
                    let mm = PackedMatmul::with_isa(&w, n, k, isa).unwrap();
                    let mut y = vec![f32::NAN; m * n];
                    mm.matmul(&x, m, b, &mut y).unwrap();
                    check(&y, &want, &mag, &format!("{isa:?} ({m}x{k})x({k}x{n}) bias {}", b.is_some()));
                }
            }
        }
    }
}

#[test]
fn more_rows_than_one_l2_block_of_x() {
    // About 500 rows of x share a panel; 1,100 rows take three blocks of rows.
    let (m, n, k) = (1100, 40, 300);
    let (w, x, bias) = (values(n * k, 11, 0.1), values(m * k, 12, 1.0), values(n, 13, 0.5));
    let (want, mag) = naive(&x, m, &w, n, k, Some(&bias));
    for isa in Isa::all_available() {
        let mut y = vec![f32::NAN; m * n];
        PackedMatmul::with_isa(&w, n, k, isa).unwrap().matmul(&x, m, Some(&bias), &mut y).unwrap();
        check(&y, &want, &mag, &format!("{isa:?} {m} rows"));
    }
}

#[test]
fn model_shapes_with_parallel_tasks() {
    for (n, k) in [(3072, 768), (768, 3072)] {
        let w = values(n * k, 5, 0.05);
        let mm = PackedMatmul::new(&w, n, k).unwrap();
        for m in [11, 131] {
            let x = values(m * k, 6 + m as u64, 1.0);
            let (want, mag) = naive(&x, m, &w, n, k, None);
            let mut y = vec![f32::NAN; m * n];
            mm.matmul(&x, m, None, &mut y).unwrap();
            check(&y, &want, &mag, &format!("{:?} ({m}x{k})x({k}x{n})", mm.isa()));
        }
    }
}

#[test]
fn unpack_returns_the_weight_and_bad_arguments_are_errors() {
    let (n, k) = (37, 11);
    let w = values(n * k, 1, 1.0);
    let mm = PackedMatmul::new(&w, n, k).unwrap();
    assert_eq!(mm.unpack(), w);
    assert_eq!(mm.footprint_bytes(), 64 * k * 4);
    assert!(PackedMatmul::new(&w[1..], n, k).is_err());
    let mut y = vec![0f32; 2 * n];
    assert!(mm.matmul(&vec![0f32; 2 * k + 1], 2, None, &mut y).is_err());
    assert!(mm.matmul(&vec![0f32; 2 * k], 2, Some(&[0.0; 3]), &mut y).is_err());
    assert!(mm.matmul(&vec![0f32; 2 * k], 2, None, &mut y[1..]).is_err());
    assert!(mm.matmul(&[], 0, None, &mut []).is_ok());
}

#[test]
fn bf16_weights_match_the_product_with_the_rounded_weight() {
    use super::{from_bf16, to_bf16, Bf16Kernel, Bf16Matmul};
    // Round to nearest even, exact widening, NaN kept.
    assert_eq!(to_bf16(1.0), 0x3F80);
    assert_eq!(from_bf16(to_bf16(1.0 + 1.0 / 256.0)), 1.0); // tie: to even
    assert_eq!(from_bf16(to_bf16(1.0 + 3.0 / 256.0)), 1.0 + 4.0 / 256.0);
    assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
    for (n, k) in [(33, 48), (70, 600), (40, 77)] {
        let w = values(n * k, 4, 0.1);
        let rounded: Vec<f32> = w.iter().map(|&v| from_bf16(to_bf16(v))).collect();
        for m in [1, 3, 17, 65] {
            let x = values(m * k, m as u64, 1.0);
            let (want, mag) = naive(&x, m, &rounded, n, k, None);
            // The dot-product kernel rounds the activations to bf16 too.
            #[cfg(target_arch = "x86_64")]
            let (want_dot, mag_dot) = {
                let x_rounded: Vec<f32> = x.iter().map(|&v| from_bf16(to_bf16(v))).collect();
                naive(&x_rounded, m, &rounded, n, k, None)
            };
            for kernel in Bf16Kernel::all_available() {
                let mm = Bf16Matmul::with_kernel(&w, n, k, kernel).unwrap();
                assert_eq!(mm.unpack(), rounded);
                let mut y = vec![f32::NAN; m * n];
                mm.matmul(&x, m, None, &mut y).unwrap();
                let what = format!("bf16 {kernel:?} ({m}x{k})x({k}x{n})");
                match kernel {
                    Bf16Kernel::Widen(_) => check(&y, &want, &mag, &what),
                    #[cfg(target_arch = "x86_64")]
                    Bf16Kernel::Dot | Bf16Kernel::Amx => check(&y, &want_dot, &mag_dot, &what),
                }
            }
        }
    }
    // With a bias, across parallel tasks, on the detected kernel.
    let (m, n, k) = (70, 300, 256);
    let (w, x, bias) = (values(n * k, 8, 0.1), values(m * k, 9, 1.0), values(n, 10, 1.0));
    let mm = Bf16Matmul::new(&w, n, k).unwrap();
    let round = |v: &[f32]| -> Vec<f32> { v.iter().map(|&v| from_bf16(to_bf16(v))).collect() };
    let xs = if matches!(mm.kernel(), Bf16Kernel::Widen(_)) { x.clone() } else { round(&x) };
    let (want, mag) = naive(&xs, m, &round(&w), n, k, Some(&bias));
    let mut y = vec![f32::NAN; m * n];
    mm.matmul(&x, m, Some(&bias), &mut y).unwrap();
    check(&y, &want, &mag, "bf16 with bias");
    assert!(mm.matmul(&x[1..], m, None, &mut y).is_err());
}

#[test]
fn scratch_panels_start_on_a_cache_line() {
    for len in [1, 31, 32 * 128, 32 * 64 + 5] {
        let mut scratch = Scratch::new(len);
        let panel = scratch.as_mut_slice();
        assert_eq!(panel.len(), len);
        assert_eq!(panel.as_ptr() as usize % 64, 0, "scratch of {len} floats");
    }
    assert!(Scratch::new(0).as_mut_slice().is_empty());
}

#[test]
fn prefetch_walks_every_line_of_both_regions_once() {
    let (a, b) = (vec![0u8; 512], vec![0u8; 2048 + 10]);
    let mut next = Prefetch::new([(a.as_ptr(), 512), (b.as_ptr(), 2048 + 10)]);
    assert_eq!(next.lines(), 8 + 33);
    let want: Vec<usize> =
        (0..8).map(|i| a.as_ptr() as usize + 64 * i).chain((0..33).map(|i| b.as_ptr() as usize + 64 * i)).collect();
    let got: Vec<usize> = (0..next.lines()).map(|i| next.line_addr(i)).collect();
    assert_eq!(got, want);
    // Spread over 7 row blocks: every line once, then nothing more.
    let per_block = next.lines().div_ceil(7);
    for block in 0..7 {
        next.issue(per_block);
        assert_eq!(next.done, (per_block * (block + 1)).min(41));
    }
    next.issue(per_block);
    assert_eq!(next.done, 41);
    assert_eq!(Prefetch::default().lines(), 0);
}

/// The AMX-BF16 kernel against the naive product of the bf16-rounded activations and weights:
/// partial row blocks (1, 17, 33 rows), several row blocks and parallel tasks (300 rows), `k`
/// not a multiple of the 32-input tile step, widths not a multiple of 32, with and without bias.
#[cfg(target_arch = "x86_64")]
#[test]
fn amx_bf16_matches_the_naive_product() {
    use super::{from_bf16, to_bf16, Bf16Kernel, Bf16Matmul};
    if !Bf16Kernel::Amx.available() {
        println!("SKIPPED: no AMX (amx_bf16_matches_the_naive_product)");
        return;
    }
    let round = |v: &[f32]| -> Vec<f32> { v.iter().map(|&v| from_bf16(to_bf16(v))).collect() };
    for (n, k) in [(33, 48), (70, 600), (40, 77), (3072, 768), (768, 3072)] {
        let w = values(n * k, 4 + k as u64, 0.1);
        let bias = values(n, 7, 0.5);
        let mm = Bf16Matmul::with_kernel(&w, n, k, Bf16Kernel::Amx).unwrap();
        assert_eq!(mm.unpack(), round(&w));
        let rows: &[usize] = if n * k > 1 << 20 { &[11, 131] } else { &[1, 17, 33, 300] };
        for &m in rows {
            let x = values(m * k, m as u64 + 1, 1.0);
            for b in [None, Some(&bias[..])] {
                let (want, mag) = naive(&round(&x), m, &round(&w), n, k, b);
                let mut y = vec![f32::NAN; m * n];
                mm.matmul(&x, m, b, &mut y).unwrap();
                check(&y, &want, &mag, &format!("bf16 AMX ({m}x{k})x({k}x{n}) bias {}", b.is_some()));
            }
        }
    }
    println!("AMX-BF16 kernel tested");
}

use chronos2_test_fixtures::random_values as values;

use super::{attention, exp, AttentionShape};
use crate::isa::Isa;

/// `softmax(q kᵀ + mask) v` in f64, materialising the scores.
fn naive(q: &[f32], k: &[f32], v: &[f32], mask: &[f32], s: AttentionShape) -> Vec<f32> {
    let AttentionShape { batch, heads, q_len, k_len, d } = s;
    let mut out = vec![0f32; batch * heads * q_len * d];
    for b in 0..batch {
        for h in 0..heads {
            let p = b * heads + h;
            for i in 0..q_len {
                let scores: Vec<f64> = (0..k_len)
                    .map(|j| {
                        let dot: f64 =
                            (0..d).map(|c| q[(p * q_len + i) * d + c] as f64 * k[(p * k_len + j) * d + c] as f64).sum();
                        // The reference adds the mask in f32.
                        (dot as f32 + mask[b * k_len + j]) as f64
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let w: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let total: f64 = w.iter().sum();
                for c in 0..d {
                    let o: f64 = (0..k_len).map(|j| w[j] * v[(p * k_len + j) * d + c] as f64).sum::<f64>() / total;
                    out[(p * q_len + i) * d + c] = o as f32;
                }
            }
        }
    }
    out
}

fn check(shape: AttentionShape, masked: &[(usize, usize)], seed: u64) {
    let AttentionShape { batch, heads, q_len, k_len, d } = shape;
    let q = values(batch * heads * q_len * d, seed, 1.0);
    let k = values(batch * heads * k_len * d, seed + 1, 1.0);
    let v = values(batch * heads * k_len * d, seed + 2, 1.0);
    let mut mask = vec![0f32; batch * k_len];
    for &(b, j) in masked {
        mask[b * k_len + j] = f32::MIN;
    }
    let want = naive(&q, &k, &v, &mask, shape);
    for isa in Isa::all_available() {
        let got = attention(&q, &k, &v, &mask, shape, isa).unwrap();
        for (idx, (&g, &w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() <= 2e-5 * (1.0 + w.abs()), "{isa:?} {shape:?} element {idx}: {g} vs {w}");
        }
    }
}

#[test]
fn matches_naive_softmax_on_odd_shapes() {
    for (batch, heads, len, d) in [(1, 1, 1, 64), (2, 3, 3, 64), (1, 2, 17, 64), (3, 2, 65, 64), (1, 1, 40, 7)] {
        let shape = AttentionShape { batch, heads, q_len: len, k_len: len, d };
        // Mask a few keys: the first, one past the first key block, and the last.
        let masked: Vec<(usize, usize)> = (0..batch)
            .flat_map(|b| [0, 33, len - 1].into_iter().filter(|&j| j < len && len > 1).map(move |j| (b, j)))
            .collect();
        check(shape, &masked, (batch * 100 + len) as u64);
    }
    // Fewer queries than keys (and more).
    check(AttentionShape { batch: 2, heads: 2, q_len: 5, k_len: 70, d: 64 }, &[(1, 3)], 7);
    check(AttentionShape { batch: 1, heads: 2, q_len: 70, k_len: 9, d: 64 }, &[], 8);
}

#[test]
fn all_masked_rows_get_a_uniform_softmax() {
    // Batch row 1 has every key masked: the reference's softmax is uniform, the output the mean of v.
    let shape = AttentionShape { batch: 2, heads: 2, q_len: 35, k_len: 35, d: 64 };
    let masked: Vec<(usize, usize)> = (0..35).map(|j| (1, j)).chain([(0, 2)]).collect();
    check(shape, &masked, 21);
}

#[test]
fn rejects_mis_sized_inputs() {
    let shape = AttentionShape { batch: 1, heads: 1, q_len: 2, k_len: 2, d: 4 };
    let x = vec![0f32; 8];
    assert!(attention(&x, &x, &x, &[0.0; 3], shape, Isa::Generic).is_err());
    assert!(attention(&x[..7], &x, &x, &[0.0; 2], shape, Isa::Generic).is_err());
}

#[test]
fn exp_matches_std_on_the_softmax_range() {
    for i in 0..=20_000 {
        let x = -100.0 * i as f32 / 20_000.0;
        let (got, want) = (exp(x), (x as f64).exp());
        let tol = if x < -87.0 { 1e-37 } else { 3e-7 * want };
        assert!((got as f64 - want).abs() <= tol, "exp({x}) = {got}, want {want}");
    }
    assert_eq!(exp(f32::NEG_INFINITY), 0.0);
    assert_eq!(exp(f32::MIN), 0.0);
    assert_eq!(exp(0.0), 1.0);
    assert!(exp(f32::NAN).is_nan());
}

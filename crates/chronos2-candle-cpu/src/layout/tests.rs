use candle_core::{Device, Tensor};

use super::{contiguous, rope};

/// Deterministic values with varied signs and magnitudes.
fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n).map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 2001) as f32 / 1000.0 - 1.0).collect()
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()
}

/// `(n, seq, heads, d)` projections seen as `(n, heads, seq, d)`, as the time attention does.
fn permuted(n: usize, heads: usize, seq: usize, d: usize, seed: u32) -> Tensor {
    let x = Tensor::from_vec(values(n * seq * heads * d, seed), (n, seq, heads, d), &Device::Cpu).unwrap();
    x.permute((0, 2, 1, 3)).unwrap()
}

#[test]
fn contiguous_copies_exactly_what_candle_copies() {
    // Large enough for the parallel copy; odd sizes; 3-, 4- and 5-axis permutes and a narrow.
    let x = permuted(17, 3, 65, 67, 1);
    assert!(!x.is_contiguous());
    assert_eq!(bits(&contiguous(&x).unwrap()), bits(&x.contiguous().unwrap()));
    assert!(contiguous(&x).unwrap().is_contiguous());

    let y = Tensor::from_vec(values(3 * 17 * 5 * 7 * 65, 2), (3, 17, 5, 7, 65), &Device::Cpu).unwrap();
    let y = y.permute((0, 2, 3, 1, 4)).unwrap();
    assert_eq!(bits(&contiguous(&y).unwrap()), bits(&y.contiguous().unwrap()));

    let z = Tensor::from_vec(values(65 * 1023, 3), (65, 1023), &Device::Cpu).unwrap().t().unwrap();
    assert_eq!(bits(&contiguous(&z).unwrap()), bits(&z.contiguous().unwrap()));

    let w = Tensor::from_vec(values(9 * 65 * 129, 4), (9, 65, 129), &Device::Cpu).unwrap().narrow(2, 3, 67).unwrap();
    assert_eq!(bits(&contiguous(&w).unwrap()), bits(&w.contiguous().unwrap()));

    // Small or already contiguous: candle's own.
    let small = permuted(1, 3, 3, 4, 5);
    assert_eq!(bits(&contiguous(&small).unwrap()), bits(&small.contiguous().unwrap()));
}

#[test]
fn rope_on_a_strided_input_equals_candle_rope_on_its_copy() {
    for (n, heads, seq, d, cos_seq) in [(1, 1, 1, 2, 1), (3, 2, 17, 6, 17), (17, 3, 65, 64, 70), (2, 12, 35, 64, 35)] {
        let x = permuted(n, heads, seq, d, 7);
        let cos = Tensor::from_vec(values(cos_seq * d / 2, 8), (cos_seq, d / 2), &Device::Cpu).unwrap();
        let sin = Tensor::from_vec(values(cos_seq * d / 2, 9), (cos_seq, d / 2), &Device::Cpu).unwrap();
        let ours = rope(&x, &cos, &sin).unwrap();
        let theirs = candle_nn::rotary_emb::rope(&x.contiguous().unwrap(), &cos, &sin).unwrap();
        assert_eq!(ours.dims(), theirs.dims());
        assert!(ours.is_contiguous());
        assert_eq!(bits(&ours), bits(&theirs), "shape {n}x{heads}x{seq}x{d}");
        // A contiguous input too.
        let c = x.contiguous().unwrap();
        assert_eq!(bits(&rope(&c, &cos, &sin).unwrap()), bits(&theirs));
        // An input strided along d as well.
        let y = Tensor::from_vec(values(n * seq * d * heads, 10), (n, seq, d, heads), &Device::Cpu).unwrap();
        let y = y.permute((0, 3, 1, 2)).unwrap();
        let theirs = candle_nn::rotary_emb::rope(&y.contiguous().unwrap(), &cos, &sin).unwrap();
        assert_eq!(bits(&rope(&y, &cos, &sin).unwrap()), bits(&theirs), "strided d, {n}x{heads}x{seq}x{d}");
    }
}

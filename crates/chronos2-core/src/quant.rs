//! Weight-only affine quantization of linear layers, bit-compatible with MLX.
//!
//! The scheme is MLX's `mlx.core.quantize(w, group_size, bits, mode="affine")`: the weight of a
//! linear layer, PyTorch layout `(out_dim, in_dim)`, is cut along the input dimension into groups
//! of `group_size` consecutive values; each group gets one `scale` and one `bias` (both `f32`) and
//! every value one unsigned code `q` in `0..2^bits`, with
//!
//! ```text
//! w ≈ scale · q + bias
//! ```
//!
//! [`quantize`] is a port of MLX's CPU kernel (`mlx/backend/cpu/quantized.cpp`, `quantize<T, U>`,
//! which `fast::Quantize::eval_cpu` runs for `mx.quantize` on the CPU device; MLX 0.32):
//!
//! - `n_bins = 2^bits - 1`, `w_min`/`w_max` the group's true minimum and maximum;
//! - `scale = max((w_max - w_min) / n_bins, 1e-7)`, negated unless `|w_min| > |w_max|`;
//! - the *edge* is the end of larger magnitude (`w_min` if `|w_min| > |w_max|`, else `w_max`);
//!   `q0 = rint(edge / scale)`; when `q0 != 0` the scale is snapped to `edge / q0` and the bias is
//!   the edge itself, so the edge is exactly representable (`q = 0` decodes to `bias = edge`);
//!   when `q0 == 0` the bias is `0`;
//! - `q = clamp(rint((w - bias) / scale), 0, n_bins)`, `rint` rounding half to even.
//!
//! All arithmetic is `f32`, in the same order as MLX, so codes, scales and biases agree with MLX
//! bit for bit (the tests hold values produced by `mlx.core.quantize`, mlx-cpu 0.32.2).
//!
//! Packing is MLX's for power-of-two bit widths: the codes of a row are packed little-endian into
//! `u32` words, `32 / bits` codes per word, code `j` of a word in bits `j*bits .. (j+1)*bits`;
//! a row of `in_dim` codes takes `in_dim * bits / 32` words. Scales and biases have shape
//! `(out_dim, in_dim / group_size)`, row-major. This is exactly the `(w_q, scales, biases)` triple
//! MLX returns (and `mlx.nn.QuantizedLinear` stores) for a float32 weight.
//!
//! Note: MLX's Metal and CUDA quantize kernels differ from its CPU kernel in two corner cases —
//! they round half away from zero, and they start the group maximum at `0`, which changes the
//! result for groups whose values are all negative. Neither occurs for weights where no
//! `(w - bias) / scale` lands exactly on `.5` and no 64-value group is entirely negative; the
//! CPU kernel is the one ported here (and the one an MLX build on Linux runs).

use crate::error::{Error, Result};

/// The group size used by the quantized model variants (MLX's default).
pub const DEFAULT_GROUP_SIZE: usize = 64;

/// Bit widths accepted by [`quantize`] (MLX's power-of-two affine widths).
pub const SUPPORTED_BITS: [u32; 3] = [2, 4, 8];

/// Group sizes accepted by [`quantize`] (MLX's set).
pub const SUPPORTED_GROUP_SIZES: [usize; 3] = [32, 64, 128];

/// `eps` of MLX's affine quantize: the smallest scale magnitude.
const EPS: f32 = 1e-7;

/// A quantized linear weight in MLX's affine layout (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedWeight {
    /// Bits per code: 2, 4 or 8.
    pub bits: u32,
    /// Consecutive input values sharing one scale and bias.
    pub group_size: usize,
    /// Rows of the PyTorch `(out, in)` weight.
    pub out_dim: usize,
    /// Columns of the PyTorch `(out, in)` weight.
    pub in_dim: usize,
    /// Codes, `(out_dim, in_dim * bits / 32)` words, little-endian within a word.
    pub packed: Vec<u32>,
    /// `(out_dim, in_dim / group_size)`.
    pub scales: Vec<f32>,
    /// `(out_dim, in_dim / group_size)`.
    pub biases: Vec<f32>,
}

/// Whether a linear layer with this input width can be quantized with `group_size`
/// (MLX needs whole groups along the input dimension).
pub fn qualifies(in_dim: usize, group_size: usize) -> bool {
    group_size > 0 && in_dim > 0 && in_dim.is_multiple_of(group_size)
}

/// Bytes of the quantized representation of an `(out_dim, in_dim)` weight: packed codes plus
/// `f32` scales and biases.
pub fn footprint_bytes(out_dim: usize, in_dim: usize, bits: u32, group_size: usize) -> usize {
    let words = out_dim * in_dim * bits as usize / 32;
    let groups = out_dim * (in_dim / group_size);
    4 * words + 2 * 4 * groups
}

fn check_params(out_dim: usize, in_dim: usize, bits: u32, group_size: usize) -> Result<()> {
    if !SUPPORTED_BITS.contains(&bits) {
        return Err(Error::InvalidInput(format!("quantization bits must be one of {SUPPORTED_BITS:?}, got {bits}")));
    }
    if !SUPPORTED_GROUP_SIZES.contains(&group_size) {
        return Err(Error::InvalidInput(format!(
            "quantization group size must be one of {SUPPORTED_GROUP_SIZES:?}, got {group_size}"
        )));
    }
    if out_dim == 0 || !qualifies(in_dim, group_size) {
        return Err(Error::InvalidInput(format!(
            "cannot quantize a ({out_dim}, {in_dim}) weight with group size {group_size}: \
             the input dimension must be a positive multiple of the group size"
        )));
    }
    Ok(())
}

/// Scale and bias of one group, exactly as MLX's CPU `quantize` computes them.
fn group_params(group: &[f32], n_bins: f32) -> (f32, f32) {
    let mut w_min = f32::INFINITY;
    let mut w_max = -w_min;
    for &w in group {
        // `std::max(w_max, w)` / `std::min(w_min, w)` in MLX.
        if w_max < w {
            w_max = w;
        }
        if w < w_min {
            w_min = w;
        }
    }
    let mask = w_min.abs() > w_max.abs();
    let mut scale = ((w_max - w_min) / n_bins).max(EPS);
    if !mask {
        scale = -scale;
    }
    let edge = if mask { w_min } else { w_max };
    let q0 = (edge / scale).round_ties_even();
    let mut bias = 0.0f32;
    if q0 != 0.0 {
        scale = edge / q0;
        bias = edge;
    }
    (scale, bias)
}

/// Code of one value given its group's scale and bias (MLX: `rint`, then clamp to the range).
#[inline]
fn code(w: f32, scale: f32, bias: f32, n_bins: f32) -> u32 {
    let q = ((w - bias) / scale).round_ties_even();
    // `std::min(std::max(q, 0.0f), n_bins)`; a NaN weight (undefined in MLX) gives code 0.
    q.clamp(0.0, n_bins) as u32
}

/// Quantizes a row-major `(out_dim, in_dim)` weight with MLX's affine scheme.
///
/// `bits` must be 2, 4 or 8 and `group_size` 32, 64 or 128, dividing `in_dim`.
pub fn quantize(
    weight: &[f32],
    out_dim: usize,
    in_dim: usize,
    bits: u32,
    group_size: usize,
) -> Result<QuantizedWeight> {
    check_params(out_dim, in_dim, bits, group_size)?;
    if weight.len() != out_dim * in_dim {
        return Err(Error::InvalidInput(format!("weight has {} values, expected {out_dim} x {in_dim}", weight.len())));
    }
    let n_bins = ((1u32 << bits) - 1) as f32;
    let per_word = (32 / bits) as usize;
    let n_groups = weight.len() / group_size;
    let mut packed = Vec::with_capacity(weight.len() / per_word);
    let mut scales = Vec::with_capacity(n_groups);
    let mut biases = Vec::with_capacity(n_groups);
    for group in weight.chunks_exact(group_size) {
        let (scale, bias) = group_params(group, n_bins);
        for word_vals in group.chunks_exact(per_word) {
            let mut word = 0u32;
            for (j, &w) in word_vals.iter().enumerate() {
                word |= code(w, scale, bias, n_bins) << (j as u32 * bits);
            }
            packed.push(word);
        }
        scales.push(scale);
        biases.push(bias);
    }
    Ok(QuantizedWeight { bits, group_size, out_dim, in_dim, packed, scales, biases })
}

impl QuantizedWeight {
    /// Builds a weight from MLX arrays (e.g. read from an MLX checkpoint), checking the sizes.
    pub fn from_parts(
        bits: u32,
        group_size: usize,
        out_dim: usize,
        in_dim: usize,
        packed: Vec<u32>,
        scales: Vec<f32>,
        biases: Vec<f32>,
    ) -> Result<Self> {
        check_params(out_dim, in_dim, bits, group_size)?;
        let q = QuantizedWeight { bits, group_size, out_dim, in_dim, packed, scales, biases };
        if q.packed.len() != out_dim * q.words_per_row()
            || q.scales.len() != out_dim * q.groups_per_row()
            || q.biases.len() != q.scales.len()
        {
            return Err(Error::InvalidInput(format!(
                "quantized weight ({out_dim}, {in_dim}), {bits} bits, group {group_size}: \
                 got {} words, {} scales, {} biases",
                q.packed.len(),
                q.scales.len(),
                q.biases.len()
            )));
        }
        Ok(q)
    }

    /// `u32` words per weight row.
    pub fn words_per_row(&self) -> usize {
        self.in_dim * self.bits as usize / 32
    }

    /// Groups (scales) per weight row.
    pub fn groups_per_row(&self) -> usize {
        self.in_dim / self.group_size
    }

    /// Codes per `u32` word.
    pub fn codes_per_word(&self) -> usize {
        32 / self.bits as usize
    }

    /// The code of weight element `(row, col)`.
    #[inline]
    pub fn code(&self, row: usize, col: usize) -> u32 {
        let per_word = self.codes_per_word();
        let word = self.packed[row * self.words_per_row() + col / per_word];
        (word >> ((col % per_word) as u32 * self.bits)) & ((1u32 << self.bits) - 1)
    }

    /// Scale and bias of the group holding weight element `(row, col)`.
    #[inline]
    pub fn group_params(&self, row: usize, col: usize) -> (f32, f32) {
        let g = row * self.groups_per_row() + col / self.group_size;
        (self.scales[g], self.biases[g])
    }

    /// Bytes held: packed codes plus scales and biases.
    pub fn footprint_bytes(&self) -> usize {
        4 * (self.packed.len() + self.scales.len() + self.biases.len())
    }
}

/// Reconstructs the `(out_dim, in_dim)` float weight: `scale · q + bias` per element
/// (MLX's `dequantize`: one product then one sum, each rounded to `f32`).
pub fn dequantize(q: &QuantizedWeight) -> Vec<f32> {
    let mut out = Vec::with_capacity(q.out_dim * q.in_dim);
    let bits = q.bits;
    let mask = (1u32 << bits) - 1;
    let per_word = q.codes_per_word();
    let words_per_group = q.group_size / per_word;
    for (g, words) in q.packed.chunks_exact(words_per_group).enumerate() {
        let (scale, bias) = (q.scales[g], q.biases[g]);
        for &word in words {
            for j in 0..per_word {
                let c = (word >> (j as u32 * bits)) & mask;
                out.push(scale * c as f32 + bias);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chronos2_test_fixtures::xorshift_weights;

    fn fnv1a(words: impl IntoIterator<Item = u32>) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for w in words {
            for b in w.to_le_bytes() {
                h ^= b as u64;
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        h
    }

    /// Handcrafted groups of 64 hitting MLX's corner cases (one row each).
    fn corner_rows() -> Vec<f32> {
        let mut rows = Vec::new();
        // 1. max 15, min 0: scale -1, bias 15; 2.5 -> (2.5 - 15) / -1 = 12.5 -> rint 12 (ties
        //    to even; Metal's round() would give 13); 3.5 -> 11.5 -> 12.
        let mut r = vec![0.0f32; 64];
        r[1] = 15.0;
        r[2] = 2.5;
        r[3] = 3.5;
        r[4] = 0.5;
        r[5] = 14.5;
        rows.extend(r);
        // 2. all negative: CPU uses the true maximum (-1).
        let mut r = vec![-5.0f32; 64];
        r[0] = -15.0;
        r[1] = -1.0;
        r[2] = -8.0;
        rows.extend(r);
        // 3. all positive.
        let mut r = vec![5.0f32; 64];
        r[0] = 15.0;
        r[1] = 1.0;
        r[2] = 8.0;
        rows.extend(r);
        // 4. all zero: scale -eps, bias 0.
        rows.extend(vec![0.0f32; 64]);
        // 5. constant: scale -eps, bias 3.
        rows.extend(vec![3.0f32; 64]);
        // 6. |min| > |max|, mixed signs, tiny edge.
        let mut r: Vec<f32> = (0..64).map(|i| (i as f32 - 40.0) * 0.01).collect();
        r[63] = 1e-8;
        rows.extend(r);
        // 7. values that snap the edge: max 1.0, min -0.3.
        let r: Vec<f32> = (0..64).map(|i| -0.3 + 1.3 * (i as f32) / 63.0).collect();
        rows.extend(r);
        // 8. a single positive outlier among small negatives.
        let mut r: Vec<f32> = (0..64).map(|i| -0.001 * i as f32).collect();
        r[17] = 0.75;
        rows.extend(r);
        rows
    }

    #[test]
    fn corner_groups_match_mlx_cpu() {
        // Reference: mlx-cpu 0.32.2, Python:
        //   q, s, b = mx.quantize(mx.array(corner_rows().reshape(8, 64)), group_size=64, bits=B)
        // with the rows built as in `corner_rows` (float32); scales/biases as f32 bit patterns.
        let w = corner_rows();
        assert_eq!(fnv1a(w.iter().map(|v| v.to_bits())), CORNER_WEIGHT_FNV, "inputs differ from NumPy's");
        for (bits, scale_bits, bias_bits, packed_fnv) in [
            (4u32, MLX_CORNER_SCALES_4, MLX_CORNER_BIASES_4, MLX_CORNER_PACKED_FNV_4),
            (8u32, MLX_CORNER_SCALES_8, MLX_CORNER_BIASES_8, MLX_CORNER_PACKED_FNV_8),
        ] {
            let q = quantize(&w, 8, 64, bits, 64).unwrap();
            let s: Vec<u32> = q.scales.iter().map(|v| v.to_bits()).collect();
            let b: Vec<u32> = q.biases.iter().map(|v| v.to_bits()).collect();
            assert_eq!(s, scale_bits, "scales, {bits} bits");
            assert_eq!(b, bias_bits, "biases, {bits} bits");
            assert_eq!(fnv1a(q.packed.iter().copied()), packed_fnv, "codes, {bits} bits");
        }
        // The documented tie: row 0, element 2 -> code 12 (rint), element 3 -> 12.
        let q = quantize(&w, 8, 64, 4, 64).unwrap();
        assert_eq!((q.scales[0], q.biases[0]), (-1.0, 15.0));
        assert_eq!(q.code(0, 2), 12);
        assert_eq!(q.code(0, 3), 12);
        // All-negative group: true maximum, scale 14/15 snapped to 15/16.
        assert_eq!((q.scales[1], q.biases[1]), (0.9375, -15.0));
        assert_eq!((q.code(1, 0), q.code(1, 1), q.code(1, 2)), (0, 15, 7));
    }

    #[test]
    fn random_weights_match_mlx_cpu() {
        // Reference: mlx-cpu 0.32.2, Python (w from `xorshift_weights(96 * 768, 12345)`,
        // reshaped (96, 768), float32):
        //   q, s, b = mx.quantize(mx.array(w), group_size=G, bits=B)
        //   fnv1a over the little-endian bytes of q (uint32), of s and of b (float32 bits)
        //   d = mx.dequantize(q, s, b, group_size=G, bits=B) -> fnv1a of its float32 bits
        let w = xorshift_weights(96 * 768, 12345);
        assert_eq!(fnv1a(w.iter().map(|v| v.to_bits())), RANDOM_WEIGHT_FNV, "inputs differ from NumPy's");
        for &(bits, gs, packed, scales, biases, deq) in MLX_RANDOM_FNV {
            let q = quantize(&w, 96, 768, bits, gs).unwrap();
            assert_eq!(fnv1a(q.packed.iter().copied()), packed, "codes, {bits} bits, group {gs}");
            assert_eq!(fnv1a(q.scales.iter().map(|v| v.to_bits())), scales, "scales {bits}/{gs}");
            assert_eq!(fnv1a(q.biases.iter().map(|v| v.to_bits())), biases, "biases {bits}/{gs}");
            let d = dequantize(&q);
            assert_eq!(fnv1a(d.iter().map(|v| v.to_bits())), deq, "dequantize {bits}/{gs}");
        }
    }

    #[test]
    fn round_trip_error_is_at_most_half_a_step() {
        // Within the grid `bias + scale * [0, n_bins]` the error is at most half a step. Because
        // the scale is snapped to make the edge exact, the grid can stop short of the other end
        // of the group by up to one step (e.g. a symmetric group at 8 bits: q0 = ±128, so the
        // grid covers 255/256 of the range); values there clamp to the last code, error < 1 step.
        let w = xorshift_weights(64 * 512, 7);
        for bits in SUPPORTED_BITS {
            let n_bins = ((1u32 << bits) - 1) as f32;
            for gs in SUPPORTED_GROUP_SIZES {
                let q = quantize(&w, 64, 512, bits, gs).unwrap();
                let d = dequantize(&q);
                let mut beyond = 0usize;
                for (i, (&a, &b)) in w.iter().zip(&d).enumerate() {
                    let (scale, bias) = q.group_params(i / 512, i % 512);
                    let step = scale.abs();
                    let (lo, hi) =
                        if scale > 0.0 { (bias, bias + scale * n_bins) } else { (bias + scale * n_bins, bias) };
                    let slack = 1e-5 * step + 1e-7;
                    if a >= lo - slack && a <= hi + slack {
                        assert!((a - b).abs() <= 0.5 * step + slack, "bits {bits} group {gs} elt {i}: {a} vs {b}");
                    } else {
                        beyond += 1;
                        assert!((a - b).abs() <= step + slack, "bits {bits} group {gs} elt {i}: {a} vs {b}");
                    }
                }
                // Only values near the far end of a group fall outside its grid: a few per
                // group at 2 bits (the gap is up to a third of the range), rare at 8 bits.
                assert!(beyond < w.len() / 4, "bits {bits} group {gs}: {beyond} beyond the grid");
            }
        }
    }

    #[test]
    fn edge_is_exactly_representable() {
        let w = xorshift_weights(32 * 256, 99);
        for bits in SUPPORTED_BITS {
            let q = quantize(&w, 32, 256, bits, 64).unwrap();
            let d = dequantize(&q);
            for (g, (wg, dg)) in w.chunks(64).zip(d.chunks(64)).enumerate() {
                let max = wg.iter().copied().fold(f32::MIN, f32::max);
                let min = wg.iter().copied().fold(f32::MAX, f32::min);
                let edge = if min.abs() > max.abs() { min } else { max };
                assert_eq!(q.biases[g], edge, "bias is the edge, group {g}");
                // The edge's element decodes to exactly the edge (code 0).
                let pos = wg.iter().position(|&v| v == edge).unwrap();
                assert_eq!(dg[pos], edge, "edge round trip, group {g}");
                assert_eq!(q.code(g * 64 / 256, (g * 64) % 256 + pos), 0);
                // The other end maps onto the last code (or just inside).
                let other = if edge == min { max } else { min };
                let opos = wg.iter().position(|&v| v == other).unwrap();
                let c = q.code(g * 64 / 256, (g * 64) % 256 + opos);
                assert!(c + 1 >= (1 << bits) - 1, "other end code {c}");
            }
        }
    }

    #[test]
    fn packing_is_little_endian_within_words() {
        // Codes 0..15 repeated: with min 0, max 15 the scale is -1 and the bias 15, so the
        // code of value v is 15 - v.
        let w: Vec<f32> = (0..64).map(|i| (i % 16) as f32).collect();
        let q = quantize(&w, 1, 64, 4, 64).unwrap();
        assert_eq!((q.scales[0], q.biases[0]), (-1.0, 15.0));
        assert_eq!(q.packed.len(), 8);
        // Word 0 holds values 0..7 -> codes 15, 14, ..., 8 at bits 0, 4, ..., 28.
        assert_eq!(q.packed[0], 0x89AB_CDEF);
        assert_eq!(q.packed[1], 0x0123_4567);
        let q8 = quantize(&w, 1, 64, 8, 64).unwrap();
        assert_eq!(q8.packed.len(), 16);
        // 8 bits: scale = -15/255 snapped so that 15 is code 0; codes of 0, 1, 2, 3 in word 0.
        let c: Vec<u32> = (0..4).map(|j| (q8.packed[0] >> (8 * j)) & 0xFF).collect();
        assert_eq!(c, (0..4).map(|j| q8.code(0, j)).collect::<Vec<_>>());
        assert_eq!(q8.code(0, 15), 0);
        assert_eq!(q8.code(0, 0), 255);
        for (col, &v) in w.iter().enumerate() {
            let (s, b) = q.group_params(0, col);
            assert_eq!(s * q.code(0, col) as f32 + b, v);
        }
    }

    #[test]
    fn footprint_and_qualification() {
        assert!(qualifies(768, 64) && qualifies(3072, 64));
        assert!(!qualifies(100, 64) && !qualifies(0, 64));
        let w = xorshift_weights(3 * 128, 1);
        let q = quantize(&w, 3, 128, 4, 64).unwrap();
        assert_eq!(q.footprint_bytes(), footprint_bytes(3, 128, 4, 64));
        assert_eq!(q.footprint_bytes(), 3 * 128 / 2 + 3 * 2 * 8);
        let q8 = quantize(&w, 3, 128, 8, 64).unwrap();
        assert_eq!(q8.footprint_bytes(), 3 * 128 + 3 * 2 * 8);
        // 768 -> 3072 at 8 bits, group 64: 1 byte + 8/64 bytes per weight.
        assert_eq!(footprint_bytes(3072, 768, 8, 64), 3072 * 768 + 3072 * 12 * 8);
        assert!(quantize(&w, 3, 128, 3, 64).is_err());
        assert!(quantize(&w, 3, 128, 4, 48).is_err());
        assert!(quantize(&w[..3 * 96], 3, 96, 4, 64).is_err());
        assert!(quantize(&w, 2, 128, 4, 64).is_err());
        let parts = QuantizedWeight::from_parts(4, 64, 3, 128, q.packed.clone(), q.scales.clone(), q.biases.clone());
        assert_eq!(parts.unwrap(), q);
        assert!(QuantizedWeight::from_parts(4, 64, 3, 128, vec![0; 5], vec![0.0; 6], vec![0.0; 6]).is_err());
    }

    // ---- Reference values from mlx-cpu 0.32.2 (see the tests above for the Python calls). ----
    /// fnv1a of the f32 bits of `corner_rows()` as built in NumPy (checks the inputs agree).
    const CORNER_WEIGHT_FNV: u64 = 0x4ac6_e5e3_617d_d5b1;
    const MLX_CORNER_SCALES_4: [u32; 8] =
        [0xbf800000, 0x3f700000, 0xbf700000, 0xb3d6bf95, 0xb3d6bf95, 0x3d23d70a, 0xbdaaaaaa, 0xbd5b6db7];
    const MLX_CORNER_BIASES_4: [u32; 8] =
        [0x41700000, 0xc1700000, 0x41700000, 0x0, 0x40400000, 0xbecccccc, 0x3f7fffff, 0x3f400000];
    const MLX_CORNER_PACKED_FNV_4: u64 = 0x348e_aa99_4a14_3349;
    const MLX_CORNER_SCALES_8: [u32; 8] =
        [0xbd70f0f1, 0x3d610e11, 0xbd610e11, 0xb3d6bf95, 0xb3d6bf95, 0x3b1ee009, 0xbba72f05, 0xbb51284e];
    const MLX_CORNER_BIASES_8: [u32; 8] =
        [0x41700000, 0xc1700000, 0x41700000, 0x0, 0x40400000, 0xbecccccc, 0x3f7fffff, 0x3f400000];
    const MLX_CORNER_PACKED_FNV_8: u64 = 0xc6ed_1e97_5b18_4715;
    /// fnv1a of the f32 bits of `xorshift_weights(96 * 768, 12345)` as built in NumPy.
    const RANDOM_WEIGHT_FNV: u64 = 0xdda9_2455_6ca0_f0d3;
    const MLX_RANDOM_FNV: &[(u32, usize, u64, u64, u64, u64)] = &[
        (2, 32, 0x7ff89e31eff6ca59, 0xec406699f646ef55, 0x7d9f8ce5c74841cd, 0xde3bb21480bf2fbb),
        (2, 64, 0xad02b9483d835ff4, 0xd7b3658187a091a8, 0xa834ef0809fa5410, 0xbdabef19e5e6fa3f),
        (2, 128, 0x64e35702de7c9f51, 0xd30a90ab0b5abb52, 0xea1aad548483959e, 0xa8c87774a3c2a25c),
        (4, 32, 0x884d723fa4f838cb, 0xf57a892c6229db8f, 0x7d9f8ce5c74841cd, 0x2150c4e6af6cbc85),
        (4, 64, 0xe6c214c7134c4098, 0x71359323ea082810, 0xa834ef0809fa5410, 0x0cf6bcde27055bad),
        (4, 128, 0x47a19444e85abc2a, 0x06688fde5ea95916, 0xea1aad548483959e, 0x0e9f6576e442a38a),
        (8, 32, 0x0dc81ef0e5bef792, 0xb506134d86cae936, 0x7d9f8ce5c74841cd, 0x4b3872f9ead854f5),
        (8, 64, 0xe8a32202067147bc, 0x13b83874739642aa, 0xa834ef0809fa5410, 0xbe317d9921477fba),
        (8, 128, 0x53821407bc71c880, 0xa52774a6807ec910, 0xea1aad548483959e, 0x23525d152847a7eb),
    ];
}

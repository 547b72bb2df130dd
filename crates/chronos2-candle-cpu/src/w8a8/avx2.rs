//! The w8a8 kernel for x86_64 CPUs with AVX2 + FMA but no AVX512-VNNI.
//!
//! AVX2 has no exact byte dot product: `vpmaddubsw` sums two u8 × s8 products into a saturated
//! i16, and two products `255 · (-128)` already overflow it. So the activation codes are
//! written as i16 (`0..=255`) by the quantizer, the weight codes are sign-extended from bytes to
//! i16 as they are loaded (`vpmovsxbw`), and `vpmaddwd` sums pairs of i16 products into i32. That
//! is exact: each product is in `[-32640, 32385]`, a pair in `[-65280, 64770]`, and a group's
//! sum (64 products) within `±2^21`, far inside i32. The float operations after each group are
//! the portable kernel's, in its order (FMA where it uses `mul_add`), so the numbers are the
//! portable (and VNNI) kernel's bit for bit.
//!
//! Layout: each strip of 32 outputs is two halves of 16; per half and per pair of inputs the 16
//! × 2 codes are contiguous, output-major (`[2][k / 2][16][2]`), what one `vpmaddwd` against the
//! broadcast activation pair reads after widening 16 bytes (8 outputs). A tile is up to
//! [`MR`] rows × one half: `2 × MR` accumulators, two weight and one activation register.

use std::arch::x86_64::*;
use std::mem::MaybeUninit;

use super::{group_scale, Tile, GROUP, MR, ROUND, SB, STRIP};

/// Outputs per half strip.
const HALF: usize = STRIP / 2;

/// Where the code of output `j` (of its strip) and input `col` lies in the strip's `32 × k` codes.
pub(super) fn code_offset(k: usize, j: usize, col: usize) -> usize {
    (j / HALF) * k * HALF + (col / 2) * 2 * HALF + (j % HALF) * 2 + col % 2
}

/// As [`super::quantize_rows_plain`], with AVX2, the codes written as i16 (the min / max of a
/// group are exact in any order; the codes use [`super::code`]'s operations, no fused
/// multiply-add).
///
/// # Safety
/// The CPU must support AVX2 and FMA; `x` holds whole groups, `q` as many codes, `params` one
/// entry per group.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn quantize_rows(x: &[f32], q: &mut [MaybeUninit<i16>], params: &mut [MaybeUninit<[f32; 3]>]) {
    // SAFETY: the caller upholds this function's `# Safety` contract: every group has 64 floats
    // to read and 64 codes to write.
    unsafe {
        for ((src, dst), p) in x.chunks_exact(GROUP).zip(q.chunks_exact_mut(GROUP)).zip(params) {
            let mut v = [_mm256_setzero_ps(); GROUP / 8];
            for (c, vc) in v.iter_mut().enumerate() {
                *vc = _mm256_loadu_ps(src.as_ptr().add(8 * c));
            }
            let (mut lo, mut hi) = (v[0], v[0]);
            for &vc in &v[1..] {
                lo = _mm256_min_ps(lo, vc);
                hi = _mm256_max_ps(hi, vc);
            }
            let (mn, mx) = (reduce_min(lo), reduce_max(hi));
            let [sx, inv] = group_scale(mn, mx);
            let (mnv, invv, round) = (_mm256_set1_ps(mn), _mm256_set1_ps(inv), _mm256_set1_ps(ROUND));
            let (zero, top) = (_mm256_setzero_ps(), _mm256_set1_ps(255.0));
            let mut sum = _mm256_setzero_si256();
            let mut codes = [_mm256_setzero_si256(); 2];
            for (c, &vc) in v.iter().enumerate() {
                let t = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(vc, mnv), invv), round), round);
                codes[c % 2] = _mm256_cvttps_epi32(_mm256_min_ps(_mm256_max_ps(t, zero), top));
                sum = _mm256_add_epi32(sum, codes[c % 2]);
                if c % 2 == 1 {
                    // `packs` interleaves the 128-bit lanes: [a0..3, b0..3 | a4..7, b4..7].
                    let words = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packs_epi32(codes[0], codes[1]));
                    _mm256_storeu_si256(dst.as_mut_ptr().add(8 * (c - 1)) as *mut __m256i, words);
                }
            }
            p.write([sx, sx * reduce_add(sum) as u32 as f32, mn]);
        }
    }
}

/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2,fma")]
unsafe fn reduce_min(v: __m256) -> f32 {
    let m = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let m = _mm_min_ps(m, _mm_movehl_ps(m, m));
    _mm_cvtss_f32(_mm_min_ss(m, _mm_shuffle_ps::<1>(m, m)))
}

/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2,fma")]
unsafe fn reduce_max(v: __m256) -> f32 {
    let m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    _mm_cvtss_f32(_mm_max_ss(m, _mm_shuffle_ps::<1>(m, m)))
}

/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2,fma")]
unsafe fn reduce_add(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32::<1>(s)))
}

/// The tile of `t.mr` rows × one strip (codes in this module's layout, activations as i16).
pub(super) fn tile(t: &Tile<i16>, out: &mut [[f32; STRIP]; MR]) {
    // SAFETY: AVX2 and FMA were checked available when the weight was built; the slices of `t`
    // hold `mr` rows of `k` codes and the strip's `32 × k` codes.
    unsafe { dispatch_rows!(half_tiles, t, out) }
}

/// # Safety
/// The CPU must support AVX2 and FMA; `t` holds `R` rows (see [`Tile`]).
#[target_feature(enable = "avx2,fma")]
unsafe fn half_tiles<const R: usize>(t: &Tile<i16>, out: &mut [[f32; STRIP]; MR]) {
    let groups = t.k / GROUP;
    let xp = t.x.as_ptr();
    for h in 0..2 {
        let qp = t.q[h * t.k * HALF..].as_ptr();
        for g in 0..groups {
            let mut d0 = [_mm256_setzero_si256(); R];
            let mut d1 = [_mm256_setzero_si256(); R];
            for p in g * GROUP / 2..(g + 1) * GROUP / 2 {
                // SAFETY: the half holds `k / 2` blocks of 32 codes; each row `k` activations.
                unsafe {
                    let w = qp.add(p * 2 * HALF) as *const __m128i;
                    let (w0, w1) =
                        (_mm256_cvtepi8_epi16(_mm_loadu_si128(w)), _mm256_cvtepi8_epi16(_mm_loadu_si128(w.add(1))));
                    for i in 0..R {
                        let xv = _mm256_set1_epi32((xp.add(i * t.k + 2 * p) as *const i32).read_unaligned());
                        d0[i] = _mm256_add_epi32(d0[i], _mm256_madd_epi16(xv, w0));
                        d1[i] = _mm256_add_epi32(d1[i], _mm256_madd_epi16(xv, w1));
                    }
                }
            }
            let sb = &t.sb[g * SB + h * HALF..];
            let load = |o: usize| -> [__m256; 2] {
                // SAFETY: `sb` holds the group's 3 × 32 floats from this half's first output on.
                unsafe { [_mm256_loadu_ps(sb[o..].as_ptr()), _mm256_loadu_ps(sb[o + 8..].as_ptr())] }
            };
            let (s, b, c) = (load(0), load(STRIP), load(2 * STRIP));
            for i in 0..R {
                let [sx, xsum, mn] = t.params[i * groups + g];
                let (sx, xsum, mn) = (_mm256_set1_ps(sx), _mm256_set1_ps(xsum), _mm256_set1_ps(mn));
                let a = &mut out[i][h * HALF..(h + 1) * HALF];
                for (e, d) in [d0[i], d1[i]].into_iter().enumerate() {
                    let a = a[8 * e..].as_mut_ptr();
                    // SAFETY: `a` has 8 floats from here (half a half strip).
                    unsafe {
                        let mut acc = if g == 0 { _mm256_setzero_ps() } else { _mm256_loadu_ps(a) };
                        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_mul_ps(s[e], sx), acc);
                        acc = _mm256_fmadd_ps(b[e], xsum, acc);
                        acc = _mm256_fmadd_ps(c[e], mn, acc);
                        _mm256_storeu_ps(a, acc);
                    }
                }
            }
        }
    }
}

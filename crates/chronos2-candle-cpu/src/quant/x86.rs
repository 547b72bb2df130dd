//! x86_64 micro-kernels (AVX-512F and AVX2 + FMA) over the strip layout.
//!
//! Each computes a `mr × 32` tile; `mr` is a const generic so the accumulators live in
//! registers (AVX-512: `2 × mr <= 24` zmm accumulators; AVX2: `2 × mr <= 12` ymm, per half strip).

use std::arch::x86_64::*;

use super::{Tile, STRIP};
use crate::gemm::x86::{dispatch_mr, x_at};

/// # Safety
/// The CPU must support AVX-512F; `t` must describe valid memory with `mr <= 12`.
pub(crate) unsafe fn avx512_q8(t: &Tile) {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe { dispatch_mr!(q8_avx512, t, 1 2 3 4 5 6 7 8 9 10 11 12) }
}

/// # Safety
/// The CPU must support AVX-512F; `t` must describe valid memory with `mr <= 12`.
pub(crate) unsafe fn avx512_q4(t: &Tile) {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe { dispatch_mr!(q4_avx512, t, 1 2 3 4 5 6 7 8 9 10 11 12) }
}

/// # Safety
/// The CPU must support AVX2 and FMA; `t` must describe valid memory with `mr <= 6`.
pub(crate) unsafe fn avx2_q8(t: &Tile) {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe { dispatch_mr!(q8_avx2, t, 1 2 3 4 5 6) }
}

/// # Safety
/// The CPU must support AVX2 and FMA; `t` must describe valid memory with `mr <= 6`.
pub(crate) unsafe fn avx2_q4(t: &Tile) {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe { dispatch_mr!(q4_avx2, t, 1 2 3 4 5 6) }
}

// ---------------------------------------------------------------------------------------------
// AVX-512: the strip is two zmm vectors of 16 outputs.

/// # Safety
/// The CPU must support AVX-512F; `t` describes valid memory (see [`Tile`]) with `mr == MR`.
#[target_feature(enable = "avx512f")]
unsafe fn q8_avx512<const MR: usize>(t: &Tile) {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe {
        let mut a0 = [_mm512_setzero_ps(); MR];
        let mut a1 = [_mm512_setzero_ps(); MR];
        let gs = t.group_size;
        for g in 0..t.kc / gs {
            let sb = t.sb.add(g * 2 * STRIP);
            let (s0, s1) = (_mm512_loadu_ps(sb), _mm512_loadu_ps(sb.add(16)));
            let (b0, b1) = (_mm512_loadu_ps(sb.add(32)), _mm512_loadu_ps(sb.add(48)));
            for k in g * gs..(g + 1) * gs {
                let qp = t.q.add(k * STRIP);
                let c0 = _mm512_cvtepu8_epi32(_mm_loadu_si128(qp as *const __m128i));
                let c1 = _mm512_cvtepu8_epi32(_mm_loadu_si128(qp.add(16) as *const __m128i));
                let w0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(c0), s0, b0);
                let w1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(c1), s1, b1);
                for i in 0..MR {
                    let xv = _mm512_set1_ps(x_at::<MR>(t.x, i, k));
                    a0[i] = _mm512_fmadd_ps(xv, w0, a0[i]);
                    a1[i] = _mm512_fmadd_ps(xv, w1, a1[i]);
                }
            }
        }
        for i in 0..MR {
            _mm512_storeu_ps(t.out.add(i * STRIP), a0[i]);
            _mm512_storeu_ps(t.out.add(i * STRIP + 16), a1[i]);
        }
    }
}

/// # Safety
/// The CPU must support AVX-512F; `t` describes valid memory (see [`Tile`]) with `mr == MR`.
#[target_feature(enable = "avx512f")]
unsafe fn q4_avx512<const MR: usize>(t: &Tile) {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe {
        let mut a0 = [_mm512_setzero_ps(); MR];
        let mut a1 = [_mm512_setzero_ps(); MR];
        let gs = t.group_size;
        let low = _mm512_set1_epi32(0xF);
        for g in 0..t.kc / gs {
            let sb = t.sb.add(g * 2 * STRIP);
            let (s0, s1) = (_mm512_loadu_ps(sb), _mm512_loadu_ps(sb.add(16)));
            let (b0, b1) = (_mm512_loadu_ps(sb.add(32)), _mm512_loadu_ps(sb.add(48)));
            for p in g * gs / 2..(g + 1) * gs / 2 {
                let qp = t.q.add(p * STRIP);
                let c0 = _mm512_cvtepu8_epi32(_mm_loadu_si128(qp as *const __m128i));
                let c1 = _mm512_cvtepu8_epi32(_mm_loadu_si128(qp.add(16) as *const __m128i));
                // k = 2p: low nibbles.
                let w0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_and_si512(c0, low)), s0, b0);
                let w1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_and_si512(c1, low)), s1, b1);
                for i in 0..MR {
                    let xv = _mm512_set1_ps(x_at::<MR>(t.x, i, 2 * p));
                    a0[i] = _mm512_fmadd_ps(xv, w0, a0[i]);
                    a1[i] = _mm512_fmadd_ps(xv, w1, a1[i]);
                }
                // k = 2p + 1: high nibbles.
                let w0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32::<4>(c0)), s0, b0);
                let w1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32::<4>(c1)), s1, b1);
                for i in 0..MR {
                    let xv = _mm512_set1_ps(x_at::<MR>(t.x, i, 2 * p + 1));
                    a0[i] = _mm512_fmadd_ps(xv, w0, a0[i]);
                    a1[i] = _mm512_fmadd_ps(xv, w1, a1[i]);
                }
            }
        }
        for i in 0..MR {
            _mm512_storeu_ps(t.out.add(i * STRIP), a0[i]);
            _mm512_storeu_ps(t.out.add(i * STRIP + 16), a1[i]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// AVX2: each half strip (16 outputs) is two ymm vectors; the halves run one after the other.

/// # Safety
/// The CPU must support AVX2 and FMA; `t` describes valid memory (see [`Tile`]) with `mr == MR`.
#[target_feature(enable = "avx2,fma")]
unsafe fn q8_avx2<const MR: usize>(t: &Tile) {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe {
        let gs = t.group_size;
        for h in 0..2 {
            let mut a0 = [_mm256_setzero_ps(); MR];
            let mut a1 = [_mm256_setzero_ps(); MR];
            for g in 0..t.kc / gs {
                let sb = t.sb.add(g * 2 * STRIP + h * 16);
                let (s0, s1) = (_mm256_loadu_ps(sb), _mm256_loadu_ps(sb.add(8)));
                let (b0, b1) = (_mm256_loadu_ps(sb.add(32)), _mm256_loadu_ps(sb.add(40)));
                for k in g * gs..(g + 1) * gs {
                    let qp = t.q.add(k * STRIP + h * 16);
                    let c0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(qp as *const __m128i));
                    let c1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(qp.add(8) as *const __m128i));
                    let w0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(c0), s0, b0);
                    let w1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(c1), s1, b1);
                    for i in 0..MR {
                        let xv = _mm256_set1_ps(x_at::<MR>(t.x, i, k));
                        a0[i] = _mm256_fmadd_ps(xv, w0, a0[i]);
                        a1[i] = _mm256_fmadd_ps(xv, w1, a1[i]);
                    }
                }
            }
            for i in 0..MR {
                _mm256_storeu_ps(t.out.add(i * STRIP + h * 16), a0[i]);
                _mm256_storeu_ps(t.out.add(i * STRIP + h * 16 + 8), a1[i]);
            }
        }
    }
}

/// # Safety
/// The CPU must support AVX2 and FMA; `t` describes valid memory (see [`Tile`]) with `mr == MR`.
#[target_feature(enable = "avx2,fma")]
unsafe fn q4_avx2<const MR: usize>(t: &Tile) {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe {
        let gs = t.group_size;
        let low = _mm_set1_epi8(0xF);
        for h in 0..2 {
            let mut a0 = [_mm256_setzero_ps(); MR];
            let mut a1 = [_mm256_setzero_ps(); MR];
            for g in 0..t.kc / gs {
                let sb = t.sb.add(g * 2 * STRIP + h * 16);
                let (s0, s1) = (_mm256_loadu_ps(sb), _mm256_loadu_ps(sb.add(8)));
                let (b0, b1) = (_mm256_loadu_ps(sb.add(32)), _mm256_loadu_ps(sb.add(40)));
                for p in g * gs / 2..(g + 1) * gs / 2 {
                    let v = _mm_loadu_si128(t.q.add(p * STRIP + h * 16) as *const __m128i);
                    let lo = _mm_and_si128(v, low);
                    let hi = _mm_and_si128(_mm_srli_epi16::<4>(v), low);
                    for (kk, c) in [(2 * p, lo), (2 * p + 1, hi)] {
                        let c0 = _mm256_cvtepu8_epi32(c);
                        let c1 = _mm256_cvtepu8_epi32(_mm_srli_si128::<8>(c));
                        let w0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(c0), s0, b0);
                        let w1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(c1), s1, b1);
                        for i in 0..MR {
                            let xv = _mm256_set1_ps(x_at::<MR>(t.x, i, kk));
                            a0[i] = _mm256_fmadd_ps(xv, w0, a0[i]);
                            a1[i] = _mm256_fmadd_ps(xv, w1, a1[i]);
                        }
                    }
                }
            }
            for i in 0..MR {
                _mm256_storeu_ps(t.out.add(i * STRIP + h * 16), a0[i]);
                _mm256_storeu_ps(t.out.add(i * STRIP + h * 16 + 8), a1[i]);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Panels: for several row blocks, the strip is dequantized once per block of k into an f32
// panel `[k][32]`, and the row blocks run a plain f32 outer-product kernel on it.

/// # Safety
/// The CPU must support AVX-512F; `q`, `sb` as in [`Tile`] for `kc` values; `panel` holds
/// `32 · kc` floats.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn avx512_panel(bits: u32, q: *const u8, sb: *const f32, kc: usize, gs: usize, panel: *mut f32) {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe {
        let low = _mm512_set1_epi32(0xF);
        for g in 0..kc / gs {
            let sbg = sb.add(g * 2 * STRIP);
            let (s0, s1) = (_mm512_loadu_ps(sbg), _mm512_loadu_ps(sbg.add(16)));
            let (b0, b1) = (_mm512_loadu_ps(sbg.add(32)), _mm512_loadu_ps(sbg.add(48)));
            if bits == 8 {
                for k in g * gs..(g + 1) * gs {
                    let qp = q.add(k * STRIP);
                    let c0 = _mm512_cvtepu8_epi32(_mm_loadu_si128(qp as *const __m128i));
                    let c1 = _mm512_cvtepu8_epi32(_mm_loadu_si128(qp.add(16) as *const __m128i));
                    _mm512_storeu_ps(panel.add(k * STRIP), _mm512_fmadd_ps(_mm512_cvtepi32_ps(c0), s0, b0));
                    _mm512_storeu_ps(panel.add(k * STRIP + 16), _mm512_fmadd_ps(_mm512_cvtepi32_ps(c1), s1, b1));
                }
            } else {
                for p in g * gs / 2..(g + 1) * gs / 2 {
                    let qp = q.add(p * STRIP);
                    let c0 = _mm512_cvtepu8_epi32(_mm_loadu_si128(qp as *const __m128i));
                    let c1 = _mm512_cvtepu8_epi32(_mm_loadu_si128(qp.add(16) as *const __m128i));
                    let out = panel.add(2 * p * STRIP);
                    _mm512_storeu_ps(out, _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_and_si512(c0, low)), s0, b0));
                    _mm512_storeu_ps(
                        out.add(16),
                        _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_and_si512(c1, low)), s1, b1),
                    );
                    _mm512_storeu_ps(
                        out.add(32),
                        _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32::<4>(c0)), s0, b0),
                    );
                    _mm512_storeu_ps(
                        out.add(48),
                        _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32::<4>(c1)), s1, b1),
                    );
                }
            }
        }
    }
}

/// # Safety
/// The CPU must support AVX2 and FMA; arguments as for [`avx512_panel`].
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn avx2_panel(bits: u32, q: *const u8, sb: *const f32, kc: usize, gs: usize, panel: *mut f32) {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe {
        let low = _mm_set1_epi8(0xF);
        for g in 0..kc / gs {
            let sbg = sb.add(g * 2 * STRIP);
            let s = [0, 8, 16, 24].map(|o| _mm256_loadu_ps(sbg.add(o)));
            let b = [0, 8, 16, 24].map(|o| _mm256_loadu_ps(sbg.add(32 + o)));
            let put = |k: usize, c: __m128i, c2: __m128i| {
                // c: codes of columns 0..16, c2: columns 16..32 (bytes).
                let out = panel.add(k * STRIP);
                let parts = [c, _mm_srli_si128::<8>(c), c2, _mm_srli_si128::<8>(c2)];
                for h in 0..4 {
                    let f = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(parts[h]));
                    _mm256_storeu_ps(out.add(8 * h), _mm256_fmadd_ps(f, s[h], b[h]));
                }
            };
            if bits == 8 {
                for k in g * gs..(g + 1) * gs {
                    let qp = q.add(k * STRIP);
                    put(k, _mm_loadu_si128(qp as *const __m128i), _mm_loadu_si128(qp.add(16) as *const __m128i));
                }
            } else {
                for p in g * gs / 2..(g + 1) * gs / 2 {
                    let qp = q.add(p * STRIP);
                    let v0 = _mm_loadu_si128(qp as *const __m128i);
                    let v1 = _mm_loadu_si128(qp.add(16) as *const __m128i);
                    put(2 * p, _mm_and_si128(v0, low), _mm_and_si128(v1, low));
                    put(
                        2 * p + 1,
                        _mm_and_si128(_mm_srli_epi16::<4>(v0), low),
                        _mm_and_si128(_mm_srli_epi16::<4>(v1), low),
                    );
                }
            }
        }
    }
}

//! x86_64 f32 micro-kernels (AVX-512F and AVX2 + FMA) over the strip layout.
//!
//! Each computes a `mr × 32` tile; `mr` is a const generic so the accumulators live in
//! registers (AVX-512: `2 × mr <= 24` zmm accumulators; AVX2: `2 × mr <= 12` ymm, per half strip).

use std::arch::x86_64::*;

use super::{PanelTile, STRIP};

macro_rules! dispatch_mr {
    ($kernel:ident, $t:expr, $($n:literal)*) => {
        match $t.mr {
            $($n => $kernel::<$n>($t),)*
            mr => unreachable!("row block {mr} too large for {}", stringify!($kernel)),
        }
    };
}
pub(crate) use dispatch_mr;

/// `x[i, k]` of a packed `[kc][MR]` row block.
///
/// # Safety
/// `x` holds a packed `[kc][MR]` row block, `k < kc`, `i < MR`.
#[inline(always)]
pub(crate) unsafe fn x_at<const MR: usize>(x: *const f32, i: usize, k: usize) -> f32 {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe { *x.add(k * MR + i) }
}

/// # Safety
/// The CPU must support AVX-512F; `t` must describe valid memory with `mr <= 12`.
pub(crate) unsafe fn avx512_f32(t: &PanelTile) {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe { dispatch_mr!(f32_avx512, t, 1 2 3 4 5 6 7 8 9 10 11 12) }
}

/// # Safety
/// The CPU must support AVX-512F; `t` describes valid memory (see [`PanelTile`]) with `mr == MR`.
#[target_feature(enable = "avx512f")]
unsafe fn f32_avx512<const MR: usize>(t: &PanelTile) {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe {
        let mut a0 = [_mm512_setzero_ps(); MR];
        let mut a1 = [_mm512_setzero_ps(); MR];
        for k in 0..t.kc {
            let w0 = _mm512_loadu_ps(t.w.add(k * STRIP));
            let w1 = _mm512_loadu_ps(t.w.add(k * STRIP + 16));
            for i in 0..MR {
                let xv = _mm512_set1_ps(x_at::<MR>(t.x, i, k));
                a0[i] = _mm512_fmadd_ps(xv, w0, a0[i]);
                a1[i] = _mm512_fmadd_ps(xv, w1, a1[i]);
            }
        }
        for i in 0..MR {
            _mm512_storeu_ps(t.out.add(i * STRIP), a0[i]);
            _mm512_storeu_ps(t.out.add(i * STRIP + 16), a1[i]);
        }
    }
}

/// # Safety
/// The CPU must support AVX2 and FMA; `t` must describe valid memory with `mr <= 6`.
pub(crate) unsafe fn avx2_f32(t: &PanelTile) {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe { dispatch_mr!(f32_avx2, t, 1 2 3 4 5 6) }
}

/// # Safety
/// The CPU must support AVX2 and FMA; `t` describes valid memory (see [`PanelTile`]) with `mr == MR`.
#[target_feature(enable = "avx2,fma")]
unsafe fn f32_avx2<const MR: usize>(t: &PanelTile) {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe {
        for h in 0..2 {
            let mut a0 = [_mm256_setzero_ps(); MR];
            let mut a1 = [_mm256_setzero_ps(); MR];
            for k in 0..t.kc {
                let w0 = _mm256_loadu_ps(t.w.add(k * STRIP + h * 16));
                let w1 = _mm256_loadu_ps(t.w.add(k * STRIP + h * 16 + 8));
                for i in 0..MR {
                    let xv = _mm256_set1_ps(x_at::<MR>(t.x, i, k));
                    a0[i] = _mm256_fmadd_ps(xv, w0, a0[i]);
                    a1[i] = _mm256_fmadd_ps(xv, w1, a1[i]);
                }
            }
            for i in 0..MR {
                _mm256_storeu_ps(t.out.add(i * STRIP + h * 16), a0[i]);
                _mm256_storeu_ps(t.out.add(i * STRIP + h * 16 + 8), a1[i]);
            }
        }
    }
}

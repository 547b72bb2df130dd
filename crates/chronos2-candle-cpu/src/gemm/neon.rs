//! aarch64 NEON f32 micro-kernel over the strip layout.
//!
//! A `mr × 32` tile is computed as two halves of 16 outputs (four 128-bit vectors each), so the
//! `4 × mr <= 24` accumulators, the four weight vectors and the broadcast stay in the 32 vector
//! registers. NEON is part of the aarch64 baseline, so no run-time detection is needed.

use std::arch::aarch64::*;

use super::{PanelTile, STRIP};

/// Dispatches on `t.mr` to a kernel with that many rows as a const generic.
macro_rules! dispatch_mr {
    ($kernel:ident, $t:expr, $($n:literal)*) => {
        match $t.mr {
            $($n => $kernel::<$n>($t),)*
            mr => unreachable!("row block {mr} too large for {}", stringify!($kernel)),
        }
    };
}
pub(crate) use dispatch_mr;

/// Rows of `x` per micro-kernel call.
pub(crate) const MR: usize = 6;

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
/// `t` must describe valid memory (see [`PanelTile`]) with `mr <= 6`.
pub(crate) unsafe fn neon_f32(t: &PanelTile) {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe { dispatch_mr!(f32_neon, t, 1 2 3 4 5 6) }
}

/// # Safety
/// `t` describes valid memory (see [`PanelTile`]) with `mr == MR`.
#[inline(always)]
unsafe fn f32_neon<const MR: usize>(t: &PanelTile) {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe {
        for h in 0..2 {
            let mut acc = [[vdupq_n_f32(0.0); 4]; MR];
            for k in 0..t.kc {
                let wp = t.w.add(k * STRIP + h * 16);
                let w = [vld1q_f32(wp), vld1q_f32(wp.add(4)), vld1q_f32(wp.add(8)), vld1q_f32(wp.add(12))];
                for (i, row) in acc.iter_mut().enumerate() {
                    let xv = x_at::<MR>(t.x, i, k);
                    for c in 0..4 {
                        row[c] = vfmaq_n_f32(row[c], w[c], xv);
                    }
                }
            }
            store_half(&acc, t.out, h);
        }
    }
}

/// Stores the accumulators of half `h` of a `MR × 32` tile.
///
/// # Safety
/// `out` is writable for `MR` rows of 32 floats.
#[inline(always)]
pub(crate) unsafe fn store_half<const MR: usize>(acc: &[[float32x4_t; 4]; MR], out: *mut f32, h: usize) {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe {
        for (i, row) in acc.iter().enumerate() {
            for (c, &v) in row.iter().enumerate() {
                vst1q_f32(out.add(i * STRIP + h * 16 + 4 * c), v);
            }
        }
    }
}

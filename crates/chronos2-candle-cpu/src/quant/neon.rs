//! aarch64 NEON kernels over the quantized strip layout: fused dequantize-and-multiply tiles
//! (one row block) and panel dequantization (several row blocks, then the f32 micro-kernel).
//!
//! As in [`crate::gemm::neon`], a `mr × 32` tile is two halves of 16 outputs; per `k` the 16
//! codes of a half widen `u8 → u16 → u32 → f32` and become `w = scale · q + bias`.

use std::arch::aarch64::*;

use super::{Tile, STRIP};
use crate::gemm::neon::{dispatch_mr, store_half, x_at};

/// # Safety
/// `t` must describe valid memory (see [`Tile`]) with `mr <= 6`.
pub(crate) unsafe fn neon_q8(t: &Tile) {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe { dispatch_mr!(q8_neon, t, 1 2 3 4 5 6) }
}

/// # Safety
/// `t` must describe valid memory (see [`Tile`]) with `mr <= 6`.
pub(crate) unsafe fn neon_q4(t: &Tile) {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe { dispatch_mr!(q4_neon, t, 1 2 3 4 5 6) }
}

/// The 16 codes as four f32 vectors.
///
/// # Safety
/// The CPU must support NEON (the aarch64 baseline); the intrinsics touch no memory.
#[inline(always)]
unsafe fn widen(codes: uint8x16_t) -> [float32x4_t; 4] {
    // SAFETY: NEON is available (the caller's contract); register-only intrinsics.
    unsafe {
        let lo = vmovl_u8(vget_low_u8(codes));
        let hi = vmovl_u8(vget_high_u8(codes));
        [
            vcvtq_f32_u32(vmovl_u16(vget_low_u16(lo))),
            vcvtq_f32_u32(vmovl_u16(vget_high_u16(lo))),
            vcvtq_f32_u32(vmovl_u16(vget_low_u16(hi))),
            vcvtq_f32_u32(vmovl_u16(vget_high_u16(hi))),
        ]
    }
}

/// `scale · q + bias` for the 16 outputs of half `h`; `sb` points at the group's scales.
///
/// # Safety
/// `sb` holds the group's 32 scales and then 32 biases; `h < 2`.
#[inline(always)]
unsafe fn dequant(codes: uint8x16_t, sb: *const f32, h: usize) -> [float32x4_t; 4] {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe {
        let c = widen(codes);
        let mut w = [vdupq_n_f32(0.0); 4];
        for v in 0..4 {
            let s = vld1q_f32(sb.add(h * 16 + 4 * v));
            let b = vld1q_f32(sb.add(STRIP + h * 16 + 4 * v));
            w[v] = vfmaq_f32(b, c[v], s);
        }
        w
    }
}

/// # Safety
/// `x` holds a packed `[kc][MR]` row block with `k < kc`.
#[inline(always)]
unsafe fn accumulate<const MR: usize>(acc: &mut [[float32x4_t; 4]; MR], x: *const f32, k: usize, w: &[float32x4_t; 4]) {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe {
        for (i, row) in acc.iter_mut().enumerate() {
            let xv = x_at::<MR>(x, i, k);
            for c in 0..4 {
                row[c] = vfmaq_n_f32(row[c], w[c], xv);
            }
        }
    }
}

/// # Safety
/// `t` describes valid memory (see [`Tile`]) with `mr == MR`.
#[inline(always)]
unsafe fn q8_neon<const MR: usize>(t: &Tile) {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe {
        let gs = t.group_size;
        for h in 0..2 {
            let mut acc = [[vdupq_n_f32(0.0); 4]; MR];
            for g in 0..t.kc / gs {
                let sb = t.sb.add(g * 2 * STRIP);
                for k in g * gs..(g + 1) * gs {
                    let w = dequant(vld1q_u8(t.q.add(k * STRIP + h * 16)), sb, h);
                    accumulate::<MR>(&mut acc, t.x, k, &w);
                }
            }
            store_half(&acc, t.out, h);
        }
    }
}

/// # Safety
/// `t` describes valid memory (see [`Tile`]) with `mr == MR`.
#[inline(always)]
unsafe fn q4_neon<const MR: usize>(t: &Tile) {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe {
        let gs = t.group_size;
        let low = vdupq_n_u8(0xF);
        for h in 0..2 {
            let mut acc = [[vdupq_n_f32(0.0); 4]; MR];
            for g in 0..t.kc / gs {
                let sb = t.sb.add(g * 2 * STRIP);
                for p in g * gs / 2..(g + 1) * gs / 2 {
                    // One byte per output holds k = 2p (low nibble) and k = 2p + 1 (high nibble).
                    let bytes = vld1q_u8(t.q.add(p * STRIP + h * 16));
                    let w = dequant(vandq_u8(bytes, low), sb, h);
                    accumulate::<MR>(&mut acc, t.x, 2 * p, &w);
                    let w = dequant(vshrq_n_u8::<4>(bytes), sb, h);
                    accumulate::<MR>(&mut acc, t.x, 2 * p + 1, &w);
                }
            }
            store_half(&acc, t.out, h);
        }
    }
}

/// Dequantizes `kc` values of the strip into `panel` (`[k][32]` f32).
///
/// # Safety
/// `q`, `sb` as in [`Tile`] for `kc` values; `panel` holds `32 · kc` floats.
pub(crate) unsafe fn neon_panel(bits: u32, q: *const u8, sb: *const f32, kc: usize, gs: usize, panel: *mut f32) {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe {
        let low = vdupq_n_u8(0xF);
        for k in 0..kc {
            let g = sb.add(k / gs * 2 * STRIP);
            for h in 0..2 {
                let codes = if bits == 8 {
                    vld1q_u8(q.add(k * STRIP + h * 16))
                } else {
                    let bytes = vld1q_u8(q.add(k / 2 * STRIP + h * 16));
                    if k % 2 == 0 {
                        vandq_u8(bytes, low)
                    } else {
                        vshrq_n_u8::<4>(bytes)
                    }
                };
                let w = dequant(codes, g, h);
                for (v, &wv) in w.iter().enumerate() {
                    vst1q_f32(panel.add(k * STRIP + h * 16 + 4 * v), wv);
                }
            }
        }
    }
}

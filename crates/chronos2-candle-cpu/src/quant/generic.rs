//! Portable micro-kernels over the strip layout: plain Rust on fixed-size arrays, which LLVM
//! vectorises (SSE on x86_64, NEON on aarch64).

use super::{Tile, MR_MAX, STRIP};

/// Dequantizes one `k` of the strip into `w` and accumulates `x[i, k] · w` into `acc`.
#[inline(always)]
fn accumulate(acc: &mut [[f32; STRIP]; MR_MAX], t: &Tile, k: usize, codes: &[f32; STRIP], s: &[f32], b: &[f32]) {
    let mut w = [0f32; STRIP];
    for j in 0..STRIP {
        w[j] = codes[j] * s[j] + b[j];
    }
    for (i, row) in acc.iter_mut().enumerate().take(t.mr) {
        // SAFETY: the caller guarantees `mr` rows of `kc` values at `x`.
        let xv = unsafe { *t.x.add(k * t.mr + i) };
        for j in 0..STRIP {
            row[j] += xv * w[j];
        }
    }
}

/// # Safety
/// `t.out` is writable for `t.mr` rows of 32 floats.
#[inline(always)]
unsafe fn store(acc: &[[f32; STRIP]; MR_MAX], t: &Tile) {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe {
        for (i, row) in acc.iter().enumerate().take(t.mr) {
            std::ptr::copy_nonoverlapping(row.as_ptr(), t.out.add(i * STRIP), STRIP);
        }
    }
}

/// # Safety
/// `t` must describe valid memory (see [`Tile`]) with `mr <= MR_MAX`.
pub(crate) unsafe fn tile_q8(t: &Tile) {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe {
        let mut acc = [[0f32; STRIP]; MR_MAX];
        let q = std::slice::from_raw_parts(t.q, t.kc * STRIP);
        let groups = t.kc / t.group_size;
        let sb = std::slice::from_raw_parts(t.sb, groups * 2 * STRIP);
        for g in 0..groups {
            let s = &sb[g * 2 * STRIP..g * 2 * STRIP + STRIP];
            let b = &sb[g * 2 * STRIP + STRIP..(g + 1) * 2 * STRIP];
            for k in g * t.group_size..(g + 1) * t.group_size {
                let mut codes = [0f32; STRIP];
                for j in 0..STRIP {
                    codes[j] = q[k * STRIP + j] as f32;
                }
                accumulate(&mut acc, t, k, &codes, s, b);
            }
        }
        store(&acc, t);
    }
}

/// # Safety
/// `t` must describe valid memory (see [`Tile`]) with `mr <= MR_MAX`.
pub(crate) unsafe fn tile_q4(t: &Tile) {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe {
        let mut acc = [[0f32; STRIP]; MR_MAX];
        let q = std::slice::from_raw_parts(t.q, t.kc / 2 * STRIP);
        let groups = t.kc / t.group_size;
        let sb = std::slice::from_raw_parts(t.sb, groups * 2 * STRIP);
        for g in 0..groups {
            let s = &sb[g * 2 * STRIP..g * 2 * STRIP + STRIP];
            let b = &sb[g * 2 * STRIP + STRIP..(g + 1) * 2 * STRIP];
            for p in g * t.group_size / 2..(g + 1) * t.group_size / 2 {
                let mut lo = [0f32; STRIP];
                let mut hi = [0f32; STRIP];
                for j in 0..STRIP {
                    let byte = q[p * STRIP + j];
                    lo[j] = (byte & 0xF) as f32;
                    hi[j] = (byte >> 4) as f32;
                }
                accumulate(&mut acc, t, 2 * p, &lo, s, b);
                accumulate(&mut acc, t, 2 * p + 1, &hi, s, b);
            }
        }
        store(&acc, t);
    }
}

/// Dequantizes `kc` values of the strip into `panel` (`[k][32]` f32).
///
/// # Safety
/// `q`, `sb` as in [`Tile`] for `kc` values; `panel` holds `32 · kc` floats.
pub(crate) unsafe fn panel(bits: u32, q: *const u8, sb: *const f32, kc: usize, gs: usize, panel: *mut f32) {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe {
        let panel = std::slice::from_raw_parts_mut(panel, kc * STRIP);
        let sb = std::slice::from_raw_parts(sb, kc / gs * 2 * STRIP);
        let q = std::slice::from_raw_parts(q, kc * STRIP * bits as usize / 8);
        for k in 0..kc {
            let g = k / gs;
            let s = &sb[g * 2 * STRIP..g * 2 * STRIP + STRIP];
            let b = &sb[g * 2 * STRIP + STRIP..(g + 1) * 2 * STRIP];
            let out = &mut panel[k * STRIP..(k + 1) * STRIP];
            for j in 0..STRIP {
                let c = if bits == 8 { q[k * STRIP + j] } else { (q[(k / 2) * STRIP + j] >> (4 * (k % 2))) & 0xF };
                out[j] = c as f32 * s[j] + b[j];
            }
        }
    }
}

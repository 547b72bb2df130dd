//! Portable micro-kernel over the strip layout: plain Rust on fixed-size arrays, which LLVM
//! vectorises (SSE on x86_64, NEON on aarch64).

use super::{PanelTile, MR_MAX, STRIP};

/// `mr × 32` tile of `x` times an f32 panel.
///
/// # Safety
/// `t` must describe valid memory (see [`PanelTile`]) with `mr <= MR_MAX`.
pub(crate) unsafe fn tile_f32(t: &PanelTile) {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe {
        let mut acc = [[0f32; STRIP]; MR_MAX];
        let w = std::slice::from_raw_parts(t.w, t.kc * STRIP);
        for k in 0..t.kc {
            let wk = &w[k * STRIP..(k + 1) * STRIP];
            for (i, row) in acc.iter_mut().enumerate().take(t.mr) {
                let xv = *t.x.add(k * t.mr + i);
                for j in 0..STRIP {
                    row[j] += xv * wk[j];
                }
            }
        }
        for (i, row) in acc.iter().enumerate().take(t.mr) {
            std::ptr::copy_nonoverlapping(row.as_ptr(), t.out.add(i * STRIP), STRIP);
        }
    }
}

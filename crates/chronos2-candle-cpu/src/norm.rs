//! RMS norm over the last axis, `x / sqrt(mean(x²) + eps) · weight`, rows on the rayon threads.
//!
//! candle's sums the squares of a row one after another (a chain of dependent scalar adds) and
//! zeroes its output on the calling thread first; here the sum runs in 16 independent lanes
//! (vectorised) and the output is written once. The result differs from candle's only by the
//! order of the additions in the sum.

use rayon::prelude::*;

/// Lanes of the partial sums of squares.
const LANES: usize = 16;
/// Values per parallel chunk of rows.
const CHUNK: usize = 1 << 14;

/// `Σ v²` over `row`, in [`LANES`] partial sums added pairwise at the end.
#[inline]
fn sum_squares(row: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v * v;
        }
    }
    for (a, &v) in acc.iter_mut().zip(chunks.remainder()) {
        *a += v * v;
    }
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            acc[i] += acc[i + width];
        }
    }
    acc[0]
}

/// RMS norm of the rows of `x` (`weight.len()` values each) with scale `weight`.
pub(crate) fn rms_norm(x: &[f32], weight: &[f32], eps: f32) -> Vec<f32> {
    let d = weight.len();
    let rows_per_chunk = (CHUNK / d.max(1)).max(1);
    crate::gemm::filled_vec(x.len(), |out| {
        let run = |(src, dst): (&[f32], &mut [std::mem::MaybeUninit<f32>])| {
            for (s, o) in src.chunks_exact(d).zip(dst.chunks_exact_mut(d)) {
                let m = (sum_squares(s) / d as f32 + eps).sqrt();
                for ((o, &v), &w) in o.iter_mut().zip(s).zip(weight) {
                    o.write(v / m * w);
                }
            }
        };
        if x.len() >= 4 * CHUNK {
            x.par_chunks(rows_per_chunk * d).zip(out.par_chunks_mut(rows_per_chunk * d)).for_each(run);
        } else {
            run((x, out));
        }
    })
}

#[cfg(test)]
mod tests;

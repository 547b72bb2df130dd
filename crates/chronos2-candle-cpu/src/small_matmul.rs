//! `y = x W^T` for few rows of `x` (the batch-1 / short-context case), streaming the float
//! weight once in its stored `(out, in)` layout.
//!
//! With few rows, a forward is bound by reading the weights from memory; a general GEMM packs
//! the whole weight into a scratch buffer on every call, which costs more than the product
//! itself. Here each thread takes a range of output rows and computes, for every row of `x`,
//! the dot product with each weight row, 16 lanes at a time (AVX-512 when the CPU has it).

use rayon::prelude::*;

/// Rows of `x` up to which [`matmul_small`] beats the general GEMM (which packs the whole weight
/// on every call); measured on the full-size model: 11 to 88 rows faster here, 280 rows faster in gemm.
pub const MAX_ROWS: usize = 128;

/// Output rows per parallel task.
const ROWS_PER_TASK: usize = 64;

/// `y (m, n) = x (m, k) · w (n, k)^T`, all row-major.
pub fn matmul_small(x: &[f32], m: usize, w: &[f32], n: usize, k: usize) -> Vec<f32> {
    assert_eq!(x.len(), m * k);
    assert_eq!(w.len(), n * k);
    // Computed transposed, `(n, m)`, so that tasks write disjoint contiguous ranges.
    let mut yt = vec![0f32; n * m];
    yt.par_chunks_mut(ROWS_PER_TASK * m).enumerate().for_each(|(task, out)| {
        let first = task * ROWS_PER_TASK;
        let mut rows = out.chunks_mut(4 * m);
        let mut j = first;
        for block in &mut rows {
            let count = block.len() / m;
            if count == 4 {
                let w4 = [0, 1, 2, 3].map(|r| &w[(j + r) * k..(j + r + 1) * k]);
                let mut i = 0;
                while i + 4 <= m {
                    let x4 = [0, 1, 2, 3].map(|t| &x[(i + t) * k..(i + t + 1) * k]);
                    let tile = dot4x4(x4, w4);
                    for (t, sums) in tile.iter().enumerate() {
                        for r in 0..4 {
                            block[r * m + i + t] = sums[r];
                        }
                    }
                    i += 4;
                }
                for i in i..m {
                    let sums = dot4(&x[i * k..(i + 1) * k], w4);
                    for r in 0..4 {
                        block[r * m + i] = sums[r];
                    }
                }
            } else {
                for r in 0..count {
                    let w_row = &w[(j + r) * k..(j + r + 1) * k];
                    for i in 0..m {
                        block[r * m + i] = dot(&x[i * k..(i + 1) * k], w_row);
                    }
                }
            }
            j += count;
        }
    });
    let mut y = vec![0f32; m * n];
    for (j, row) in yt.chunks(m).enumerate() {
        for (i, v) in row.iter().enumerate() {
            y[i * n + j] = *v;
        }
    }
    y
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports AVX-512F (checked above).
        return unsafe { dot_avx512(a, b) };
    }
    dot_portable(a, b)
}

/// The 4 x 4 dot products of four rows of `x` with four weight rows (each load serves four
/// products).
fn dot4x4(x: [&[f32]; 4], w: [&[f32]; 4]) -> [[f32; 4]; 4] {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports AVX-512F (checked above).
        return unsafe { dot4x4_avx512(x, w) };
    }
    x.map(|row| dot4(row, w))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dot4x4_avx512(x: [&[f32]; 4], w: [&[f32]; 4]) -> [[f32; 4]; 4] {
    use std::arch::x86_64::*;
    let n = x[0].len();
    let px = x.map(|r| {
        assert_eq!(r.len(), n);
        r.as_ptr()
    });
    let pw = w.map(|r| {
        assert_eq!(r.len(), n);
        r.as_ptr()
    });
    let mut acc = [[_mm512_setzero_ps(); 4]; 4];
    let mut i = 0;
    while i + 16 <= n {
        let vw = pw.map(|p| _mm512_loadu_ps(p.add(i)));
        for t in 0..4 {
            let vx = _mm512_loadu_ps(px[t].add(i));
            for r in 0..4 {
                acc[t][r] = _mm512_fmadd_ps(vx, vw[r], acc[t][r]);
            }
        }
        i += 16;
    }
    let mut out = acc.map(|row| row.map(|v| _mm512_reduce_add_ps(v)));
    while i < n {
        for t in 0..4 {
            for r in 0..4 {
                out[t][r] += *px[t].add(i) * *pw[r].add(i);
            }
        }
        i += 1;
    }
    out
}

/// Dot products of `a` with four rows at once (each load of `a` serves four rows).
fn dot4(a: &[f32], w: [&[f32]; 4]) -> [f32; 4] {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports AVX-512F (checked above).
        return unsafe { dot4_avx512(a, w) };
    }
    w.map(|row| dot_portable(a, row))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dot4_avx512(a: &[f32], w: [&[f32]; 4]) -> [f32; 4] {
    use std::arch::x86_64::*;
    let n = a.len();
    let pa = a.as_ptr();
    let pw = w.map(|r| {
        assert_eq!(r.len(), n);
        r.as_ptr()
    });
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    while i + 16 <= n {
        let va = _mm512_loadu_ps(pa.add(i));
        for r in 0..4 {
            acc[r] = _mm512_fmadd_ps(va, _mm512_loadu_ps(pw[r].add(i)), acc[r]);
        }
        i += 16;
    }
    let mut out = acc.map(|v| _mm512_reduce_add_ps(v));
    while i < n {
        for r in 0..4 {
            out[r] += *pa.add(i) * *pw[r].add(i);
        }
        i += 1;
    }
    out
}

/// 16 independent lanes, summed at the end (auto-vectorised where the target allows).
fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (a16, a_rest) = a.split_at(a.len() / 16 * 16);
    let (b16, b_rest) = b.split_at(a16.len());
    for (ca, cb) in a16.chunks_exact(16).zip(b16.chunks_exact(16)) {
        for l in 0..16 {
            acc[l] += ca[l] * cb[l];
        }
    }
    let tail: f32 = a_rest.iter().zip(b_rest).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc0 = _mm512_setzero_ps();
    let mut acc1 = _mm512_setzero_ps();
    let mut i = 0;
    while i + 32 <= n {
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i + 16)), _mm512_loadu_ps(pb.add(i + 16)), acc1);
        i += 32;
    }
    if i + 16 <= n {
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), acc0);
        i += 16;
    }
    let mut sum = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
    while i < n {
        sum += *pa.add(i) * *pb.add(i);
        i += 1;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_naive_product() {
        for (m, n, k) in [(1, 5, 3), (3, 130, 48), (11, 70, 768), (16, 64, 1030), (37, 9, 40)] {
            let x: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 23) as f32 * 0.1 - 1.0).collect();
            let w: Vec<f32> = (0..n * k).map(|i| ((i * 104_729) % 31) as f32 * 0.05 - 0.7).collect();
            let y = matmul_small(&x, m, &w, n, k);
            for i in 0..m {
                for j in 0..n {
                    let exact: f64 = (0..k).map(|t| x[i * k + t] as f64 * w[j * k + t] as f64).sum();
                    let got = y[i * n + j] as f64;
                    assert!(
                        (got - exact).abs() <= 1e-4 * exact.abs().max(1.0),
                        "({m},{n},{k}) [{i},{j}]: {got} vs {exact}"
                    );
                }
            }
            assert_eq!(dot_portable(&x[..k], &w[..k]), {
                let mut acc = [0f32; 16];
                for t in 0..k / 16 * 16 {
                    acc[t % 16] += x[t] * w[t];
                }
                acc.iter().sum::<f32>() + (k / 16 * 16..k).map(|t| x[t] * w[t]).sum::<f32>()
            });
        }
    }
}

//! Fused attention `softmax(q kᵀ + mask) v` (scale 1.0), without the `(len × len)` scores.
//!
//! Per (batch row, head) the queries are taken in blocks of [`QB`] rows and the keys in blocks
//! of [`KB`]: a `QB × KB` block of scores (the keys of the block transposed once per head,
//! `[d][KB]`, so that a query row's scores are broadcasts of `q[d]` times contiguous vectors),
//! plus the additive key mask, feeds an online softmax (running max and sum per query row,
//! the accumulated output rescaled when the max grows), and the block's probabilities times the
//! block of `v` are added to the output. (batch row, head) pairs run in parallel (rayon).
//!
//! A query row whose keys are all masked with `f32::MIN` gets the uniform softmax the reference
//! computes (every score equals `f32::MIN`, so each weighs `exp(0)`).
//!
//! The same plain-Rust source is compiled three times — AVX-512F, AVX2 + FMA and portable —
//! and the variant is chosen at run time ([`Isa`]); fixed-size inner loops vectorise.

use rayon::prelude::*;

use crate::isa::Isa;

/// Query rows per block.
const QB: usize = 8;
/// Keys per block.
const KB: usize = 32;

/// Shapes of one attention call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionShape {
    /// Leading batch rows (`n` of `(n, heads, len, d)`).
    pub batch: usize,
    pub heads: usize,
    pub q_len: usize,
    pub k_len: usize,
    pub d: usize,
}

/// `out (batch, heads, q_len, d) = softmax(q kᵀ + mask) v` with `q (batch, heads, q_len, d)`,
/// `k`, `v` `(batch, heads, k_len, d)` and an additive key mask `(batch, k_len)`, all
/// row-major; runs on the kernel set `isa`.
pub fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: &[f32],
    shape: AttentionShape,
    isa: Isa,
) -> candle_core::Result<Vec<f32>> {
    let AttentionShape { batch, heads, q_len, k_len, d } = shape;
    let pairs = batch * heads;
    if q.len() != pairs * q_len * d || k.len() != pairs * k_len * d || v.len() != k.len() {
        candle_core::bail!("attention: q/k/v sizes do not match {shape:?}");
    }
    if mask.len() != batch * k_len {
        candle_core::bail!("attention: mask has {} values, expected {batch} x {k_len}", mask.len());
    }
    if !isa.available() {
        candle_core::bail!("attention: {isa:?} is not supported by this CPU");
    }
    let mut out = vec![0f32; pairs * q_len * d];
    if pairs == 0 || q_len == 0 || d == 0 {
        return Ok(out);
    }
    if k_len == 0 {
        candle_core::bail!("attention: no keys");
    }
    let pair_out = q_len * d;
    // Enough pairs per task that each task's scratch is reused; a few tasks per thread.
    let threads = rayon::current_num_threads().max(1);
    let work = pairs * q_len * k_len * d;
    let tasks = if work < 1 << 16 { 1 } else { (threads * 4).min(pairs) };
    let per_task = pairs.div_ceil(tasks);
    let job = |(task, chunk): (usize, &mut [f32])| {
        let mut scratch = Scratch::new(d);
        for (local, o) in chunk.chunks_mut(pair_out).enumerate() {
            let p = task * per_task + local;
            let head = Head {
                q: &q[p * q_len * d..(p + 1) * q_len * d],
                k: &k[p * k_len * d..(p + 1) * k_len * d],
                v: &v[p * k_len * d..(p + 1) * k_len * d],
                mask: &mask[(p / heads) * k_len..(p / heads + 1) * k_len],
                q_len,
                k_len,
                d,
            };
            run_head(isa, &head, o, &mut scratch);
        }
    };
    if tasks == 1 {
        out.chunks_mut(per_task * pair_out).enumerate().for_each(job);
    } else {
        out.par_chunks_mut(per_task * pair_out).enumerate().for_each(job);
    }
    Ok(out)
}

/// One (batch row, head).
struct Head<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    mask: &'a [f32],
    q_len: usize,
    k_len: usize,
    d: usize,
}

/// Per-task buffers, allocated once per task.
struct Scratch {
    /// The query block, `[QB][d]` (rows past the last query stay zero).
    q: Vec<f32>,
    /// One key block transposed, `[d][KB]`.
    kt: Vec<f32>,
    /// Output accumulators `[QB][d]`.
    acc: Vec<f32>,
}

impl Scratch {
    fn new(d: usize) -> Self {
        Scratch { q: vec![0f32; QB * d], kt: vec![0f32; d * KB], acc: vec![0f32; QB * d] }
    }
}

fn run_head(isa: Isa, h: &Head, out: &mut [f32], s: &mut Scratch) {
    match isa {
        Isa::Generic => head_portable(h, out, s),
        // SAFETY: `isa` is available (checked by `attention`).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { head_avx2(h, out, s) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { head_avx512(h, out, s) },
        // NEON is the aarch64 baseline: the kernel body compiles to NEON as it is.
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => head_portable(h, out, s),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn head_avx512(h: &Head, out: &mut [f32], s: &mut Scratch) {
    head_body(h, out, s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn head_avx2(h: &Head, out: &mut [f32], s: &mut Scratch) {
    head_body(h, out, s)
}

fn head_portable(h: &Head, out: &mut [f32], s: &mut Scratch) {
    head_body(h, out, s)
}

/// The kernel; inlined into each instruction-set wrapper above.
#[inline(always)]
fn head_body(h: &Head, out: &mut [f32], s: &mut Scratch) {
    let d = h.d;
    let mut q0 = 0;
    while q0 < h.q_len {
        let qb = QB.min(h.q_len - q0);
        s.q.fill(0.0);
        s.q[..qb * d].copy_from_slice(&h.q[q0 * d..(q0 + qb) * d]);
        let mut max = [f32::NEG_INFINITY; QB];
        let mut sum = [0f32; QB];
        s.acc.fill(0.0);
        let mut k0 = 0;
        while k0 < h.k_len {
            let kb = KB.min(h.k_len - k0);
            // Key block transposed: kt[c][j] = k[k0 + j][c] (columns past the block unused).
            for j in 0..kb {
                let row = &h.k[(k0 + j) * d..(k0 + j + 1) * d];
                for (c, &val) in row.iter().enumerate() {
                    s.kt[c * KB + j] = val;
                }
            }
            // Scores of the QB x KB block: each row of kt serves the QB queries.
            let mut scores = [[0f32; KB]; QB];
            for c in 0..d {
                let kt: &[f32; KB] = s.kt[c * KB..(c + 1) * KB].try_into().expect("KB columns");
                for (i, row) in scores.iter_mut().enumerate() {
                    let qv = s.q[i * d + c];
                    for j in 0..KB {
                        row[j] += qv * kt[j];
                    }
                }
            }
            let mask = &h.mask[k0..k0 + kb];
            for i in 0..qb {
                let row = &mut scores[i];
                let mut block_max = f32::NEG_INFINITY;
                for j in 0..kb {
                    row[j] += mask[j];
                    block_max = block_max.max(row[j]);
                }
                let new_max = max[i].max(block_max);
                let rescale = exp(max[i] - new_max);
                max[i] = new_max;
                let mut block_sum = 0f32;
                for p in row.iter_mut().take(kb) {
                    *p = exp(*p - new_max);
                    block_sum += *p;
                }
                sum[i] = sum[i] * rescale + block_sum;
                if rescale != 1.0 {
                    for a in &mut s.acc[i * d..(i + 1) * d] {
                        *a *= rescale;
                    }
                }
            }
            // Output += P · V: each row of v serves the QB queries.
            for (j, vrow) in h.v[k0 * d..(k0 + kb) * d].chunks_exact(d).enumerate() {
                for (acc, row) in s.acc.chunks_exact_mut(d).zip(&scores).take(qb) {
                    let p = row[j];
                    for (a, &vv) in acc.iter_mut().zip(vrow) {
                        *a += p * vv;
                    }
                }
            }
            k0 += kb;
        }
        for i in 0..qb {
            let inv = 1.0 / sum[i];
            let dst = &mut out[(q0 + i) * d..(q0 + i + 1) * d];
            for (o, &a) in dst.iter_mut().zip(&s.acc[i * d..(i + 1) * d]) {
                *o = a * inv;
            }
        }
        q0 += qb;
    }
}

/// `e^x` for `x <= 0` (softmax after the max is subtracted) to about 2e-7 relative:
/// `2^n · e^r` with `n` the nearest integer to `x · log2 e`, `r = x - n ln 2` (ln 2 split in two
/// parts, Cody-Waite) and a degree-7 polynomial for `e^r`, `|r| <= ln 2 / 2`; `0` below `e^-87`
/// (and for `-inf`). Plain arithmetic, so it vectorises.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding and subtracting it rounds to an integer
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let n = ((x * std::f32::consts::LOG2_E).clamp(-126.0, 126.0) + ROUND) - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r / 5040.0))))));
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    if x < -87.0 {
        0.0
    } else {
        p * scale
    }
}

#[cfg(test)]
mod tests;

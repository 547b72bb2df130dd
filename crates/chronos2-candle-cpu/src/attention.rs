//! Fused attention `softmax(q kᵀ + mask) v` (scale 1.0), without the `(len × len)` scores.
//!
//! Per (batch row, head) the keys are transposed once (`[d][len]`, padded to a multiple of 16)
//! and the queries are taken in blocks of [`QB`] rows. For a block, the `QB × len` scores are
//! computed 16 keys at a time with the block's accumulators in registers (each step one vector
//! of keys times `QB` broadcast query values), the additive key mask is added, each row gets
//! its max, exponentials and sum (an exact softmax over the row: the rows are short, at most a
//! few hundred tokens, so the block's row fits in L1 and no running rescale is needed), and
//! the probabilities times `v` are accumulated 16 features at a time, again in registers. Only
//! `QB × len` scores exist at any time. (batch row, head) pairs run in parallel (rayon).
//!
//! A query row whose keys are all masked with `f32::MIN` gets the uniform softmax the reference
//! computes (every score equals `f32::MIN`, so each weighs `exp(0)`).
//!
//! The same plain-Rust source is compiled three times — AVX-512F, AVX2 + FMA and portable —
//! and the variant is chosen at run time ([`Isa`]); the fixed-size inner loops vectorise.

use rayon::prelude::*;

use crate::isa::Isa;

/// Query rows per block.
const QB: usize = 4;
/// Keys (and features) per vector step.
const L: usize = 16;

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
        let mut scratch = Scratch::new(d, k_len);
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
    /// The keys of one head transposed, `[d][kp]`, `kp` = `k_len` rounded up to [`L`] (the
    /// padding stays zero).
    kt: Vec<f32>,
    /// Scores, then probabilities, of a query block, `[QB][kp]`.
    p: Vec<f32>,
    kp: usize,
}

impl Scratch {
    fn new(d: usize, k_len: usize) -> Self {
        let kp = k_len.div_ceil(L) * L;
        Scratch { kt: vec![0f32; d * kp], p: vec![0f32; QB * kp], kp }
    }
}

fn run_head(isa: Isa, h: &Head, out: &mut [f32], s: &mut Scratch) {
    match isa {
        Isa::Generic => head_portable(h, out, s),
        // SAFETY: `isa` is available (checked by `attention`).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { head_avx2(h, out, s) },
        // SAFETY: `isa` is available (checked by `attention`).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { head_avx512(h, out, s) },
        // NEON is the aarch64 baseline: the kernel body compiles to NEON as it is.
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => head_portable(h, out, s),
    }
}

/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn head_avx512(h: &Head, out: &mut [f32], s: &mut Scratch) {
    head_body::<Fused>(h, out, s)
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn head_avx2(h: &Head, out: &mut [f32], s: &mut Scratch) {
    head_body::<Fused>(h, out, s)
}

fn head_portable(h: &Head, out: &mut [f32], s: &mut Scratch) {
    head_body::<Separate>(h, out, s)
}

/// `a · b + c`: one fused multiply-add where the wrapper's instruction set has FMA
/// ([`Fused`]), a multiply and an add otherwise ([`Separate`]; `mul_add` would be a library
/// call there).
trait MulAdd {
    fn mul_add(a: f32, b: f32, c: f32) -> f32;
}

#[cfg(target_arch = "x86_64")]
struct Fused;
struct Separate;

#[cfg(target_arch = "x86_64")]
impl MulAdd for Fused {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}

impl MulAdd for Separate {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

/// The kernel; inlined into each instruction-set wrapper above.
#[inline(always)]
fn head_body<M: MulAdd>(h: &Head, out: &mut [f32], s: &mut Scratch) {
    let (d, k_len, kp) = (h.d, h.k_len, s.kp);
    for (j, row) in h.k.chunks_exact(d).enumerate() {
        for (c, &val) in row.iter().enumerate() {
            s.kt[c * kp + j] = val;
        }
    }
    let mut q0 = 0;
    while q0 < h.q_len {
        let qb = QB.min(h.q_len - q0);
        // Rows past the block's end repeat its last query (computed, never written out).
        let q_rows: [&[f32]; QB] = std::array::from_fn(|i| {
            let r = q0 + i.min(qb - 1);
            &h.q[r * d..(r + 1) * d]
        });
        scores::<M>(&q_rows, &s.kt, kp, &mut s.p);
        let mut inv = [0f32; QB];
        for (i, inv) in inv.iter_mut().enumerate().take(qb) {
            *inv = 1.0 / softmax_row(&mut s.p[i * kp..(i + 1) * kp], h.mask);
        }
        let mut c0 = 0;
        while c0 + L <= d {
            let mut acc = [[0f32; L]; QB];
            for (j, vrow) in h.v.chunks_exact(d).enumerate() {
                let vv: &[f32; L] = vrow[c0..c0 + L].try_into().expect("L features");
                for (i, a) in acc.iter_mut().enumerate() {
                    let p = s.p[i * kp + j];
                    for l in 0..L {
                        a[l] = M::mul_add(p, vv[l], a[l]);
                    }
                }
            }
            for (i, a) in acc.iter().enumerate().take(qb) {
                for (o, &v) in out[(q0 + i) * d + c0..(q0 + i) * d + c0 + L].iter_mut().zip(a) {
                    *o = v * inv[i];
                }
            }
            c0 += L;
        }
        // Features past the last whole vector (d not a multiple of L).
        for c in c0..d {
            for i in 0..qb {
                let mut a = 0f32;
                for j in 0..k_len {
                    a = M::mul_add(s.p[i * kp + j], h.v[j * d + c], a);
                }
                out[(q0 + i) * d + c] = a * inv[i];
            }
        }
        q0 += qb;
    }
}

/// `p[i][j] = q_i · k_j` for the block's `QB` queries and every (padded) key, 16 keys at a time.
#[inline(always)]
fn scores<M: MulAdd>(q: &[&[f32]; QB], kt: &[f32], kp: usize, p: &mut [f32]) {
    let d = q[0].len();
    let mut j0 = 0;
    while j0 < kp {
        let mut acc = [[0f32; L]; QB];
        for c in 0..d {
            let kv: &[f32; L] = kt[c * kp + j0..c * kp + j0 + L].try_into().expect("L keys");
            for (a, qr) in acc.iter_mut().zip(q) {
                let qv = qr[c];
                for l in 0..L {
                    a[l] = M::mul_add(qv, kv[l], a[l]);
                }
            }
        }
        for (i, a) in acc.iter().enumerate() {
            p[i * kp + j0..i * kp + j0 + L].copy_from_slice(a);
        }
        j0 += L;
    }
}

/// Adds the key mask to one row of scores (`kp` long, the first `mask.len()` real), replaces it
/// by `exp(score - max)` (0 on the padding) and returns the sum.
#[inline(always)]
fn softmax_row(row: &mut [f32], mask: &[f32]) -> f32 {
    let k_len = mask.len();
    for (x, &m) in row.iter_mut().zip(mask) {
        *x += m;
    }
    row[k_len..].fill(f32::NEG_INFINITY);
    let mut lanes = [f32::NEG_INFINITY; L];
    for chunk in row.chunks_exact(L) {
        for l in 0..L {
            lanes[l] = lanes[l].max(chunk[l]);
        }
    }
    let max = lanes.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
    let mut sums = [0f32; L];
    for chunk in row.chunks_exact_mut(L) {
        for l in 0..L {
            chunk[l] = exp(chunk[l] - max);
            sums[l] += chunk[l];
        }
    }
    sums.iter().sum()
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

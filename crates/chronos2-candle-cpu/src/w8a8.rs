//! int8 × int8 linear layers (`--quantize w8a8`): MLX-affine int8 weights (group 64, as
//! `--quantize int8`) times activations quantized to int8 per token and per group of 64.
//!
//! With a weight `w = s·q + b` (codes `q` in `0..=255`, scale `s` and bias `b` per output and
//! group) and an activation group `x ≈ sx·qx` (`sx = max|x| / 127`, `qx` in `-127..=127`):
//!
//! `Σ_k x_k w_k ≈ (s·sx) · Σ_k q_k qx_k + b · (sx · Σ_k qx_k)`,
//!
//! so each group's integer dot products `Σ q qx` (exact, int32) are turned into floats once per
//! group, and the MLX bias enters through the per-group activation sum.
//!
//! Layout: strips of 32 outputs; per group of 4 inputs the strip's 32 × 4 codes are contiguous,
//! output-major (`[k / 4][32][4]`), which is what `vpdpbusd` (AVX512-VNNI: 16 lanes, each the
//! dot product of 4 unsigned bytes with 4 signed bytes) reads. The portable kernel does the
//! same integer sums and the same float operations in the same order (`mul_add` where the
//! VNNI kernel uses FMA), so both give identical numbers.

use chronos2_core::quant::QuantizedWeight;
use rayon::prelude::*;

/// Outputs per strip.
const STRIP: usize = 32;
/// Inputs per quantization group (of the weight and the activations).
pub const GROUP: usize = 64;
/// Rows per micro-kernel call.
const MR: usize = 6;

/// Which w8a8 kernel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum W8a8Isa {
    /// Plain Rust (same numbers as VNNI).
    Portable,
    /// AVX512-VNNI (`vpdpbusd`).
    #[cfg(target_arch = "x86_64")]
    Vnni,
}

impl W8a8Isa {
    /// The best kernel this CPU runs.
    pub fn detect() -> W8a8Isa {
        #[cfg(target_arch = "x86_64")]
        if W8a8Isa::Vnni.available() {
            return W8a8Isa::Vnni;
        }
        W8a8Isa::Portable
    }

    pub fn available(self) -> bool {
        match self {
            W8a8Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            W8a8Isa::Vnni => {
                is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vnni")
            }
        }
    }

    /// Every kernel this CPU runs.
    pub fn all_available() -> Vec<W8a8Isa> {
        #[allow(unused_mut)]
        let mut v = vec![W8a8Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        v.extend([W8a8Isa::Vnni].into_iter().filter(|i| i.available()));
        v
    }
}

/// An int8 weight in w8a8 kernel layout.
#[derive(Debug, Clone)]
pub struct W8a8Matmul {
    out_dim: usize,
    in_dim: usize,
    /// Codes, `strips × (in_dim / 4) × 32 × 4` bytes.
    q: Vec<u8>,
    /// Per strip and group: 32 scales, then 32 biases.
    sb: Vec<f32>,
    isa: W8a8Isa,
}

/// Activations quantized per row and group.
struct QuantizedRows {
    /// `(m, k)` codes.
    q: Vec<i8>,
    /// `(m, groups)` scales `sx`.
    scale: Vec<f32>,
    /// `(m, groups)`: `sx · Σ qx` of the group.
    scaled_sum: Vec<f32>,
}

/// Quantizes `x (m, k)` per row and group of [`GROUP`]: `sx = max|x| / 127`, `qx = round(x / sx)`.
fn quantize_rows(x: &[f32], m: usize, k: usize) -> QuantizedRows {
    let groups = k / GROUP;
    let mut out = QuantizedRows { q: vec![0; m * k], scale: vec![0.0; m * groups], scaled_sum: vec![0.0; m * groups] };
    for i in 0..m {
        for g in 0..groups {
            let src = &x[i * k + g * GROUP..i * k + (g + 1) * GROUP];
            let max = src.iter().fold(0f32, |a, v| a.max(v.abs()));
            let sx = max / 127.0;
            let inv = if max > 0.0 { 127.0 / max } else { 0.0 };
            let dst = &mut out.q[i * k + g * GROUP..i * k + (g + 1) * GROUP];
            let mut sum = 0i32;
            for (d, &v) in dst.iter_mut().zip(src) {
                let c = (v * inv).round().clamp(-127.0, 127.0) as i8;
                *d = c;
                sum += c as i32;
            }
            out.scale[i * groups + g] = sx;
            out.scaled_sum[i * groups + g] = sx * sum as f32;
        }
    }
    out
}

impl W8a8Matmul {
    /// From an MLX-layout 8-bit weight with group size 64.
    pub fn new(w: &QuantizedWeight) -> candle_core::Result<Self> {
        Self::with_isa(w, W8a8Isa::detect())
    }

    /// Like [`new`](Self::new) with a given kernel (for tests).
    pub fn with_isa(w: &QuantizedWeight, isa: W8a8Isa) -> candle_core::Result<Self> {
        if w.bits != 8 || w.group_size != GROUP {
            candle_core::bail!(
                "w8a8: needs 8-bit weights in groups of {GROUP}, got {} bits, group {}",
                w.bits,
                w.group_size
            );
        }
        if !isa.available() {
            candle_core::bail!("w8a8: {isa:?} is not supported by this CPU");
        }
        let (n, k) = (w.out_dim, w.in_dim);
        if n == 0 || k == 0 || !k.is_multiple_of(GROUP) {
            candle_core::bail!("w8a8: bad shape ({n}, {k})");
        }
        let groups = k / GROUP;
        if w.packed.len() != n * w.words_per_row() || w.scales.len() != n * groups || w.biases.len() != n * groups {
            candle_core::bail!("w8a8: inconsistent quantized weight sizes");
        }
        let strips = n.div_ceil(STRIP);
        let mut q = vec![0u8; strips * k * STRIP];
        let mut sb = vec![0f32; strips * groups * 2 * STRIP];
        let wpr = w.words_per_row();
        for row in 0..n {
            let (s, j) = (row / STRIP, row % STRIP);
            let words = &w.packed[row * wpr..(row + 1) * wpr];
            let dst = &mut q[s * k * STRIP..(s + 1) * k * STRIP];
            for col in 0..k {
                let code = (words[col / 4] >> ((col % 4) * 8)) & 0xFF;
                dst[(col / 4) * STRIP * 4 + j * 4 + col % 4] = code as u8;
            }
            for g in 0..groups {
                let base = (s * groups + g) * 2 * STRIP;
                sb[base + j] = w.scales[row * groups + g];
                sb[base + STRIP + j] = w.biases[row * groups + g];
            }
        }
        Ok(W8a8Matmul { out_dim: n, in_dim: k, q, sb, isa })
    }

    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    pub fn in_dim(&self) -> usize {
        self.in_dim
    }

    /// Bytes held (codes, scales and biases; strips padded to 32 rows).
    pub fn footprint_bytes(&self) -> usize {
        self.q.len() + 4 * self.sb.len()
    }

    /// `y (m, out) ≈ x (m, in) · dequant(W)^T (+ bias)` with `x` quantized per row and group.
    pub fn matmul(&self, x: &[f32], m: usize, bias: Option<&[f32]>, y: &mut [f32]) -> candle_core::Result<()> {
        let (n, k) = (self.out_dim, self.in_dim);
        crate::gemm::check_shapes(x.len(), m, k, n, bias, y.len())?;
        if m == 0 {
            return Ok(());
        }
        let xq = quantize_rows(x, m, k);
        let strips = n.div_ceil(STRIP);
        let threads = rayon::current_num_threads().max(1);
        let tasks = if m * n * k < 1 << 16 { 1 } else { (threads * 4).min(strips) };
        let per_task = strips.div_ceil(tasks);
        let yp = SendPtr(y.as_mut_ptr());
        let job = |first: usize| {
            // SAFETY: each task writes only the columns of its own strips.
            unsafe { self.run_strips(&xq, m, bias, yp, first, (first + per_task).min(strips)) }
        };
        if tasks == 1 {
            job(0);
        } else {
            (0..strips).into_par_iter().step_by(per_task).for_each(job);
        }
        Ok(())
    }

    /// # Safety
    /// `y` points to `m × out_dim` floats whose columns of strips `first..last` no one else touches.
    unsafe fn run_strips(
        &self,
        xq: &QuantizedRows,
        m: usize,
        bias: Option<&[f32]>,
        y: SendPtr,
        first: usize,
        last: usize,
    ) {
        let (n, k) = (self.out_dim, self.in_dim);
        let groups = k / GROUP;
        let mut tile = [[0f32; STRIP]; MR];
        for s in first..last {
            let n0 = s * STRIP;
            let cols = STRIP.min(n - n0);
            let q = &self.q[s * k * STRIP..(s + 1) * k * STRIP];
            let sb = &self.sb[s * groups * 2 * STRIP..(s + 1) * groups * 2 * STRIP];
            let mut r0 = 0;
            while r0 < m {
                let mr = MR.min(m - r0);
                let t = Tile {
                    x: &xq.q[r0 * k..(r0 + mr) * k],
                    scale: &xq.scale[r0 * groups..(r0 + mr) * groups],
                    scaled_sum: &xq.scaled_sum[r0 * groups..(r0 + mr) * groups],
                    q,
                    sb,
                    k,
                    mr,
                };
                match self.isa {
                    W8a8Isa::Portable => tile_portable(&t, &mut tile),
                    #[cfg(target_arch = "x86_64")]
                    W8a8Isa::Vnni => tile_vnni(&t, &mut tile),
                }
                for (i, trow) in tile.iter().enumerate().take(mr) {
                    let yrow = std::slice::from_raw_parts_mut(y.0.add((r0 + i) * n + n0), cols);
                    match bias {
                        Some(b) => {
                            for ((yv, tv), bv) in yrow.iter_mut().zip(trow).zip(&b[n0..n0 + cols]) {
                                *yv = tv + bv;
                            }
                        }
                        None => yrow.copy_from_slice(&trow[..cols]),
                    }
                }
                r0 += mr;
            }
        }
    }
}

/// One row block times one strip.
struct Tile<'a> {
    /// `mr` rows of `k` codes.
    x: &'a [i8],
    /// `(mr, groups)`.
    scale: &'a [f32],
    scaled_sum: &'a [f32],
    /// The strip's codes `[k / 4][32][4]`.
    q: &'a [u8],
    /// The strip's scales and biases per group.
    sb: &'a [f32],
    k: usize,
    mr: usize,
}

fn tile_portable(t: &Tile, out: &mut [[f32; STRIP]; MR]) {
    let groups = t.k / GROUP;
    for (i, acc_row) in out.iter_mut().enumerate().take(t.mr) {
        let mut acc = [0f32; STRIP];
        for g in 0..groups {
            let mut dots = [0i32; STRIP];
            for p in g * GROUP / 4..(g + 1) * GROUP / 4 {
                let xs = &t.x[i * t.k + 4 * p..i * t.k + 4 * p + 4];
                let codes = &t.q[p * STRIP * 4..(p + 1) * STRIP * 4];
                for (j, d) in dots.iter_mut().enumerate() {
                    for u in 0..4 {
                        *d += codes[j * 4 + u] as i32 * xs[u] as i32;
                    }
                }
            }
            let sx = t.scale[i * groups + g];
            let ss = t.scaled_sum[i * groups + g];
            let s = &t.sb[g * 2 * STRIP..g * 2 * STRIP + STRIP];
            let b = &t.sb[g * 2 * STRIP + STRIP..(g + 1) * 2 * STRIP];
            for j in 0..STRIP {
                acc[j] = (dots[j] as f32).mul_add(s[j] * sx, acc[j]);
                acc[j] = b[j].mul_add(ss, acc[j]);
            }
        }
        *acc_row = acc;
    }
}

#[cfg(target_arch = "x86_64")]
fn tile_vnni(t: &Tile, out: &mut [[f32; STRIP]; MR]) {
    // SAFETY: the kernel set was checked available when the weight was built; the slices of
    // `t` hold `mr` rows of `k` codes and the strip's `k / 4` blocks of 128 codes.
    unsafe {
        match t.mr {
            1 => vnni::<1>(t, out),
            2 => vnni::<2>(t, out),
            3 => vnni::<3>(t, out),
            4 => vnni::<4>(t, out),
            5 => vnni::<5>(t, out),
            _ => vnni::<6>(t, out),
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn vnni<const R: usize>(t: &Tile, out: &mut [[f32; STRIP]; MR]) {
    use std::arch::x86_64::*;
    let groups = t.k / GROUP;
    let mut acc0 = [_mm512_setzero_ps(); R];
    let mut acc1 = [_mm512_setzero_ps(); R];
    let xp = t.x.as_ptr();
    let qp = t.q.as_ptr();
    for g in 0..groups {
        let mut d0 = [_mm512_setzero_si512(); R];
        let mut d1 = [_mm512_setzero_si512(); R];
        for p in g * GROUP / 4..(g + 1) * GROUP / 4 {
            let w0 = _mm512_loadu_si512(qp.add(p * STRIP * 4) as *const _);
            let w1 = _mm512_loadu_si512(qp.add(p * STRIP * 4 + 64) as *const _);
            for i in 0..R {
                let xv = _mm512_set1_epi32((xp.add(i * t.k + 4 * p) as *const i32).read_unaligned());
                d0[i] = _mm512_dpbusd_epi32(d0[i], w0, xv);
                d1[i] = _mm512_dpbusd_epi32(d1[i], w1, xv);
            }
        }
        let sb = t.sb.as_ptr().add(g * 2 * STRIP);
        let (s0, s1) = (_mm512_loadu_ps(sb), _mm512_loadu_ps(sb.add(16)));
        let (b0, b1) = (_mm512_loadu_ps(sb.add(32)), _mm512_loadu_ps(sb.add(48)));
        for i in 0..R {
            let sx = _mm512_set1_ps(t.scale[i * groups + g]);
            let ss = _mm512_set1_ps(t.scaled_sum[i * groups + g]);
            acc0[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d0[i]), _mm512_mul_ps(s0, sx), acc0[i]);
            acc1[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d1[i]), _mm512_mul_ps(s1, sx), acc1[i]);
            acc0[i] = _mm512_fmadd_ps(b0, ss, acc0[i]);
            acc1[i] = _mm512_fmadd_ps(b1, ss, acc1[i]);
        }
    }
    for i in 0..R {
        _mm512_storeu_ps(out[i].as_mut_ptr(), acc0[i]);
        _mm512_storeu_ps(out[i].as_mut_ptr().add(16), acc1[i]);
    }
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: tasks write disjoint column ranges (see `run_strips`).
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

#[cfg(test)]
mod tests;

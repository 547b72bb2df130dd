//! int8 × int8 linear layers (`--quantize w8a8`): MLX-affine int8 weights (group 64, as
//! `--quantize int8`) times activations quantized to 8 bits per token and per group of 64.
//!
//! A weight `w = s·q + b` (codes `q` in `0..=255`, scale `s` and bias `b` per output and group)
//! is stored as signed codes `q' = q - 128` with `b' = b + 128·s`, so `w = s·q' + b'`. An
//! activation group is quantized asymmetrically to unsigned codes: `x ≈ sx·qx + mn` with
//! `mn = min x`, `sx = (max x - mn) / 255`, `qx = round((x - mn) / sx)` in `0..=255` (a group
//! of equal values is exact; one-sided groups such as post-ReLU ones use all 256 codes). Then
//!
//! `Σ_k x_k w_k ≈ (s·sx) · Σ_k qx_k q'_k + b' · (sx · Σ_k qx_k) + mn · Σ_k w_k`,
//!
//! so each group's integer dot products `Σ qx q'` (exact, int32) are turned into floats once per
//! group; the MLX bias enters through the activation sum `sx · Σ qx`, the activation offset
//! through the group's weight sum `c = Σ_k w_k` (stored per output and group).
//!
//! Layout: strips of 32 outputs; per 4 inputs the strip's 32 × 4 codes are contiguous,
//! output-major (`[k / 4][32][4]`), which is what `vpdpbusd` (AVX512-VNNI: 16 lanes, each the
//! dot product of 4 unsigned bytes, the activations, with 4 signed bytes, the weights) reads.
//! The activation quantizer is plain arithmetic (rounding by the `2^23` trick), compiled for
//! AVX-512, AVX2 and portably with the same operations in the same order (no fused
//! multiply-add); the portable kernel does
//! the same integer sums and the same float operations (`mul_add` where the VNNI kernel uses
//! FMA), so both paths give identical numbers.
//!
//! On CPUs with AMX-INT8 ([`crate::amx`]), `tdpbusd` computes the integer dot products of a
//! group for blocks of 32 rows × 32 outputs (the activation codes are read as tiles straight
//! from their row-major buffer, the weight codes from the same `[k / 4][32][4]` layout) and the
//! same float operations as the VNNI kernel turn them into the output, so AMX gives the same
//! numbers too. CPUs with AVX2 + FMA but no VNNI run [`avx2`] (i16 products summed by
//! `vpmaddwd`, exact; its own weight layout), with the same numbers again.

use std::mem::MaybeUninit;

use chronos2_core::quant::QuantizedWeight;
use rayon::prelude::*;

/// Outputs per strip.
const STRIP: usize = 32;
/// Inputs per quantization group (of the weight and the activations).
pub const GROUP: usize = 64;
/// Rows per micro-kernel call.
const MR: usize = 6;
/// Floats per strip and group: 32 scales `s`, 32 offsets `b'`, 32 weight sums `c`.
const SB: usize = 3 * STRIP;

/// Which w8a8 kernel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum W8a8Isa {
    /// Plain Rust (same numbers as VNNI).
    Portable,
    /// AVX2 + FMA (`vpmaddwd` on codes widened to i16, see [`avx2`]).
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// AVX512-VNNI (`vpdpbusd`).
    #[cfg(target_arch = "x86_64")]
    Vnni,
    /// AMX-INT8 (`tdpbusd`) tiles, with the VNNI kernel's float operations.
    #[cfg(target_arch = "x86_64")]
    Amx,
}

impl W8a8Isa {
    /// The best kernel this CPU runs (VNNI only where [`crate::Isa::detect`], capped by
    /// `CHRONOS2_CPU_ISA`, is AVX-512; AVX2 where it is AVX2 or AVX-512 without VNNI).
    pub fn detect() -> W8a8Isa {
        #[cfg(target_arch = "x86_64")]
        if crate::isa::amx_allowed() && W8a8Isa::Amx.available() {
            return W8a8Isa::Amx;
        }
        #[cfg(target_arch = "x86_64")]
        if crate::Isa::detect() == crate::Isa::Avx512 && W8a8Isa::Vnni.available() {
            return W8a8Isa::Vnni;
        }
        #[cfg(target_arch = "x86_64")]
        if matches!(crate::Isa::detect(), crate::Isa::Avx2 | crate::Isa::Avx512) && W8a8Isa::Avx2.available() {
            return W8a8Isa::Avx2;
        }
        W8a8Isa::Portable
    }

    pub fn available(self) -> bool {
        match self {
            W8a8Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            W8a8Isa::Avx2 => crate::Isa::Avx2.available(),
            #[cfg(target_arch = "x86_64")]
            W8a8Isa::Vnni => {
                is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(target_arch = "x86_64")]
            W8a8Isa::Amx => W8a8Isa::Vnni.available() && crate::amx::available(),
        }
    }

    /// Every kernel this CPU runs.
    pub fn all_available() -> Vec<W8a8Isa> {
        #[allow(unused_mut)]
        let mut v = vec![W8a8Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        v.extend([W8a8Isa::Avx2, W8a8Isa::Vnni, W8a8Isa::Amx].into_iter().filter(|i| i.available()));
        v
    }
}

/// An int8 weight in w8a8 kernel layout.
#[derive(Debug, Clone)]
pub struct W8a8Matmul {
    out_dim: usize,
    in_dim: usize,
    /// Signed codes `q - 128`, `strips × (in_dim / 4) × 32 × 4` bytes (for AVX2 in
    /// [`avx2::code_offset`]'s order within a strip).
    q: Vec<i8>,
    /// Per strip and group: 32 scales, 32 offsets `b + 128·s`, 32 weight sums (see [`SB`]).
    sb: Vec<f32>,
    isa: W8a8Isa,
}

/// Activations quantized per row and group, codes of type `C` (`u8`; `i16` for [`avx2`]).
struct QuantizedRows<C = u8> {
    /// `(m, k)` codes in `0..=255` (zero rows after them up to a multiple of 32 for AMX).
    q: Vec<C>,
    /// `(m, groups)` per group: `[sx, sx · Σ qx, mn]`.
    params: Vec<[f32; 3]>,
}

/// Adding and subtracting `2^23` rounds a value in `[0, 2^23)` to the nearest integer (ties to even).
const ROUND: f32 = 8_388_608.0;

/// `[sx, 1 / sx]` of a group with minimum `mn` and maximum `mx` (`1 / sx` is 0 for a constant group).
#[inline(always)]
fn group_scale(mn: f32, mx: f32) -> [f32; 2] {
    let range = mx - mn;
    [range / 255.0, if range > 0.0 { 255.0 / range } else { 0.0 }]
}

/// The code of `v`: `round((v - mn) · inv)` clamped to `0..=255`, as an exact float. Both
/// quantizers compute exactly these operations (no fused multiply-add), so they agree bit for bit.
#[inline(always)]
fn code(v: f32, mn: f32, inv: f32) -> f32 {
    let t = ((v - mn) * inv + ROUND) - ROUND;
    let t = if t > 0.0 { t } else { 0.0 };
    if t < 255.0 {
        t
    } else {
        255.0
    }
}

/// Quantizes one group of [`GROUP`] values to unsigned codes; returns `[sx, sx · Σ qx, mn]`.
#[inline(always)]
fn quantize_group(src: &[f32], dst: &mut [MaybeUninit<u8>]) -> [f32; 3] {
    let mn = src.iter().fold(f32::INFINITY, |a, &v| a.min(v));
    let mx = src.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
    let [sx, inv] = group_scale(mn, mx);
    let mut sum = 0u32;
    for (d, &v) in dst.iter_mut().zip(src) {
        let c = code(v, mn, inv) as u8;
        d.write(c);
        sum += c as u32;
    }
    [sx, sx * sum as f32, mn]
}

/// Quantizes rows of `x` (`k` values each, a multiple of [`GROUP`]), portably.
fn quantize_rows_plain(x: &[f32], q: &mut [MaybeUninit<u8>], params: &mut [MaybeUninit<[f32; 3]>]) {
    for ((src, dst), p) in x.chunks_exact(GROUP).zip(q.chunks_exact_mut(GROUP)).zip(params) {
        p.write(quantize_group(src, dst));
    }
}

/// As [`quantize_rows_plain`], with AVX-512 (the min / max of a group are exact in any order;
/// the codes use [`code`]'s operations).
///
/// # Safety
/// The CPU must support AVX-512F/BW; the slices as for [`quantize_rows_plain`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn quantize_rows_avx512(x: &[f32], q: &mut [MaybeUninit<u8>], params: &mut [MaybeUninit<[f32; 3]>]) {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe {
        use std::arch::x86_64::*;
        for ((src, dst), p) in x.chunks_exact(GROUP).zip(q.chunks_exact_mut(GROUP)).zip(params) {
            let v = [0, 16, 32, 48].map(|o| _mm512_loadu_ps(src.as_ptr().add(o)));
            let mn = _mm512_reduce_min_ps(_mm512_min_ps(_mm512_min_ps(v[0], v[1]), _mm512_min_ps(v[2], v[3])));
            let mx = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(v[0], v[1]), _mm512_max_ps(v[2], v[3])));
            let [sx, inv] = group_scale(mn, mx);
            let (mnv, invv, round) = (_mm512_set1_ps(mn), _mm512_set1_ps(inv), _mm512_set1_ps(ROUND));
            let (zero, top) = (_mm512_setzero_ps(), _mm512_set1_ps(255.0));
            let mut sum = _mm512_setzero_si512();
            for (c, &vc) in v.iter().enumerate() {
                let t = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(_mm512_sub_ps(vc, mnv), invv), round), round);
                let codes = _mm512_cvttps_epi32(_mm512_min_ps(_mm512_max_ps(t, zero), top));
                _mm_storeu_si128(dst.as_mut_ptr().add(16 * c) as *mut __m128i, _mm512_cvtepi32_epi8(codes));
                sum = _mm512_add_epi32(sum, codes);
            }
            p.write([sx, sx * _mm512_reduce_add_epi32(sum) as u32 as f32, mn]);
        }
    }
}

/// Rows of `x`, their codes and their group parameters (written by the quantizer).
type RowChunk<'a, C> = ((&'a [f32], &'a mut [MaybeUninit<C>]), &'a mut [MaybeUninit<[f32; 3]>]);

/// Quantizes `x (m, k)` per row and group of [`GROUP`] (see the module docs) with `run`, which
/// must write every code and group parameter of its rows, in parallel for large inputs; the
/// codes are followed by zero rows up to `padded_rows` (a multiple of 32 for AMX).
fn quantize_rows<C: Send + Sync + From<u8>>(
    x: &[f32],
    m: usize,
    k: usize,
    padded_rows: usize,
    run: impl Fn(RowChunk<C>) + Send + Sync,
) -> QuantizedRows<C> {
    let groups = k / GROUP;
    let (mut q, mut params) = (Vec::with_capacity(padded_rows * k), Vec::with_capacity(m * groups));
    let (q_out, p_out) = (&mut q.spare_capacity_mut()[..m * k], &mut params.spare_capacity_mut()[..m * groups]);
    if m * k >= 1 << 15 {
        // Chunks of whole rows, a few per thread.
        let rows = m.div_ceil(rayon::current_num_threads().max(1) * 4);
        x.par_chunks(rows * k)
            .zip(q_out.par_chunks_mut(rows * k))
            .zip(p_out.par_chunks_mut(rows * groups))
            .for_each(run);
    } else {
        run(((x, q_out), p_out));
    }
    for pad in &mut q.spare_capacity_mut()[m * k..padded_rows * k] {
        pad.write(C::from(0));
    }
    // SAFETY: `run` wrote every code (`k` per row, a multiple of GROUP) and every
    // group's parameters; the loop above the padding rows.
    unsafe {
        q.set_len(padded_rows * k);
        params.set_len(m * groups);
    }
    QuantizedRows { q, params }
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
        let mut q = vec![0i8; strips * k * STRIP];
        let mut sb = vec![0f32; strips * groups * SB];
        let wpr = w.words_per_row();
        let code_offset = |j: usize, col: usize| match isa {
            #[cfg(target_arch = "x86_64")]
            W8a8Isa::Avx2 => avx2::code_offset(k, j, col),
            _ => (col / 4) * STRIP * 4 + j * 4 + col % 4,
        };
        for row in 0..n {
            let (s, j) = (row / STRIP, row % STRIP);
            let words = &w.packed[row * wpr..(row + 1) * wpr];
            let dst = &mut q[s * k * STRIP..(s + 1) * k * STRIP];
            let mut code_sums = vec![0i64; groups];
            for col in 0..k {
                let code = ((words[col / 4] >> ((col % 4) * 8)) & 0xFF) as i64;
                dst[code_offset(j, col)] = (code - 128) as i8;
                code_sums[col / GROUP] += code;
            }
            for (g, &code_sum) in code_sums.iter().enumerate() {
                let (scale, bias) = (w.scales[row * groups + g], w.biases[row * groups + g]);
                let base = (s * groups + g) * SB;
                sb[base + j] = scale;
                sb[base + STRIP + j] = bias + 128.0 * scale;
                // Σ_k (s·q_k + b) over the group, in f64.
                sb[base + 2 * STRIP + j] = (scale as f64 * code_sum as f64 + GROUP as f64 * bias as f64) as f32;
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

    /// Bytes held (codes, and per group scales, offsets and weight sums; strips padded to 32 rows).
    pub fn footprint_bytes(&self) -> usize {
        self.q.len() + 4 * self.sb.len()
    }

    /// `y (m, out) ≈ x (m, in) · dequant(W)^T (+ bias)` with `x` quantized per row and group.
    pub fn matmul(&self, x: &[f32], m: usize, bias: Option<&[f32]>, y: &mut [f32]) -> candle_core::Result<()> {
        self.matmul_uninit(x, m, bias, crate::gemm::as_uninit(y))
    }

    /// [`matmul`](Self::matmul) into an output that may be uninitialised (every value is written).
    pub(crate) fn matmul_uninit(
        &self,
        x: &[f32],
        m: usize,
        bias: Option<&[f32]>,
        y: &mut [MaybeUninit<f32>],
    ) -> candle_core::Result<()> {
        let (n, k) = (self.out_dim, self.in_dim);
        crate::gemm::check_shapes(x.len(), m, k, n, bias, y.len())?;
        if m == 0 {
            return Ok(());
        }
        match self.isa {
            W8a8Isa::Portable => {
                let xq = quantize_rows(x, m, k, m, |((x, q), p)| quantize_rows_plain(x, q, p));
                self.strips(&xq, m, bias, y, tile_portable);
            }
            #[cfg(target_arch = "x86_64")]
            W8a8Isa::Avx2 => {
                // SAFETY: the kernel set was checked available when the weight was built.
                let xq = quantize_rows(x, m, k, m, |((x, q), p)| unsafe { avx2::quantize_rows(x, q, p) });
                self.strips(&xq, m, bias, y, avx2::tile);
            }
            #[cfg(target_arch = "x86_64")]
            W8a8Isa::Vnni => {
                // SAFETY: the kernel set was checked available when the weight was built.
                let xq = quantize_rows(x, m, k, m, |((x, q), p)| unsafe { quantize_rows_avx512(x, q, p) });
                self.strips(&xq, m, bias, y, tile_vnni);
            }
            #[cfg(target_arch = "x86_64")]
            W8a8Isa::Amx => {
                let padded_rows = m.next_multiple_of(crate::amx::BLOCK);
                // SAFETY: the kernel set was checked available when the weight was built.
                let xq = quantize_rows(x, m, k, padded_rows, |((x, q), p)| unsafe { quantize_rows_avx512(x, q, p) });
                let yp = crate::gemm::SendPtr(y.as_mut_ptr() as *mut f32);
                crate::amx::for_block_tasks(m, n, k, k * STRIP, |rows, strips| {
                    // SAFETY: each task writes only the outputs of its own row blocks and strips.
                    unsafe { self.run_blocks_amx(&xq, m, bias, yp, rows, strips) }
                });
            }
        }
        Ok(())
    }

    /// The product of the quantized rows `xq` by every strip, `tile` computing each row block × strip.
    fn strips<C: Sync>(
        &self,
        xq: &QuantizedRows<C>,
        m: usize,
        bias: Option<&[f32]>,
        y: &mut [MaybeUninit<f32>],
        tile: fn(&Tile<C>, &mut [[f32; STRIP]; MR]),
    ) {
        crate::gemm::for_strip_tasks(m, self.out_dim, self.in_dim, y, |first, last, yp| {
            // SAFETY: each task writes only the columns of its own strips.
            unsafe { self.run_strips(xq, m, bias, yp, first, last, tile) }
        });
    }

    /// # Safety
    /// `y` points to `m × out_dim` floats whose columns of strips `first..last` no one else touches.
    #[allow(clippy::too_many_arguments)]
    unsafe fn run_strips<C>(
        &self,
        xq: &QuantizedRows<C>,
        m: usize,
        bias: Option<&[f32]>,
        y: crate::gemm::SendPtr,
        first: usize,
        last: usize,
        tile_fn: fn(&Tile<C>, &mut [[f32; STRIP]; MR]),
    ) {
        // SAFETY: the caller upholds this function's `# Safety` contract.
        unsafe {
            let (n, k) = (self.out_dim, self.in_dim);
            let groups = k / GROUP;
            let mut tile = [[0f32; STRIP]; MR];
            for s in first..last {
                let n0 = s * STRIP;
                let cols = STRIP.min(n - n0);
                let q = &self.q[s * k * STRIP..(s + 1) * k * STRIP];
                let sb = &self.sb[s * groups * SB..(s + 1) * groups * SB];
                let mut r0 = 0;
                while r0 < m {
                    let mr = MR.min(m - r0);
                    let t = Tile {
                        x: &xq.q[r0 * k..(r0 + mr) * k],
                        params: &xq.params[r0 * groups..(r0 + mr) * groups],
                        q,
                        sb,
                        k,
                        mr,
                    };
                    tile_fn(&t, &mut tile);
                    crate::gemm::store_tile(y, n, r0, n0, cols, &tile[..mr], bias);
                    r0 += mr;
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
impl W8a8Matmul {
    /// The AMX product over row blocks `rows` (of 32) × strips `strips`.
    ///
    /// # Safety
    /// `self.isa` is [`W8a8Isa::Amx`] (checked available); `xq` from [`quantize_rows`] with it;
    /// `y` points to `m × out_dim` floats whose outputs in these blocks no one else touches.
    unsafe fn run_blocks_amx(
        &self,
        xq: &QuantizedRows,
        m: usize,
        bias: Option<&[f32]>,
        y: crate::gemm::SendPtr,
        rows: std::ops::Range<usize>,
        strips: std::ops::Range<usize>,
    ) {
        use crate::amx::{self, BLOCK, TILE_ROWS};
        let (n, k) = (self.out_dim, self.in_dim);
        let groups = k / GROUP;
        let mut dots = [[0i32; STRIP]; BLOCK];
        let mut acc = [[0f32; STRIP]; BLOCK];
        // SAFETY: AMX is available (checked when the weight was built).
        let _tiles = unsafe { amx::TileConfig::load() };
        for rb in rows {
            let r0 = rb * BLOCK;
            let mr = BLOCK.min(m - r0);
            for s in strips.clone() {
                let (n0, cols) = (s * STRIP, STRIP.min(n - s * STRIP));
                let q = self.q.as_ptr().wrapping_add(s * k * STRIP);
                let sb = &self.sb[s * groups * SB..(s + 1) * groups * SB];
                for g in 0..groups {
                    // SAFETY: tiles configured on this thread; `xq.q` holds 32 rows of `k` codes
                    // from `r0` (padded to a multiple of 32 rows), the strip's group `g` is 16
                    // rows of 128 codes at `q + g · 2048`.
                    unsafe {
                        amx::int8_group_block(
                            xq.q.as_ptr().add(r0 * k + g * GROUP),
                            k,
                            q.add(g * GROUP * STRIP),
                            mr > TILE_ROWS,
                            dots.as_mut_ptr() as *mut i32,
                        )
                    };
                    let params = &xq.params[r0 * groups..(r0 + mr) * groups];
                    // SAFETY: the kernel set (AVX-512F) was checked available.
                    unsafe {
                        group_epilogue(&dots[..mr], &sb[g * SB..(g + 1) * SB], params, g, groups, &mut acc[..mr])
                    };
                }
                // SAFETY: the caller's contract on `y`.
                unsafe { crate::gemm::store_tile(y, n, r0, n0, cols, &acc[..mr], bias) };
            }
        }
    }
}

/// `acc[i] = (g == 0 ? 0 : acc[i]) + dots[i] · (s · sx) + b' · xsum + c · mn` for group `g`,
/// the VNNI kernel's float operations in its order (so the AMX product gives its numbers).
///
/// # Safety
/// The CPU must support AVX-512F; `params` holds `acc.len()` rows of `groups` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn group_epilogue(
    dots: &[[i32; STRIP]],
    sb: &[f32],
    params: &[[f32; 3]],
    g: usize,
    groups: usize,
    acc: &mut [[f32; STRIP]],
) {
    use std::arch::x86_64::*;
    let sb = sb.as_ptr();
    // SAFETY: `sb` holds one group's `SB` floats, rows of `dots` and `acc` 32 values each.
    unsafe {
        let (s0, s1) = (_mm512_loadu_ps(sb), _mm512_loadu_ps(sb.add(16)));
        let (b0, b1) = (_mm512_loadu_ps(sb.add(STRIP)), _mm512_loadu_ps(sb.add(STRIP + 16)));
        let (c0, c1) = (_mm512_loadu_ps(sb.add(2 * STRIP)), _mm512_loadu_ps(sb.add(2 * STRIP + 16)));
        for (i, (d, a)) in dots.iter().zip(acc.iter_mut()).enumerate() {
            let [sx, xsum, mn] = params[i * groups + g];
            let (sx, xsum, mn) = (_mm512_set1_ps(sx), _mm512_set1_ps(xsum), _mm512_set1_ps(mn));
            let (mut a0, mut a1) = if g == 0 {
                (_mm512_setzero_ps(), _mm512_setzero_ps())
            } else {
                (_mm512_loadu_ps(a.as_ptr()), _mm512_loadu_ps(a.as_ptr().add(16)))
            };
            let d0 = _mm512_cvtepi32_ps(_mm512_loadu_si512(d.as_ptr() as *const _));
            let d1 = _mm512_cvtepi32_ps(_mm512_loadu_si512(d.as_ptr().add(16) as *const _));
            a0 = _mm512_fmadd_ps(d0, _mm512_mul_ps(s0, sx), a0);
            a1 = _mm512_fmadd_ps(d1, _mm512_mul_ps(s1, sx), a1);
            a0 = _mm512_fmadd_ps(b0, xsum, a0);
            a1 = _mm512_fmadd_ps(b1, xsum, a1);
            a0 = _mm512_fmadd_ps(c0, mn, a0);
            a1 = _mm512_fmadd_ps(c1, mn, a1);
            _mm512_storeu_ps(a.as_mut_ptr(), a0);
            _mm512_storeu_ps(a.as_mut_ptr().add(16), a1);
        }
    }
}

/// One row block times one strip.
struct Tile<'a, C = u8> {
    /// `mr` rows of `k` activation codes.
    x: &'a [C],
    /// `(mr, groups)`: `[sx, sx · Σ qx, mn]`.
    params: &'a [[f32; 3]],
    /// The strip's signed codes `[k / 4][32][4]` (AVX2: [`avx2::code_offset`]).
    q: &'a [i8],
    /// The strip's scales, offsets and weight sums per group.
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
            let [sx, xsum, mn] = t.params[i * groups + g];
            let sb = &t.sb[g * SB..(g + 1) * SB];
            let (s, rest) = sb.split_at(STRIP);
            let (b, c) = rest.split_at(STRIP);
            for j in 0..STRIP {
                acc[j] = (dots[j] as f32).mul_add(s[j] * sx, acc[j]);
                acc[j] = b[j].mul_add(xsum, acc[j]);
                acc[j] = c[j].mul_add(mn, acc[j]);
            }
        }
        *acc_row = acc;
    }
}

/// `$kernel::<R>($t, $out)` with `R = $t.mr` (1 to [`MR`]; an x86 kernel's rows are a const generic).
#[cfg(target_arch = "x86_64")]
macro_rules! dispatch_rows {
    ($kernel:ident, $t:expr, $out:expr) => {
        match $t.mr {
            1 => $kernel::<1>($t, $out),
            2 => $kernel::<2>($t, $out),
            3 => $kernel::<3>($t, $out),
            4 => $kernel::<4>($t, $out),
            5 => $kernel::<5>($t, $out),
            _ => $kernel::<6>($t, $out),
        }
    };
}

#[cfg(target_arch = "x86_64")]
fn tile_vnni(t: &Tile, out: &mut [[f32; STRIP]; MR]) {
    // SAFETY: the kernel set was checked available when the weight was built; the slices of
    // `t` hold `mr` rows of `k` codes and the strip's `k / 4` blocks of 128 codes.
    unsafe { dispatch_rows!(vnni, t, out) }
}

/// # Safety
/// The CPU must support AVX-512F/BW and AVX512-VNNI; `t` holds `R` rows (see [`Tile`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn vnni<const R: usize>(t: &Tile, out: &mut [[f32; STRIP]; MR]) {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe {
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
                    d0[i] = _mm512_dpbusd_epi32(d0[i], xv, w0);
                    d1[i] = _mm512_dpbusd_epi32(d1[i], xv, w1);
                }
            }
            let sb = t.sb.as_ptr().add(g * SB);
            let (s0, s1) = (_mm512_loadu_ps(sb), _mm512_loadu_ps(sb.add(16)));
            let (b0, b1) = (_mm512_loadu_ps(sb.add(STRIP)), _mm512_loadu_ps(sb.add(STRIP + 16)));
            let (c0, c1) = (_mm512_loadu_ps(sb.add(2 * STRIP)), _mm512_loadu_ps(sb.add(2 * STRIP + 16)));
            for i in 0..R {
                let [sx, xsum, mn] = t.params[i * groups + g];
                let (sx, xsum, mn) = (_mm512_set1_ps(sx), _mm512_set1_ps(xsum), _mm512_set1_ps(mn));
                acc0[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d0[i]), _mm512_mul_ps(s0, sx), acc0[i]);
                acc1[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d1[i]), _mm512_mul_ps(s1, sx), acc1[i]);
                acc0[i] = _mm512_fmadd_ps(b0, xsum, acc0[i]);
                acc1[i] = _mm512_fmadd_ps(b1, xsum, acc1[i]);
                acc0[i] = _mm512_fmadd_ps(c0, mn, acc0[i]);
                acc1[i] = _mm512_fmadd_ps(c1, mn, acc1[i]);
            }
        }
        for i in 0..R {
            _mm512_storeu_ps(out[i].as_mut_ptr(), acc0[i]);
            _mm512_storeu_ps(out[i].as_mut_ptr().add(16), acc1[i]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(test)]
mod tests;

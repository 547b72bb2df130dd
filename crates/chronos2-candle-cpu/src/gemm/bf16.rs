//! bf16 weights in strip layout: half the bytes of fp32, fp32 accumulation.
//!
//! Layout: strips of 32 outputs; per pair of inputs `(2p, 2p + 1)` the strip's 32 × 2 values are
//! contiguous, output-major (`[k / 2][32][2]`, an odd `k` padded with a zero input), which is
//! what `vdpbf16ps` (AVX512-BF16: 16 lanes, each `acc += a₀·b₀ + a₁·b₁` over a pair of bf16)
//! reads.
//!
//! Kernels, chosen at run time ([`Bf16Kernel`]):
//! - [`Bf16Kernel::Dot`] (AVX512-BF16): the activations are rounded to bf16 once per call
//!   (pairs of inputs per 32-bit word) and each `12 × 32` tile runs `vdpbf16ps` over the whole
//!   `k` with the accumulators in registers, twice the multiply-adds per instruction of fp32
//!   FMA; both operands in bf16 like PyTorch's bf16 matmul, accumulation in fp32.
//! - [`Bf16Kernel::Widen`] (AVX-512F / AVX2 / portable): each panel is widened to f32 (a bf16
//!   is the top half of an f32) into an L1 scratch buffer once per call and the f32
//!   micro-kernel runs on it; the activations stay f32.
//! - [`Bf16Kernel::Amx`] (AMX-BF16, [`crate::amx`]): the activations rounded to bf16 as for
//!   `Dot`, `tdpbf16ps` on blocks of 32 × 32 outputs with fp32 accumulators over the whole `k`.
//!   The weight is the same layout with `k / 2` padded to a multiple of 16 pairs (one tile of
//!   weights is 16 pairs of 32 outputs).

use std::mem::MaybeUninit;

#[cfg(target_arch = "x86_64")]
use rayon::prelude::*;

use super::{run, Isa, StripSource, STRIP};

/// Which bf16 kernel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bf16Kernel {
    /// Widened per panel to f32, f32 micro-kernels of this set.
    Widen(Isa),
    /// `vdpbf16ps` (AVX512-BF16), activations rounded to bf16.
    #[cfg(target_arch = "x86_64")]
    Dot,
    /// AMX-BF16 `tdpbf16ps` tiles, activations rounded to bf16.
    #[cfg(target_arch = "x86_64")]
    Amx,
}

impl Bf16Kernel {
    /// The fastest kernel this CPU runs within [`Isa::detect`]'s cap.
    pub fn detect() -> Bf16Kernel {
        #[cfg(target_arch = "x86_64")]
        if crate::isa::amx_allowed() {
            return Bf16Kernel::Amx;
        }
        #[cfg(target_arch = "x86_64")]
        if Isa::detect() == Isa::Avx512 && Bf16Kernel::Dot.available() {
            return Bf16Kernel::Dot;
        }
        Bf16Kernel::Widen(Isa::detect())
    }

    pub fn available(self) -> bool {
        match self {
            Bf16Kernel::Widen(isa) => isa.available(),
            #[cfg(target_arch = "x86_64")]
            Bf16Kernel::Dot => is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16"),
            #[cfg(target_arch = "x86_64")]
            Bf16Kernel::Amx => is_x86_feature_detected!("avx512f") && crate::amx::available(),
        }
    }

    /// Every kernel this CPU runs.
    pub fn all_available() -> Vec<Bf16Kernel> {
        #[allow(unused_mut)]
        let mut v: Vec<Bf16Kernel> = Isa::all_available().into_iter().map(Bf16Kernel::Widen).collect();
        #[cfg(target_arch = "x86_64")]
        v.extend([Bf16Kernel::Dot, Bf16Kernel::Amx].into_iter().filter(|k| k.available()));
        v
    }
}

/// Rows per `vdpbf16ps` tile.
#[cfg(target_arch = "x86_64")]
const DOT_MR: usize = 12;

/// `f32` to bf16, rounding to nearest even (NaN stays NaN).
pub fn to_bf16(v: f32) -> u16 {
    let bits = v.to_bits();
    if v.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) as u16
}

/// bf16 to `f32` (exact).
pub fn from_bf16(v: u16) -> f32 {
    f32::from_bits((v as u32) << 16)
}

/// A weight `(n, k)` rounded to bf16 and packed into strip layout, with its kernel.
#[derive(Debug, Clone)]
pub struct Bf16Matmul {
    out_dim: usize,
    in_dim: usize,
    /// `strips × kp × 32 × 2` bf16 values (zero-padded).
    packed: Vec<u16>,
    /// Pairs of inputs stored per strip: `ceil(in_dim / 2)`, for [`Bf16Kernel::Amx`] rounded
    /// up to a multiple of 16.
    kp: usize,
    kernel: Bf16Kernel,
}

impl Bf16Matmul {
    /// Rounds and packs a row-major `(out_dim, in_dim)` f32 weight (PyTorch layout).
    pub fn new(weight: &[f32], out_dim: usize, in_dim: usize) -> candle_core::Result<Self> {
        Self::with_kernel(weight, out_dim, in_dim, Bf16Kernel::detect())
    }

    /// Like [`new`](Self::new), widening to f32 on the kernel set `isa`.
    pub fn with_isa(weight: &[f32], out_dim: usize, in_dim: usize, isa: Isa) -> candle_core::Result<Self> {
        Self::with_kernel(weight, out_dim, in_dim, Bf16Kernel::Widen(isa))
    }

    /// Like [`new`](Self::new) with a given kernel (for tests and benchmarks).
    pub fn with_kernel(weight: &[f32], out_dim: usize, in_dim: usize, kernel: Bf16Kernel) -> candle_core::Result<Self> {
        if weight.len() != out_dim * in_dim {
            candle_core::bail!("bf16 matmul: {} values for a ({out_dim}, {in_dim}) weight", weight.len());
        }
        Self::from_rows(out_dim, in_dim, kernel, |row, dst| {
            for (d, &v) in dst.iter_mut().zip(&weight[row * in_dim..(row + 1) * in_dim]) {
                *d = to_bf16(v);
            }
        })
    }

    /// Packs a weight whose rows `fill(row, dst)` writes as bf16 (`in_dim` values each): the
    /// full f32 weight is never needed at once.
    pub fn from_rows(
        out_dim: usize,
        in_dim: usize,
        kernel: Bf16Kernel,
        mut fill: impl FnMut(usize, &mut [u16]),
    ) -> candle_core::Result<Self> {
        if !kernel.available() {
            candle_core::bail!("bf16 matmul: {kernel:?} is not supported by this CPU");
        }
        if out_dim == 0 || in_dim == 0 {
            candle_core::bail!("bf16 matmul: empty ({out_dim}, {in_dim}) weight");
        }
        let kp = Self::stored_pairs(in_dim, kernel);
        let mut packed = vec![0u16; out_dim.div_ceil(STRIP) * kp * STRIP * 2];
        let mut row_values = vec![0u16; in_dim];
        for row in 0..out_dim {
            fill(row, &mut row_values);
            let strip = &mut packed[(row / STRIP) * kp * STRIP * 2..];
            for (kk, &v) in row_values.iter().enumerate() {
                strip[((kk / 2) * STRIP + row % STRIP) * 2 + kk % 2] = v;
            }
        }
        Ok(Bf16Matmul { out_dim, in_dim, packed, kp, kernel })
    }

    /// Pairs of inputs stored per strip for `kernel`.
    fn stored_pairs(in_dim: usize, kernel: Bf16Kernel) -> usize {
        match kernel {
            #[cfg(target_arch = "x86_64")]
            Bf16Kernel::Amx => in_dim.div_ceil(2).next_multiple_of(crate::amx::TILE_ROWS),
            _ => in_dim.div_ceil(2),
        }
    }

    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    pub fn in_dim(&self) -> usize {
        self.in_dim
    }

    pub fn kernel(&self) -> Bf16Kernel {
        self.kernel
    }

    /// Bytes held (strips padded to 32 rows, `k` to even).
    pub fn footprint_bytes(&self) -> usize {
        2 * self.packed.len()
    }

    /// The bf16 value of weight `(row, kk)` in the packed layout.
    fn at(&self, row: usize, kk: usize) -> u16 {
        let kp = self.kp;
        self.packed[(row / STRIP) * kp * STRIP * 2 + ((kk / 2) * STRIP + row % STRIP) * 2 + kk % 2]
    }

    /// The bf16 weight widened back to f32, `(out_dim, in_dim)` row-major.
    pub fn unpack(&self) -> Vec<f32> {
        let (n, k) = (self.out_dim, self.in_dim);
        let mut w = vec![0f32; n * k];
        for (row, dst) in w.chunks_exact_mut(k).enumerate() {
            for (kk, v) in dst.iter_mut().enumerate() {
                *v = from_bf16(self.at(row, kk));
            }
        }
        w
    }

    /// `y (m, out) = x (m, in) · W^T (+ bias)` with the bf16 weight, accumulated in fp32.
    pub fn matmul(&self, x: &[f32], m: usize, bias: Option<&[f32]>, y: &mut [f32]) -> candle_core::Result<()> {
        self.matmul_uninit(x, m, bias, super::as_uninit(y))
    }

    /// [`matmul`](Self::matmul) into an output that may be uninitialised (every value is written).
    pub(crate) fn matmul_uninit(
        &self,
        x: &[f32],
        m: usize,
        bias: Option<&[f32]>,
        y: &mut [MaybeUninit<f32>],
    ) -> candle_core::Result<()> {
        match self.kernel {
            Bf16Kernel::Widen(isa) => run(self, isa, x, m, bias, y),
            #[cfg(target_arch = "x86_64")]
            Bf16Kernel::Dot => self.matmul_dot(x, m, bias, y),
            #[cfg(target_arch = "x86_64")]
            Bf16Kernel::Amx => self.matmul_amx(x, m, bias, y),
        }
    }

    /// The [`Bf16Kernel::Dot`] product.
    #[cfg(target_arch = "x86_64")]
    fn matmul_dot(
        &self,
        x: &[f32],
        m: usize,
        bias: Option<&[f32]>,
        y: &mut [MaybeUninit<f32>],
    ) -> candle_core::Result<()> {
        let (n, k) = (self.out_dim, self.in_dim);
        super::check_shapes(x.len(), m, k, n, bias, y.len())?;
        if m == 0 {
            return Ok(());
        }
        let kp = self.kp;
        // Activations as bf16 pairs, (m, kp) words.
        let mut xb = vec![0u32; m * kp];
        let convert = |(src, dst): (&[f32], &mut [u32])| {
            // SAFETY: the kernel was checked available when the weight was built.
            unsafe { to_bf16_pairs_avx512(src, k, kp, dst) }
        };
        if m * k >= 1 << 15 {
            let rows = m.div_ceil(rayon::current_num_threads().max(1) * 4);
            x.par_chunks(rows * k).zip(xb.par_chunks_mut(rows * kp)).for_each(convert);
        } else {
            convert((x, &mut xb));
        }
        super::for_strip_tasks(m, n, k, y, |first, last, yp| {
            let mut tile = [[0f32; STRIP]; DOT_MR];
            for s in first..last {
                let (n0, cols) = (s * STRIP, STRIP.min(n - s * STRIP));
                let w = &self.packed[s * kp * STRIP * 2..(s + 1) * kp * STRIP * 2];
                let mut r0 = 0;
                while r0 < m {
                    let mr = DOT_MR.min(m - r0);
                    // SAFETY: the kernel is available; `xb` holds `mr` rows of `kp` words from
                    // `r0`, `w` the strip's `kp` blocks of 64 values; each task writes only the
                    // columns of its own strips.
                    unsafe {
                        dot_tile(&xb[r0 * kp..(r0 + mr) * kp], w, kp, mr, &mut tile);
                        super::store_tile(yp, n, r0, n0, cols, &tile[..mr], bias);
                    }
                    r0 += mr;
                }
            }
        });
        Ok(())
    }
}

impl Bf16Matmul {
    /// The [`Bf16Kernel::Amx`] product: activations rounded to bf16 pairs once per call, in
    /// rows of `kp` words (zero-padded, rows padded to a multiple of 32), then blocks of 32 × 32
    /// outputs on the tiles.
    #[cfg(target_arch = "x86_64")]
    fn matmul_amx(
        &self,
        x: &[f32],
        m: usize,
        bias: Option<&[f32]>,
        y: &mut [MaybeUninit<f32>],
    ) -> candle_core::Result<()> {
        use crate::amx::{self, BLOCK, TILE_ROWS};
        let (n, k, kp) = (self.out_dim, self.in_dim, self.kp);
        super::check_shapes(x.len(), m, k, n, bias, y.len())?;
        if m == 0 {
            return Ok(());
        }
        let mut xb = vec![0u32; m.next_multiple_of(BLOCK) * kp];
        let convert = |(src, dst): (&[f32], &mut [u32])| {
            // SAFETY: the kernel was checked available (AVX-512F) when the weight was built.
            unsafe { to_bf16_pairs_avx512(src, k, kp, dst) }
        };
        if m * k >= 1 << 15 {
            let rows = m.div_ceil(rayon::current_num_threads().max(1) * 4);
            x.par_chunks(rows * k).zip(xb.par_chunks_mut(rows * kp)).for_each(convert);
        } else {
            convert((x, &mut xb[..m * kp]));
        }
        let yp = super::SendPtr(y.as_mut_ptr() as *mut f32);
        amx::for_block_tasks(m, n, k, kp * 4 * STRIP, |row_blocks, strips| {
            let mut tile = [[0f32; STRIP]; BLOCK];
            // SAFETY: AMX is available (checked when the weight was built).
            let _tiles = unsafe { amx::TileConfig::load() };
            for rb in row_blocks {
                let r0 = rb * BLOCK;
                let rows = BLOCK.min(m - r0);
                for s in strips.clone() {
                    let (n0, cols) = (s * STRIP, STRIP.min(n - s * STRIP));
                    // SAFETY: tiles configured on this thread; `xb` holds 32 rows of `kp` words
                    // from `r0` (rows padded to a multiple of 32), the strip `kp × 64` values,
                    // `kp` is a multiple of 16; each task writes only its own rows and columns.
                    unsafe {
                        amx::bf16_block(
                            xb.as_ptr().add(r0 * kp),
                            4 * kp,
                            self.packed.as_ptr().add(s * kp * STRIP * 2),
                            kp,
                            rows > TILE_ROWS,
                            tile.as_mut_ptr() as *mut f32,
                        );
                        super::store_tile(yp, n, r0, n0, cols, &tile[..rows], bias);
                    }
                }
            }
        });
        Ok(())
    }
}

/// Rounds rows of `k` f32 values to bf16 pairs (`[x₂ₚ | x₂ₚ₊₁ << 16]`, an odd `k` padded with 0)
/// into rows of `kp >= ceil(k / 2)` words of `out` (the words beyond `ceil(k / 2)`, and rows of
/// `out` beyond those of `x`, are left as they are).
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn to_bf16_pairs_avx512(x: &[f32], k: usize, kp: usize, out: &mut [u32]) {
    for (src, dst) in x.chunks_exact(k).zip(out.chunks_exact_mut(kp)) {
        for (p, d) in dst[..k.div_ceil(2)].iter_mut().enumerate() {
            let lo = to_bf16(src[2 * p]) as u32;
            let hi = if 2 * p + 1 < k { to_bf16(src[2 * p + 1]) as u32 } else { 0 };
            *d = lo | (hi << 16);
        }
    }
}

/// `tile[i][j] = Σ_p x[i][p] · w[p][j]` over bf16 pairs, for `mr <= 12` rows.
///
/// # Safety
/// The CPU must support AVX512-BF16; `x` holds `mr` rows of `kp` words, `w` `kp × 64` values.
#[cfg(target_arch = "x86_64")]
unsafe fn dot_tile(x: &[u32], w: &[u16], kp: usize, mr: usize, tile: &mut [[f32; STRIP]; DOT_MR]) {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe {
        macro_rules! rows {
        ($($r:literal)*) => {
            match mr {
                $($r => dot_rows::<$r>(x.as_ptr(), w.as_ptr(), kp, tile),)*
                _ => unreachable!("row block {mr} too large"),
            }
        };
    }
        rows!(1 2 3 4 5 6 7 8 9 10 11 12)
    }
}

/// # Safety
/// The CPU must support AVX512-BF16; `x` holds `R` rows of `kp` words, `w` `kp × 64` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn dot_rows<const R: usize>(x: *const u32, w: *const u16, kp: usize, tile: &mut [[f32; STRIP]; DOT_MR]) {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe {
        use std::arch::x86_64::*;
        let mut a0 = [_mm512_setzero_ps(); R];
        let mut a1 = [_mm512_setzero_ps(); R];
        for p in 0..kp {
            let w0: __m512bh = std::mem::transmute(_mm512_loadu_si512(w.add(p * 2 * STRIP) as *const _));
            let w1: __m512bh = std::mem::transmute(_mm512_loadu_si512(w.add(p * 2 * STRIP + STRIP) as *const _));
            for i in 0..R {
                let xv: __m512bh = std::mem::transmute(_mm512_set1_epi32(*x.add(i * kp + p) as i32));
                a0[i] = _mm512_dpbf16_ps(a0[i], xv, w0);
                a1[i] = _mm512_dpbf16_ps(a1[i], xv, w1);
            }
        }
        for i in 0..R {
            _mm512_storeu_ps(tile[i].as_mut_ptr(), a0[i]);
            _mm512_storeu_ps(tile[i].as_mut_ptr().add(16), a1[i]);
        }
    }
}

impl StripSource for Bf16Matmul {
    fn out_dim(&self) -> usize {
        self.out_dim
    }

    fn in_dim(&self) -> usize {
        self.in_dim
    }

    fn k_align(&self) -> usize {
        2
    }

    fn needs_scratch(&self) -> bool {
        true
    }

    fn has_fused_tile(&self) -> bool {
        false
    }

    /// # Safety
    /// As for [`StripSource::panel`].
    unsafe fn panel(&self, s: usize, k0: usize, kc: usize, scratch: *mut f32) -> *const f32 {
        // SAFETY: the caller upholds this function's `# Safety` contract.
        unsafe {
            let kp = self.kp;
            let pairs = kc.div_ceil(2);
            let src =
                std::slice::from_raw_parts(self.packed.as_ptr().add((s * kp + k0 / 2) * STRIP * 2), pairs * STRIP * 2);
            let dst = std::slice::from_raw_parts_mut(scratch, kc * STRIP);
            // Infallible where `Dot` is compiled out (not x86_64).
            #[allow(clippy::infallible_destructuring_match)]
            let isa = match self.kernel {
                Bf16Kernel::Widen(isa) => isa,
                #[cfg(target_arch = "x86_64")]
                Bf16Kernel::Dot | Bf16Kernel::Amx => unreachable!("panels are read by the widening kernel only"),
            };
            match isa {
                Isa::Generic => widen(src, dst),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => widen_avx2(src, dst),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => widen_avx512(src, dst),
                // NEON is the aarch64 baseline: the plain loop compiles to NEON shifts and stores.
                #[cfg(target_arch = "aarch64")]
                Isa::Neon => widen(src, dst),
            }
            scratch
        }
    }

    /// # Safety
    /// As for [`StripSource::fused_tile`].
    unsafe fn fused_tile(&self, _: usize, _: usize, _: usize, _: *const f32, _: usize, _: *mut f32) -> bool {
        false
    }
}

/// Widens pairs `[k / 2][32][2]` into a panel `[k][32]` (`dst.len() / 32` values of `k`).
#[inline(always)]
fn widen(src: &[u16], dst: &mut [f32]) {
    for (kk, row) in dst.chunks_exact_mut(STRIP).enumerate() {
        let pair = &src[(kk / 2) * STRIP * 2..(kk / 2 + 1) * STRIP * 2];
        for (j, d) in row.iter_mut().enumerate() {
            *d = from_bf16(pair[2 * j + kk % 2]);
        }
    }
}

/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn widen_avx512(src: &[u16], dst: &mut [f32]) {
    widen(src, dst)
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn widen_avx2(src: &[u16], dst: &mut [f32]) {
    widen(src, dst)
}

//! `y = x · W^T (+ b)` for every row count, with the weight laid out once, at load, in the
//! order the micro-kernel reads it.
//!
//! # Layout
//!
//! The weight `(n, k)` is cut into *strips* of 32 output rows; within a strip, for each input
//! index `k`, the 32 values are contiguous (`[strip][k][32]`, the last strip zero-padded). A
//! block of `k` of one strip is thus one contiguous *panel* `[kc][32]`. Float weights
//! ([`PackedMatmul`]) are stored that way; quantized ones ([`crate::quant`]) store codes in the
//! same order and dequantize a panel into an L1 scratch buffer when it is first needed.
//!
//! # Driver
//!
//! [`run`] packs `x` once per call into row blocks of `mr` rows (`[kc][mr]` per block of `k`,
//! so the micro-kernel's broadcasts of `x[i, k]` are contiguous), splits the strips over the
//! threads (rayon), and per thread loops: block of rows (about 500, whose `x` block stays in
//! L2) → block of `k` (`KC`) → strip → micro-kernel over every `mr`-row block. A panel (half of
//! L1) is read or dequantized once per block of rows — once per call up to ~500 rows — and
//! reused by all its row blocks while the packed `x` streams past it from L2; with one row
//! block (`m <= mr`, batch-1 latency) `k` is not blocked and each weight byte is read once.
//! Dequantized panels go to a 64-byte aligned scratch, and the stored bytes of a task's next
//! panel are prefetched, a slice per row block, while the current panel runs (so a
//! dequantization does not wait on memory; float panels stream through the hardware
//! prefetchers). The hot loop does not allocate (per-task scratch is allocated before it).
//!
//! Weights: f32 ([`PackedMatmul`]), bf16 ([`Bf16Matmul`], widened per panel) and MLX-affine
//! int8/int4 ([`crate::quant::QuantizedMatmul`], dequantized per panel or inside the kernel).
//!
//! Micro-kernels (`mr × 32` tile, outer products): AVX-512F (`mr` 12), AVX2 + FMA (`mr` 6) and
//! NEON (`mr` 6, aarch64) and a portable one, chosen at run time ([`Isa`]).

mod bf16;
mod generic;
#[cfg(target_arch = "aarch64")]
pub(crate) mod neon;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86;

use std::mem::MaybeUninit;

use rayon::prelude::*;

pub use crate::isa::Isa;
pub use bf16::{from_bf16, to_bf16, Bf16Kernel, Bf16Matmul};

/// Output rows per strip of the kernel layout.
pub(crate) const STRIP: usize = 32;
/// Largest row block of any micro-kernel.
pub(crate) const MR_MAX: usize = 12;
/// Block of `k` per panel (32 × 128 floats = 16 KiB: half of a 32 KiB L1, the rest for the
/// streamed `x` block and the tile).
const KC: usize = 128;
/// Bytes of packed `x` (a block of rows over one block of `k`) that the panels of the strips
/// stream past while it stays in L2 (a quarter of a 1 MiB L2, leaving room for the block of `y`
/// that a task accumulates over the blocks of `k`): about 500 rows at `KC`.
const X_BLOCK_BYTES: usize = 256 * 1024;

/// Arguments of one micro-kernel call: `out[i][j] = Σ_{k < kc} x[i, k] · w[k][j]`.
pub(crate) struct PanelTile {
    /// The row block of `x` over the block of `k`, packed `[kc][mr]` (`x[i, k]` at `k · mr + i`).
    pub x: *const f32,
    /// `[kc][32]` weights of the strip.
    pub w: *const f32,
    pub kc: usize,
    /// Rows, `1..=` the kernel's `mr`.
    pub mr: usize,
    /// Output, `mr × 32`, row-major.
    pub out: *mut f32,
}

/// A weight in strip layout that hands out f32 panels.
pub(crate) trait StripSource: Sync {
    fn out_dim(&self) -> usize;
    fn in_dim(&self) -> usize;
    /// Blocks of `k` start at multiples of this (the quantization group).
    fn k_align(&self) -> usize;
    /// Whether panels are written to scratch (dequantized) rather than read in place.
    fn needs_scratch(&self) -> bool;
    /// The `[kc][32]` panel of strip `s` over `k0..k0 + kc`, either in place or written to
    /// `scratch` (`32 · kc` floats).
    ///
    /// # Safety
    /// `s`, `k0`, `kc` within the weight, `k0` and `kc` multiples of [`Self::k_align`] (or `kc`
    /// reaching `in_dim`); `scratch` valid for `32 · kc` floats when [`Self::needs_scratch`].
    unsafe fn panel(&self, s: usize, k0: usize, kc: usize, scratch: *mut f32) -> *const f32;
    /// Whether [`Self::fused_tile`] computes tiles.
    fn has_fused_tile(&self) -> bool;
    /// For one row block: computes the tile directly from the stored weight (fused
    /// dequantization); returns `false` if this weight has no such kernel.
    ///
    /// # Safety
    /// As for [`Self::panel`]; `x` packed `[kc][mr]`, `out` `mr × 32` floats.
    unsafe fn fused_tile(&self, s: usize, k0: usize, kc: usize, x: *const f32, mr: usize, out: *mut f32) -> bool;
    /// The stored bytes of the panel `(s, k0, kc)` that its dequantization reads, as up to two
    /// regions `(start, bytes)`, for the driver to prefetch while the row blocks run on the
    /// panel before (so that the dequantization does not wait on memory); none by default
    /// (weights read in place stream through the hardware prefetchers).
    ///
    /// # Safety
    /// As for [`Self::panel`].
    unsafe fn panel_bytes(&self, _s: usize, _k0: usize, _kc: usize) -> [(*const u8, usize); 2] {
        [(std::ptr::null(), 0); 2]
    }
}

/// Checks the shapes of a matmul call.
pub(crate) fn check_shapes(
    x: usize,
    m: usize,
    k: usize,
    n: usize,
    bias: Option<&[f32]>,
    y: usize,
) -> candle_core::Result<()> {
    if x != m * k {
        candle_core::bail!("matmul: x has {x} values, expected {m} rows x {k} inputs");
    }
    if y != m * n {
        candle_core::bail!("matmul: output has {y} values, expected {m} rows x {n} outputs");
    }
    if let Some(b) = bias {
        if b.len() != n {
            candle_core::bail!("matmul: bias has {} values, expected {n}", b.len());
        }
    }
    Ok(())
}

/// `y (m, n) = x (m, k) · W^T (+ bias)` for a weight in strip layout, with micro-kernels `isa`.
pub(crate) fn run<W: StripSource>(
    w: &W,
    isa: Isa,
    x: &[f32],
    m: usize,
    bias: Option<&[f32]>,
    y: &mut [MaybeUninit<f32>],
) -> candle_core::Result<()> {
    let (n, k) = (w.out_dim(), w.in_dim());
    check_shapes(x.len(), m, k, n, bias, y.len())?;
    if m == 0 {
        return Ok(());
    }
    let mr = isa.mr();
    let align = w.k_align();
    // One row block with weights read in place or dequantized inside the kernel: no k blocking
    // (the weight is streamed once). Otherwise panels of KC, in L1.
    let kc = if m <= mr && (!w.needs_scratch() || w.has_fused_tile()) { k } else { (KC / align).max(1) * align };
    let xp = pack_x(x, m, k, kc, mr);
    for_strip_tasks(m, n, k, y, |first, last, yp| {
        let mut scratch = Scratch::new(if w.needs_scratch() { kc.min(k) * STRIP } else { 0 });
        // SAFETY: each task writes only the columns of its own strips [first, last).
        unsafe { run_strips(w, isa, &xp, m, kc, bias, yp, (first, last), scratch.as_mut_slice()) };
    });
    Ok(())
}

/// A panel's scratch buffer, aligned to a 64-byte cache line so that the micro-kernel's
/// 64-byte (AVX-512) and 32-byte (AVX2) weight loads never straddle two lines.
struct Scratch {
    buf: Vec<f32>,
    start: usize,
    len: usize,
}

impl Scratch {
    const LINE_FLOATS: usize = 64 / std::mem::size_of::<f32>();

    fn new(len: usize) -> Self {
        if len == 0 {
            return Scratch { buf: Vec::new(), start: 0, len };
        }
        let buf = vec![0f32; len + Self::LINE_FLOATS - 1];
        let start = buf.as_ptr().align_offset(64).min(Self::LINE_FLOATS - 1);
        Scratch { buf, start, len }
    }

    fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.buf[self.start..self.start + self.len]
    }
}

/// `y` seen as possibly uninitialised, for the kernels' `matmul_uninit` (which only write
/// finished floats into it).
pub(crate) fn as_uninit(y: &mut [f32]) -> &mut [MaybeUninit<f32>] {
    // SAFETY: same layout; the callee only writes initialised `f32` values.
    unsafe { &mut *(y as *mut [f32] as *mut [MaybeUninit<f32>]) }
}

/// A vector of `len` floats allocated without zeroing, every one of which `fill` writes (a
/// `matmul_uninit` writes each output exactly once before reading it): the outputs of the
/// linear layers, which would otherwise be zeroed by one thread before the kernels overwrite them.
pub(crate) fn output_vec<E>(
    len: usize,
    fill: impl FnOnce(&mut [MaybeUninit<f32>]) -> Result<(), E>,
) -> Result<Vec<f32>, E> {
    let mut y = Vec::with_capacity(len);
    fill(&mut y.spare_capacity_mut()[..len])?;
    // SAFETY: `fill` succeeded, so it wrote all `len` values.
    unsafe { y.set_len(len) };
    Ok(y)
}

/// [`output_vec`] for a `fill` that cannot fail (it writes every value).
pub(crate) fn filled_vec(len: usize, fill: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
    match output_vec(len, |y| {
        fill(y);
        Ok::<(), std::convert::Infallible>(())
    }) {
        Ok(y) => y,
        Err(never) => match never {},
    }
}

/// Runs `job(first, last, y)` for disjoint ranges of the 32-column strips of an `(m, n)`
/// output `y`, a few tasks per rayon thread (one task for a product below 2^16
/// multiply-adds of `k`). The jobs together must write every output.
pub(crate) fn for_strip_tasks(
    m: usize,
    n: usize,
    k: usize,
    y: &mut [MaybeUninit<f32>],
    job: impl Fn(usize, usize, SendPtr) + Sync,
) {
    let strips = n.div_ceil(STRIP);
    let threads = rayon::current_num_threads().max(1);
    let tasks = if m * n * k < 1 << 16 { 1 } else { (threads * 4).min(strips) };
    let per_task = strips.div_ceil(tasks);
    let yp = SendPtr(y.as_mut_ptr() as *mut f32);
    let run = |first: usize| job(first, (first + per_task).min(strips), yp);
    if tasks == 1 {
        run(0);
    } else {
        (0..strips).into_par_iter().step_by(per_task).for_each(run);
    }
}

/// Writes `tile[i][..cols]` (+ `bias[n0..n0 + cols]`) into rows `r0..r0 + tile.len()` of the
/// `(_, n)` output `y` at column `n0` (which may be uninitialised).
///
/// # Safety
/// `y` points to an output with these rows whose columns `n0..n0 + cols` only the caller writes.
pub(crate) unsafe fn store_tile(
    y: SendPtr,
    n: usize,
    r0: usize,
    n0: usize,
    cols: usize,
    tile: &[[f32; STRIP]],
    bias: Option<&[f32]>,
) {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe {
        for (i, trow) in tile.iter().enumerate() {
            store_row(y.ptr().add((r0 + i) * n + n0), &trow[..cols], bias.map(|b| &b[n0..n0 + cols]));
        }
    }
}

/// Writes `row` (+ `bias`) to `dst`, which may be uninitialised.
///
/// # Safety
/// `dst` is valid for `row.len()` writes; `bias`, if any, has `row.len()` values.
#[inline]
unsafe fn store_row(dst: *mut f32, row: &[f32], bias: Option<&[f32]>) {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe {
        match bias {
            Some(b) => {
                for (j, (tv, bv)) in row.iter().zip(b).enumerate() {
                    dst.add(j).write(tv + bv);
                }
            }
            // A whole strip with a constant length: inlined vector moves rather than a memcpy call.
            None if row.len() == STRIP => std::ptr::copy_nonoverlapping(row.as_ptr(), dst, STRIP),
            None => std::ptr::copy_nonoverlapping(row.as_ptr(), dst, row.len()),
        }
    }
}

/// Packs `x (m, k)`: per block of `k` (length `kc`, last one shorter), each row block of `mr`
/// rows as `[kcur][rows]`. Block `(k0, r0)` starts at `k0 · m + r0 · kcur`.
fn pack_x(x: &[f32], m: usize, k: usize, kc: usize, mr: usize) -> Vec<f32> {
    let mut xp = vec![0f32; m * k];
    let mut jobs: Vec<(usize, usize, usize, &mut [f32])> = Vec::new();
    let mut rest = &mut xp[..];
    let mut k0 = 0;
    while k0 < k {
        let kcur = kc.min(k - k0);
        let mut r0 = 0;
        while r0 < m {
            let rows = mr.min(m - r0);
            let (block, tail) = std::mem::take(&mut rest).split_at_mut(rows * kcur);
            jobs.push((k0, r0, kcur, block));
            rest = tail;
            r0 += rows;
        }
        k0 += kcur;
    }
    let pack = |(k0, r0, kcur, block): &mut (usize, usize, usize, &mut [f32])| {
        let rows = block.len() / *kcur;
        for i in 0..rows {
            let src = &x[(*r0 + i) * k + *k0..(*r0 + i) * k + *k0 + *kcur];
            for (kk, &v) in src.iter().enumerate() {
                block[kk * rows + i] = v;
            }
        }
    };
    if m * k >= 1 << 16 {
        jobs.par_iter_mut().for_each(pack);
    } else {
        jobs.iter_mut().for_each(pack);
    }
    xp
}

/// Computes the columns of strips `[strips.0, strips.1)` of `y` from packed `x`.
///
/// # Safety
/// `y` must point to `m × n` floats that no one else touches in these columns; `scratch` holds
/// `32 · kc` floats when the weight needs it.
#[allow(clippy::too_many_arguments)]
unsafe fn run_strips<W: StripSource>(
    w: &W,
    isa: Isa,
    xp: &[f32],
    m: usize,
    kc: usize,
    bias: Option<&[f32]>,
    y: SendPtr,
    strips: (usize, usize),
    scratch: &mut [f32],
) {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe {
        let (n, k) = (w.out_dim(), w.in_dim());
        let mr_max = isa.mr();
        let mut tile = [0f32; MR_MAX * STRIP];
        let single = m <= mr_max;
        // Rows whose packed x block of k (`rows × kc` floats) fits in half of L2.
        let mc = (X_BLOCK_BYTES / (4 * kc) / mr_max).max(1) * mr_max;
        let mut m0 = 0;
        while m0 < m {
            let m1 = (m0 + mc).min(m);
            let blocks = (m1 - m0).div_ceil(mr_max);
            let mut k0 = 0;
            while k0 < k {
                let kcur = kc.min(k - k0);
                for s in strips.0..strips.1 {
                    let n0 = s * STRIP;
                    let cols = STRIP.min(n - n0);
                    let mut panel: *const f32 = std::ptr::null();
                    let mut next = if single {
                        Prefetch::default()
                    } else if s + 1 < strips.1 {
                        Prefetch::new(w.panel_bytes(s + 1, k0, kcur))
                    } else if k0 + kcur < k {
                        Prefetch::new(w.panel_bytes(strips.0, k0 + kcur, kc.min(k - k0 - kcur)))
                    } else {
                        Prefetch::default()
                    };
                    let prefetch_lines = next.lines().div_ceil(blocks);
                    let mut r0 = m0;
                    while r0 < m1 {
                        let mr = mr_max.min(m - r0);
                        let xb = xp.as_ptr().add(k0 * m + r0 * kcur);
                        if !(single && w.fused_tile(s, k0, kcur, xb, mr, tile.as_mut_ptr())) {
                            if panel.is_null() {
                                panel = w.panel(s, k0, kcur, scratch.as_mut_ptr());
                            }
                            // A slice of the task's next panel per row block, loaded while it runs.
                            next.issue(prefetch_lines);
                            let t = PanelTile { x: xb, w: panel, kc: kcur, mr, out: tile.as_mut_ptr() };
                            kernel(isa, &t);
                        }
                        for i in 0..mr {
                            let dst = y.0.add((r0 + i) * n + n0);
                            let trow = &tile[i * STRIP..i * STRIP + cols];
                            if k0 > 0 {
                                // Written by the first block of k.
                                let yrow = std::slice::from_raw_parts_mut(dst, cols);
                                for (yv, tv) in yrow.iter_mut().zip(trow) {
                                    *yv += tv;
                                }
                            } else {
                                store_row(dst, trow, bias.map(|b| &b[n0..n0 + cols]));
                            }
                        }
                        r0 += mr;
                    }
                }
                k0 += kcur;
            }
            m0 = m1;
        }
    }
}

/// The 64-byte lines of up to two regions, handed to the CPU's prefetcher a few at a time.
#[derive(Default)]
struct Prefetch {
    regions: [(usize, usize); 2],
    /// Lines already issued, over both regions.
    done: usize,
}

impl Prefetch {
    fn new(regions: [(*const u8, usize); 2]) -> Self {
        Prefetch { regions: regions.map(|(p, bytes)| (p as usize, bytes.div_ceil(64))), done: 0 }
    }

    fn lines(&self) -> usize {
        self.regions[0].1 + self.regions[1].1
    }

    /// Issues the next `count` lines (fewer at the end).
    #[inline]
    fn issue(&mut self, count: usize) {
        let end = (self.done + count).min(self.lines());
        while self.done < end {
            prefetch_line(self.line_addr(self.done) as *const u8);
            self.done += 1;
        }
    }

    /// Address of line `i` over both regions (`i < self.lines()`).
    #[inline(always)]
    fn line_addr(&self, i: usize) -> usize {
        let ((first, first_lines), (second, _)) = (self.regions[0], self.regions[1]);
        if i < first_lines {
            first + 64 * i
        } else {
            second + 64 * (i - first_lines)
        }
    }
}

/// Starts loading the cache line at `p` (a hint; never faults).
#[inline(always)]
fn prefetch_line(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing architecturally and never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// # Safety
/// The CPU must support `isa`; `t` describes valid memory (see [`PanelTile`]) with `mr <= isa.mr()`.
#[inline]
unsafe fn kernel(isa: Isa, t: &PanelTile) {
    // SAFETY: the caller upholds this function's `# Safety` contract.
    unsafe {
        match isa {
            Isa::Generic => generic::tile_f32(t),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::avx2_f32(t),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => x86::avx512_f32(t),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => neon::neon_f32(t),
        }
    }
}

/// The output pointer handed to the tasks of [`for_strip_tasks`].
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub(crate) *mut f32);
// SAFETY: tasks write disjoint column ranges (see `run_strips`).
unsafe impl Send for SendPtr {}
// SAFETY: as for `Send`: the tasks write disjoint column ranges through it.
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer (a method, so that closures capture the whole `Sync` wrapper).
    pub(crate) fn ptr(self) -> *mut f32 {
        self.0
    }
}

/// A float weight `(n, k)` packed once into strip layout, with its micro-kernel set.
#[derive(Debug, Clone)]
pub struct PackedMatmul {
    out_dim: usize,
    in_dim: usize,
    /// `strips × in_dim × 32` floats (the last strip zero-padded).
    packed: Vec<f32>,
    isa: Isa,
}

impl PackedMatmul {
    /// Packs a row-major `(out_dim, in_dim)` weight (PyTorch layout).
    pub fn new(weight: &[f32], out_dim: usize, in_dim: usize) -> candle_core::Result<Self> {
        Self::with_isa(weight, out_dim, in_dim, Isa::detect())
    }

    /// Like [`new`](Self::new) with a given kernel set (for tests and benchmarks).
    pub fn with_isa(weight: &[f32], out_dim: usize, in_dim: usize, isa: Isa) -> candle_core::Result<Self> {
        if !isa.available() {
            candle_core::bail!("packed matmul: {isa:?} is not supported by this CPU");
        }
        if out_dim == 0 || in_dim == 0 || weight.len() != out_dim * in_dim {
            candle_core::bail!("packed matmul: {} values for a ({out_dim}, {in_dim}) weight", weight.len());
        }
        let strips = out_dim.div_ceil(STRIP);
        let mut packed = vec![0f32; strips * in_dim * STRIP];
        for (row, w) in weight.chunks_exact(in_dim).enumerate() {
            let (s, j) = (row / STRIP, row % STRIP);
            let dst = &mut packed[s * in_dim * STRIP..(s + 1) * in_dim * STRIP];
            for (kk, &v) in w.iter().enumerate() {
                dst[kk * STRIP + j] = v;
            }
        }
        Ok(PackedMatmul { out_dim, in_dim, packed, isa })
    }

    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    pub fn in_dim(&self) -> usize {
        self.in_dim
    }

    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Bytes held (strips padded to 32 rows).
    pub fn footprint_bytes(&self) -> usize {
        4 * self.packed.len()
    }

    /// The weight back in its `(out_dim, in_dim)` row-major layout.
    pub fn unpack(&self) -> Vec<f32> {
        let (n, k) = (self.out_dim, self.in_dim);
        let mut w = vec![0f32; n * k];
        for (row, dst) in w.chunks_exact_mut(k).enumerate() {
            let src = &self.packed[(row / STRIP) * k * STRIP..];
            for (kk, v) in dst.iter_mut().enumerate() {
                *v = src[kk * STRIP + row % STRIP];
            }
        }
        w
    }

    /// `y (m, out) = x (m, in) · W^T (+ bias)`, `x` and `y` row-major.
    pub fn matmul(&self, x: &[f32], m: usize, bias: Option<&[f32]>, y: &mut [f32]) -> candle_core::Result<()> {
        self.matmul_uninit(x, m, bias, as_uninit(y))
    }

    /// [`matmul`](Self::matmul) into an output that may be uninitialised (every value is written).
    pub(crate) fn matmul_uninit(
        &self,
        x: &[f32],
        m: usize,
        bias: Option<&[f32]>,
        y: &mut [MaybeUninit<f32>],
    ) -> candle_core::Result<()> {
        run(self, self.isa, x, m, bias, y)
    }
}

impl StripSource for PackedMatmul {
    fn out_dim(&self) -> usize {
        self.out_dim
    }

    fn in_dim(&self) -> usize {
        self.in_dim
    }

    fn k_align(&self) -> usize {
        1
    }

    fn needs_scratch(&self) -> bool {
        false
    }

    fn has_fused_tile(&self) -> bool {
        false
    }

    /// # Safety
    /// As for [`StripSource::panel`].
    unsafe fn panel(&self, s: usize, k0: usize, _kc: usize, _scratch: *mut f32) -> *const f32 {
        // SAFETY: the caller upholds this function's `# Safety` contract.
        unsafe { self.packed.as_ptr().add((s * self.in_dim + k0) * STRIP) }
    }

    /// # Safety
    /// As for [`StripSource::fused_tile`].
    unsafe fn fused_tile(&self, _: usize, _: usize, _: usize, _: *const f32, _: usize, _: *mut f32) -> bool {
        false
    }
}

#[cfg(test)]
mod tests;

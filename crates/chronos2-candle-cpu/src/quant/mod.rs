//! Quantized linear layers on the CPU: `y = x · dequant(W)^T (+ b)` with int8 / int4 weights
//! in MLX's affine group scheme ([`chronos2_core::quant`]), dequantized on the fly inside the
//! matmul micro-kernel (never as a whole float weight).
//!
//! # Kernel
//!
//! [`QuantizedMatmul::new`] repacks the MLX layout (row-major codes packed in `u32`) once into a
//! kernel layout of *strips* of 32 output rows: for each input index `k` the 32 codes of the
//! strip are contiguous (int8: 32 bytes per `k`; int4: 32 bytes per pair `k, k+1`, low nibble
//! `k`), and per group the strip's 32 scales and 32 biases are contiguous. Same bytes as the MLX
//! layout, different order; nothing is dequantized at load.
//!
//! The micro-kernel computes a tile of up to `MR` rows of `x` (12 with AVX-512) by one strip
//! (32 outputs) as a sum of outer products, `x` packed per row block as `[k][MR]` so that the
//! broadcasts of `x[i, k]` are contiguous:
//!
//! - one row block (`m <= MR`, the small-batch / latency case): dequantization is fused into the
//!   kernel — for each `k` the strip's 32 codes become `w = scale · q + bias` (two 16-lane
//!   vectors: zero-extend, convert, one FMA with the group's scale and bias vectors) and
//!   `x[i, k] · w` is accumulated into `MR × 2` vector accumulators; the weight is read once.
//! - several row blocks: each strip is dequantized once per block of `k` (256) into an f32
//!   panel `[k][32]` in L1, and every row block runs a plain f32 outer-product kernel on it, so
//!   the FMA units are not shared with dequantization work as `m` grows.
//!
//! `k` is blocked so that the block of `x` stays in L2. Threads split the output columns
//! (strips) with rayon. (MLX's identity `Σ x (s q + b) = s (x · q) + b Σ x` is not needed: the
//! per-`k` dequantization FMA is shared by the `MR` rows, or done once per panel.)
//!
//! Code paths, chosen at run time: AVX-512F (x86_64), AVX2 + FMA (x86_64), and a portable one
//! (plain Rust over the same layout, auto-vectorised; NEON on aarch64).

mod generic;
#[cfg(target_arch = "x86_64")]
mod x86;

use std::sync::OnceLock;

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};
use chronos2_core::quant::QuantizedWeight;
use rayon::prelude::*;

/// Output rows per strip of the kernel layout.
pub(crate) const STRIP: usize = 32;
/// Largest row block of any micro-kernel.
pub(crate) const MR_MAX: usize = 12;
/// Bytes of `x` (one block of `k`, all rows) meant to stay in L2.
const X_BLOCK_BYTES: usize = 512 * 1024;
/// Longest block of `k` dequantized into an f32 panel (32 × 512 floats = 64 KiB).
const PANEL_K: usize = 128;

/// Which micro-kernels run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// Plain Rust (auto-vectorised).
    Generic,
    /// AVX2 + FMA, 8-lane.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// AVX-512F, 16-lane.
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Isa {
    /// The best kernel set this CPU supports (detected once).
    pub fn detect() -> Isa {
        static ISA: OnceLock<Isa> = OnceLock::new();
        *ISA.get_or_init(|| {
            #[cfg(target_arch = "x86_64")]
            {
                if std::env::var_os("CHRONOS2_QUANT_GENERIC").is_some() {
                    return Isa::Generic;
                }
                if is_x86_feature_detected!("avx512f") && std::env::var_os("CHRONOS2_QUANT_NO_AVX512").is_none() {
                    return Isa::Avx512;
                }
                if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                    return Isa::Avx2;
                }
            }
            Isa::Generic
        })
    }

    /// Whether this CPU can run `self`.
    pub fn available(self) -> bool {
        match self {
            Isa::Generic => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => is_x86_feature_detected!("avx512f"),
        }
    }

    /// Rows of `x` per micro-kernel call.
    fn mr(self) -> usize {
        match self {
            Isa::Generic => 8,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => 6,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => 12,
        }
    }
}

/// Arguments of one micro-kernel call: `tile[i][j] = Σ_{k < kc} x[i, k] · w[j, k]` for
/// `i < mr`, `j < 32`, where `w` is the strip's dequantized weight over one block of `k`.
pub(crate) struct Tile {
    /// The row block of `x` over the block of `k`, packed `[kc][mr]` (`x[i, k]` at `k · mr + i`).
    pub x: *const f32,
    /// The strip's codes at the block's first `k` (int8: `32 · kc` bytes, int4: `16 · kc`).
    pub q: *const u8,
    /// The strip's scales and biases at the block's first group: per group 32 scales, then
    /// 32 biases.
    pub sb: *const f32,
    /// Length of the `k` block (a multiple of `group_size`).
    pub kc: usize,
    pub group_size: usize,
    /// Rows, `1..=MR_MAX` (and at most the kernel's `mr`).
    pub mr: usize,
    /// Output, `mr × 32`, row-major.
    pub out: *mut f32,
}

/// Arguments of one f32 panel call: `tile[i][j] = Σ_{k < kc} x[i, k] · panel[k][j]`.
pub(crate) struct PanelTile {
    /// Packed `[kc][mr]` as in [`Tile`].
    pub x: *const f32,
    /// `[kc][32]` dequantized weights of the strip.
    pub w: *const f32,
    pub kc: usize,
    pub mr: usize,
    /// Output, `mr × 32`, row-major.
    pub out: *mut f32,
}

/// The weight of a quantized matmul in kernel layout (see the module docs).
#[derive(Debug, Clone)]
pub struct QuantizedMatmul {
    bits: u32,
    group_size: usize,
    out_dim: usize,
    in_dim: usize,
    strips: usize,
    /// Codes, strip-major: `strips × in_dim × 32 × bits / 8` bytes.
    q: Vec<u8>,
    /// Scales and biases, strip-major: `strips × groups × 64` (32 scales, 32 biases).
    sb: Vec<f32>,
    isa: Isa,
}

impl QuantizedMatmul {
    /// Repacks an MLX-layout quantized weight (8 or 4 bits, any MLX group size).
    pub fn new(w: &QuantizedWeight) -> candle_core::Result<Self> {
        Self::with_isa(w, Isa::detect())
    }

    /// Like [`new`](Self::new) with a given kernel set (for tests and benchmarks).
    pub fn with_isa(w: &QuantizedWeight, isa: Isa) -> candle_core::Result<Self> {
        if w.bits != 8 && w.bits != 4 {
            candle_core::bail!("quantized matmul supports 8 and 4 bits, got {}", w.bits);
        }
        if !isa.available() {
            candle_core::bail!("quantized matmul: {isa:?} is not supported by this CPU");
        }
        if !w.group_size.is_multiple_of(32) || !w.in_dim.is_multiple_of(w.group_size) || w.in_dim == 0 || w.out_dim == 0
        {
            candle_core::bail!(
                "quantized matmul: bad shape ({}, {}) / group size {}",
                w.out_dim,
                w.in_dim,
                w.group_size
            );
        }
        if w.packed.len() != w.out_dim * w.words_per_row()
            || w.scales.len() != w.out_dim * w.groups_per_row()
            || w.biases.len() != w.scales.len()
        {
            candle_core::bail!("quantized matmul: inconsistent quantized weight sizes");
        }
        let (n, k) = (w.out_dim, w.in_dim);
        let strips = n.div_ceil(STRIP);
        let groups = w.groups_per_row();
        let strip_bytes = k * STRIP * w.bits as usize / 8;
        let mut q = vec![0u8; strips * strip_bytes];
        let mut sb = vec![0f32; strips * groups * 2 * STRIP];
        let codes_per_word = w.codes_per_word();
        let wpr = w.words_per_row();
        let mask = (1u32 << w.bits) - 1;
        for row in 0..n {
            let (s, j) = (row / STRIP, row % STRIP);
            let words = &w.packed[row * wpr..(row + 1) * wpr];
            let dst = &mut q[s * strip_bytes..(s + 1) * strip_bytes];
            for col in 0..k {
                let c = ((words[col / codes_per_word] >> ((col % codes_per_word) as u32 * w.bits)) & mask) as u8;
                if w.bits == 8 {
                    dst[col * STRIP + j] = c;
                } else {
                    dst[(col / 2) * STRIP + j] |= c << (4 * (col % 2));
                }
            }
            for g in 0..groups {
                let base = (s * groups + g) * 2 * STRIP;
                sb[base + j] = w.scales[row * groups + g];
                sb[base + STRIP + j] = w.biases[row * groups + g];
            }
        }
        Ok(QuantizedMatmul { bits: w.bits, group_size: w.group_size, out_dim: n, in_dim: k, strips, q, sb, isa })
    }

    pub fn bits(&self) -> u32 {
        self.bits
    }

    pub fn group_size(&self) -> usize {
        self.group_size
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

    /// Bytes held (codes, scales and biases; strips padded to 32 rows).
    pub fn footprint_bytes(&self) -> usize {
        self.q.len() + 4 * self.sb.len()
    }

    /// `y (m, out) = x (m, in) · dequant(W)^T (+ bias)`, `x` and `y` row-major.
    pub fn matmul(&self, x: &[f32], m: usize, bias: Option<&[f32]>, y: &mut [f32]) {
        let (n, k) = (self.out_dim, self.in_dim);
        assert_eq!(x.len(), m * k, "x must be (m, in_dim)");
        assert_eq!(y.len(), m * n, "y must be (m, out_dim)");
        if let Some(b) = bias {
            assert_eq!(b.len(), n, "bias must have out_dim values");
        }
        if m == 0 {
            return;
        }
        // Block k so that one block of x (all m rows) stays in L2.
        // With more than one row block, each strip is dequantized once per block of k into an
        // f32 panel shared by the row blocks; with one, dequantization is fused into the kernel.
        let gs = self.group_size;
        let mut kc = if m * k * 4 <= X_BLOCK_BYTES { k } else { (X_BLOCK_BYTES / (m * 4) / gs).max(1) * gs };
        let panels = m > self.isa.mr();
        if panels {
            kc = kc.min((PANEL_K / gs).max(1) * gs);
        }
        // Pack x once: per block of k, each row block of `mr` rows as [kcur][mr] (contiguous
        // broadcasts in the micro-kernels). Block (k0, r0) starts at `k0 · m + r0 · kcur`.
        let mr = self.isa.mr();
        let mut xp = vec![0f32; m * k];
        {
            let mut jobs: Vec<(usize, usize, &mut [f32])> = Vec::new();
            let mut rest = &mut xp[..];
            let mut k0 = 0;
            while k0 < k {
                let kcur = kc.min(k - k0);
                let mut r0 = 0;
                while r0 < m {
                    let rows = mr.min(m - r0);
                    let (block, tail) = std::mem::take(&mut rest).split_at_mut(rows * kcur);
                    jobs.push((k0, r0, block));
                    rest = tail;
                    r0 += rows;
                }
                k0 += kcur;
            }
            let pack = |(k0, r0, block): &mut (usize, usize, &mut [f32])| {
                let (k0, r0) = (*k0, *r0);
                let rows = block.len() / kc.min(k - k0);
                for i in 0..rows {
                    let src = &x[(r0 + i) * k + k0..(r0 + i) * k + k0 + block.len() / rows];
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
        }
        // Split the strips over the threads; a few chunks per thread for balance.
        let threads = rayon::current_num_threads().max(1);
        let tasks = if m * n * k < 1 << 18 { 1 } else { (threads * 4).min(self.strips) };
        let per_task = self.strips.div_ceil(tasks);
        let yp = SendPtr(y.as_mut_ptr());
        let run = |first: usize| {
            let last = (first + per_task).min(self.strips);
            // SAFETY: each task writes only the columns of its own strips [first, last).
            unsafe { self.run_strips(&xp, m, bias, yp, (first, last), kc, panels) };
        };
        if tasks == 1 {
            run(0);
        } else {
            (0..self.strips).step_by(per_task).collect::<Vec<_>>().into_par_iter().for_each(run);
        }
    }

    /// Computes the columns of strips `[strips.0, strips.1)` of `y` from packed `x`.
    ///
    /// # Safety
    /// `y` must point to `m × out_dim` floats that no one else touches in these columns.
    #[allow(clippy::too_many_arguments)]
    unsafe fn run_strips(
        &self,
        xp: &[f32],
        m: usize,
        bias: Option<&[f32]>,
        y: SendPtr,
        strips: (usize, usize),
        kc: usize,
        panels: bool,
    ) {
        let (n, k, gs) = (self.out_dim, self.in_dim, self.group_size);
        let groups = k / gs;
        let strip_bytes = k * STRIP * self.bits as usize / 8;
        let mr_max = self.isa.mr();
        let mut tile = [0f32; MR_MAX * STRIP];
        let mut panel = if panels { vec![0f32; kc * STRIP] } else { Vec::new() };
        let mut k0 = 0;
        while k0 < k {
            let kcur = kc.min(k - k0);
            for s in strips.0..strips.1 {
                let n0 = s * STRIP;
                let cols = STRIP.min(n - n0);
                let q = self.q.as_ptr().add(s * strip_bytes + k0 * STRIP * self.bits as usize / 8);
                let sb = self.sb.as_ptr().add((s * groups + k0 / gs) * 2 * STRIP);
                if panels {
                    self.dequantize_panel(q, sb, kcur, panel.as_mut_ptr());
                }
                let mut r0 = 0;
                while r0 < m {
                    let mr = mr_max.min(m - r0);
                    let xb = xp.as_ptr().add(k0 * m + r0 * kcur);
                    if panels {
                        let t = PanelTile { x: xb, w: panel.as_ptr(), kc: kcur, mr, out: tile.as_mut_ptr() };
                        self.panel_kernel(&t);
                    } else {
                        let t = Tile { x: xb, q, sb, kc: kcur, group_size: gs, mr, out: tile.as_mut_ptr() };
                        self.kernel(&t);
                    }
                    for i in 0..mr {
                        let yrow = std::slice::from_raw_parts_mut(y.0.add((r0 + i) * n + n0), cols);
                        let trow = &tile[i * STRIP..i * STRIP + cols];
                        if k0 > 0 {
                            for (yv, tv) in yrow.iter_mut().zip(trow) {
                                *yv += tv;
                            }
                        } else if let Some(b) = bias {
                            for ((yv, tv), bv) in yrow.iter_mut().zip(trow).zip(&b[n0..n0 + cols]) {
                                *yv = tv + bv;
                            }
                        } else {
                            yrow.copy_from_slice(trow);
                        }
                    }
                    r0 += mr;
                }
            }
            k0 += kcur;
        }
    }

    #[inline]
    unsafe fn dequantize_panel(&self, q: *const u8, sb: *const f32, kc: usize, panel: *mut f32) {
        let (bits, gs) = (self.bits, self.group_size);
        match self.isa {
            Isa::Generic => generic::panel(bits, q, sb, kc, gs, panel),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::avx2_panel(bits, q, sb, kc, gs, panel),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => x86::avx512_panel(bits, q, sb, kc, gs, panel),
        }
    }

    #[inline]
    unsafe fn panel_kernel(&self, t: &PanelTile) {
        match self.isa {
            Isa::Generic => generic::tile_f32(t),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::avx2_f32(t),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => x86::avx512_f32(t),
        }
    }

    #[inline]
    unsafe fn kernel(&self, t: &Tile) {
        match self.isa {
            Isa::Generic => {
                if self.bits == 8 {
                    generic::tile_q8(t)
                } else {
                    generic::tile_q4(t)
                }
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                if self.bits == 8 {
                    x86::avx2_q8(t)
                } else {
                    x86::avx2_q4(t)
                }
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                if self.bits == 8 {
                    x86::avx512_q8(t)
                } else {
                    x86::avx512_q4(t)
                }
            }
        }
    }
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: tasks write disjoint column ranges (see `run_strips`).
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// A quantized linear layer `y = x W^T (+ b)` over the last axis of a candle tensor.
#[derive(Debug, Clone)]
pub struct QuantizedLinear {
    matmul: QuantizedMatmul,
    bias: Option<Vec<f32>>,
}

impl QuantizedLinear {
    /// `weight` in MLX's affine layout (8 or 4 bits), `bias` of length `out_dim`.
    pub fn new(weight: QuantizedWeight, bias: Option<Vec<f32>>) -> candle_core::Result<Self> {
        Self::from_matmul(QuantizedMatmul::new(&weight)?, bias)
    }

    /// Quantizes a float `(out_dim, in_dim)` weight (PyTorch layout) with MLX's affine scheme
    /// ([`chronos2_core::quant::quantize`]) and builds the layer.
    pub fn quantize(
        weight: &[f32],
        out_dim: usize,
        in_dim: usize,
        bias: Option<&[f32]>,
        bits: u32,
        group_size: usize,
    ) -> candle_core::Result<Self> {
        let q = chronos2_core::quant::quantize(weight, out_dim, in_dim, bits, group_size)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        Self::new(q, bias.map(<[f32]>::to_vec))
    }

    /// From an already repacked weight.
    pub fn from_matmul(matmul: QuantizedMatmul, bias: Option<Vec<f32>>) -> candle_core::Result<Self> {
        if let Some(b) = &bias {
            if b.len() != matmul.out_dim {
                candle_core::bail!("bias has {} values, expected {}", b.len(), matmul.out_dim);
            }
        }
        Ok(QuantizedLinear { matmul, bias })
    }

    pub fn matmul(&self) -> &QuantizedMatmul {
        &self.matmul
    }

    pub fn bias(&self) -> Option<&[f32]> {
        self.bias.as_deref()
    }

    pub fn in_dim(&self) -> usize {
        self.matmul.in_dim
    }

    pub fn out_dim(&self) -> usize {
        self.matmul.out_dim
    }

    /// Bytes held by the weight and bias.
    pub fn footprint_bytes(&self) -> usize {
        self.matmul.footprint_bytes() + 4 * self.bias.as_ref().map_or(0, Vec::len)
    }

    /// Applies the layer over the last axis of `x` (any leading shape; computed in f32, the
    /// result has `x`'s dtype).
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dtype = x.dtype();
        let x32 = if dtype == DType::F32 { x.clone() } else { x.to_dtype(DType::F32)? };
        let y = x32.contiguous()?.apply_op1_no_bwd(self)?;
        if dtype == DType::F32 {
            Ok(y)
        } else {
            y.to_dtype(dtype)
        }
    }

    /// Plain-slice form of [`forward`](Self::forward): `x` is `(m, in_dim)` row-major.
    pub fn forward_slice(&self, x: &[f32], m: usize) -> Vec<f32> {
        let mut y = vec![0f32; m * self.matmul.out_dim];
        self.matmul.matmul(x, m, self.bias.as_deref(), &mut y);
        y
    }
}

impl CustomOp1 for QuantizedLinear {
    fn name(&self) -> &'static str {
        "quantized-linear"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("quantized linear expects f32 input");
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("quantized linear expects a contiguous input");
        };
        let dims = layout.shape().dims();
        let in_dim = dims.last().copied().unwrap_or(0);
        if in_dim != self.matmul.in_dim {
            candle_core::bail!("quantized linear: input has {in_dim} features, expected {}", self.matmul.in_dim);
        }
        let m = (end - start) / in_dim;
        let y = self.forward_slice(&data[start..end], m);
        let mut out_dims = dims.to_vec();
        *out_dims.last_mut().expect("non-empty shape") = self.matmul.out_dim;
        Ok((CpuStorage::F32(y), Shape::from(out_dims)))
    }
}

#[cfg(test)]
mod tests;

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
//! The matmul runs on the shared GEMM driver ([`crate::gemm`]): with one row block (`m <= mr`,
//! the small-batch / latency case) dequantization is fused into the micro-kernel — for each `k`
//! the strip's 32 codes become `w = scale · q + bias` and `x[i, k] · w` is accumulated into
//! `mr × 2` vector accumulators, the weight read once; with several row blocks each panel
//! (`[128][32]`) is dequantized once per call into an f32 scratch buffer in L1 and every row
//! block of `x` runs the f32 micro-kernel on it, so at many rows int8/int4 cost fp32's kernel
//! plus one dequantization of the weight per call.
//!
//! Code paths, chosen at run time: AVX-512F (x86_64), AVX2 + FMA (x86_64), NEON intrinsics
//! (aarch64), and a portable one (plain Rust over the same layout, auto-vectorised).

mod generic;
#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "x86_64")]
mod x86;

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};
use chronos2_core::quant::QuantizedWeight;

use crate::gemm::{self, StripSource, MR_MAX, STRIP};
pub use crate::isa::Isa;

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

/// The weight of a quantized matmul in kernel layout (see the module docs).
#[derive(Debug, Clone)]
pub struct QuantizedMatmul {
    bits: u32,
    group_size: usize,
    out_dim: usize,
    in_dim: usize,
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
        Ok(QuantizedMatmul { bits: w.bits, group_size: w.group_size, out_dim: n, in_dim: k, q, sb, isa })
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

    /// `y (m, out) = x (m, in) · dequant(W)^T (+ bias)`, `x` and `y` row-major; mis-sized
    /// arguments are an error.
    pub fn matmul(&self, x: &[f32], m: usize, bias: Option<&[f32]>, y: &mut [f32]) -> candle_core::Result<()> {
        self.matmul_uninit(x, m, bias, gemm::as_uninit(y))
    }

    /// [`matmul`](Self::matmul) into an output that may be uninitialised (every value is written).
    pub(crate) fn matmul_uninit(
        &self,
        x: &[f32],
        m: usize,
        bias: Option<&[f32]>,
        y: &mut [MaybeUninit<f32>],
    ) -> candle_core::Result<()> {
        gemm::run(self, self.isa, x, m, bias, y)
    }
}

impl StripSource for QuantizedMatmul {
    fn out_dim(&self) -> usize {
        self.out_dim
    }

    fn in_dim(&self) -> usize {
        self.in_dim
    }

    fn k_align(&self) -> usize {
        self.group_size
    }

    fn needs_scratch(&self) -> bool {
        true
    }

    fn has_fused_tile(&self) -> bool {
        true
    }

    /// # Safety
    /// As for [`StripSource::panel`].
    unsafe fn panel(&self, s: usize, k0: usize, kc: usize, scratch: *mut f32) -> *const f32 {
        // SAFETY: the caller upholds this function's `# Safety` contract.
        unsafe {
            let (q, sb) = self.strip_at(s, k0);
            let (bits, gs) = (self.bits, self.group_size);
            match self.isa {
                Isa::Generic => generic::panel(bits, q, sb, kc, gs, scratch),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => x86::avx2_panel(bits, q, sb, kc, gs, scratch),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => x86::avx512_panel(bits, q, sb, kc, gs, scratch),
                #[cfg(target_arch = "aarch64")]
                Isa::Neon => neon::neon_panel(bits, q, sb, kc, gs, scratch),
            }
            scratch
        }
    }

    /// # Safety
    /// As for [`StripSource::fused_tile`].
    unsafe fn fused_tile(&self, s: usize, k0: usize, kc: usize, x: *const f32, mr: usize, out: *mut f32) -> bool {
        // SAFETY: the caller upholds this function's `# Safety` contract.
        unsafe {
            let (q, sb) = self.strip_at(s, k0);
            let t = Tile { x, q, sb, kc, group_size: self.group_size, mr, out };
            match (self.isa, self.bits) {
                (Isa::Generic, 8) => generic::tile_q8(&t),
                (Isa::Generic, _) => generic::tile_q4(&t),
                #[cfg(target_arch = "x86_64")]
                (Isa::Avx2, 8) => x86::avx2_q8(&t),
                #[cfg(target_arch = "x86_64")]
                (Isa::Avx2, _) => x86::avx2_q4(&t),
                #[cfg(target_arch = "x86_64")]
                (Isa::Avx512, 8) => x86::avx512_q8(&t),
                #[cfg(target_arch = "x86_64")]
                (Isa::Avx512, _) => x86::avx512_q4(&t),
                #[cfg(target_arch = "aarch64")]
                (Isa::Neon, 8) => neon::neon_q8(&t),
                #[cfg(target_arch = "aarch64")]
                (Isa::Neon, _) => neon::neon_q4(&t),
            }
            true
        }
    }

    /// # Safety
    /// As for [`StripSource::panel_bytes`].
    unsafe fn panel_bytes(&self, s: usize, k0: usize, kc: usize) -> [(*const u8, usize); 2] {
        // SAFETY: the caller upholds this function's `# Safety` contract.
        unsafe {
            // Scales and biases first (the dequantization reads them first), then the codes.
            let (q, sb) = self.strip_at(s, k0);
            [(sb as *const u8, kc / self.group_size * 2 * STRIP * 4), (q, kc * STRIP * self.bits as usize / 8)]
        }
    }
}

impl QuantizedMatmul {
    /// Codes and scales/biases of strip `s` at input index `k0` (a multiple of the group size).
    ///
    /// # Safety
    /// `s < strips`, `k0 < in_dim`.
    unsafe fn strip_at(&self, s: usize, k0: usize) -> (*const u8, *const f32) {
        // SAFETY: the caller upholds this function's `# Safety` contract.
        unsafe {
            let strip_bytes = self.in_dim * STRIP * self.bits as usize / 8;
            let groups = self.in_dim / self.group_size;
            let q = self.q.as_ptr().add(s * strip_bytes + k0 * STRIP * self.bits as usize / 8);
            let sb = self.sb.as_ptr().add((s * groups + k0 / self.group_size) * 2 * STRIP);
            (q, sb)
        }
    }
}

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
    pub fn forward_slice(&self, x: &[f32], m: usize) -> candle_core::Result<Vec<f32>> {
        let mut y = vec![0f32; m * self.matmul.out_dim];
        self.matmul.matmul(x, m, self.bias.as_deref(), &mut y)?;
        Ok(y)
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
        let y = self.forward_slice(&data[start..end], m)?;
        let mut out_dims = dims.to_vec();
        *out_dims.last_mut().expect("non-empty shape") = self.matmul.out_dim;
        Ok((CpuStorage::F32(y), Shape::from(out_dims)))
    }
}

#[cfg(test)]
mod tests;

//! bf16 weights in strip layout: half the bytes of fp32, computed in fp32.
//!
//! Each panel (`[128][32]`) is widened to f32 (a bf16 is the top half of an f32) into an L1
//! scratch buffer and the f32 micro-kernel runs on it with fp32 accumulation; the conversion is
//! compiled for AVX-512 / AVX2 / portable like the kernels. Batch-1 calls, bound by reading the
//! weights, read half the bytes.

use super::{run, Isa, StripSource, STRIP};

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

/// A weight `(n, k)` rounded to bf16 and packed into strip layout, with its kernel set.
#[derive(Debug, Clone)]
pub struct Bf16Matmul {
    out_dim: usize,
    in_dim: usize,
    /// `strips × in_dim × 32` bf16 values (the last strip zero-padded).
    packed: Vec<u16>,
    isa: Isa,
}

impl Bf16Matmul {
    /// Rounds and packs a row-major `(out_dim, in_dim)` f32 weight (PyTorch layout).
    pub fn new(weight: &[f32], out_dim: usize, in_dim: usize) -> candle_core::Result<Self> {
        Self::with_isa(weight, out_dim, in_dim, Isa::detect())
    }

    /// Like [`new`](Self::new) with a given kernel set (for tests and benchmarks).
    pub fn with_isa(weight: &[f32], out_dim: usize, in_dim: usize, isa: Isa) -> candle_core::Result<Self> {
        if !isa.available() {
            candle_core::bail!("bf16 matmul: {isa:?} is not supported by this CPU");
        }
        if out_dim == 0 || in_dim == 0 || weight.len() != out_dim * in_dim {
            candle_core::bail!("bf16 matmul: {} values for a ({out_dim}, {in_dim}) weight", weight.len());
        }
        let mut packed = vec![0u16; out_dim.div_ceil(STRIP) * in_dim * STRIP];
        for (row, w) in weight.chunks_exact(in_dim).enumerate() {
            let dst = &mut packed[(row / STRIP) * in_dim * STRIP..];
            for (kk, &v) in w.iter().enumerate() {
                dst[kk * STRIP + row % STRIP] = to_bf16(v);
            }
        }
        Ok(Bf16Matmul { out_dim, in_dim, packed, isa })
    }

    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    pub fn in_dim(&self) -> usize {
        self.in_dim
    }

    /// Bytes held (strips padded to 32 rows).
    pub fn footprint_bytes(&self) -> usize {
        2 * self.packed.len()
    }

    /// The bf16 weight widened back to f32, `(out_dim, in_dim)` row-major.
    pub fn unpack(&self) -> Vec<f32> {
        let (n, k) = (self.out_dim, self.in_dim);
        let mut w = vec![0f32; n * k];
        for (row, dst) in w.chunks_exact_mut(k).enumerate() {
            let src = &self.packed[(row / STRIP) * k * STRIP..];
            for (kk, v) in dst.iter_mut().enumerate() {
                *v = from_bf16(src[kk * STRIP + row % STRIP]);
            }
        }
        w
    }

    /// `y (m, out) = x (m, in) · W^T (+ bias)` in fp32 with the bf16 weight.
    pub fn matmul(&self, x: &[f32], m: usize, bias: Option<&[f32]>, y: &mut [f32]) -> candle_core::Result<()> {
        run(self, self.isa, x, m, bias, y)
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
        1
    }

    fn needs_scratch(&self) -> bool {
        true
    }

    fn has_fused_tile(&self) -> bool {
        false
    }

    unsafe fn panel(&self, s: usize, k0: usize, kc: usize, scratch: *mut f32) -> *const f32 {
        let src = std::slice::from_raw_parts(self.packed.as_ptr().add((s * self.in_dim + k0) * STRIP), kc * STRIP);
        let dst = std::slice::from_raw_parts_mut(scratch, kc * STRIP);
        match self.isa {
            Isa::Generic => widen(src, dst),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => widen_avx2(src, dst),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => widen_avx512(src, dst),
        }
        scratch
    }

    unsafe fn fused_tile(&self, _: usize, _: usize, _: usize, _: *const f32, _: usize, _: *mut f32) -> bool {
        false
    }
}

#[inline(always)]
fn widen(src: &[u16], dst: &mut [f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = from_bf16(s);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn widen_avx512(src: &[u16], dst: &mut [f32]) {
    widen(src, dst)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn widen_avx2(src: &[u16], dst: &mut [f32]) {
    widen(src, dst)
}

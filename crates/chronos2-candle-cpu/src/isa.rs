//! Which hand-written kernels run: detected once at run time from the CPU.

use std::sync::OnceLock;

/// A set of micro-kernels (GEMM, quantized GEMM, attention).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// Plain Rust (auto-vectorised: SSE2 on x86_64, NEON on aarch64).
    Generic,
    /// AVX2 + FMA, 8-lane.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// AVX-512F, 16-lane.
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// NEON intrinsics, 4-lane (part of the aarch64 baseline).
    #[cfg(target_arch = "aarch64")]
    Neon,
}

/// Environment variable that caps the detected kernel set: `generic`, `avx2`, `avx512` or `neon`
/// (for comparisons; a set the CPU lacks is never used).
pub const ISA_ENV: &str = "CHRONOS2_CPU_ISA";

impl Isa {
    /// Every kernel set this CPU can run, portable first.
    pub fn all_available() -> Vec<Isa> {
        #[allow(unused_mut)]
        let mut v = vec![Isa::Generic];
        #[cfg(target_arch = "x86_64")]
        v.extend([Isa::Avx2, Isa::Avx512].into_iter().filter(|i| i.available()));
        #[cfg(target_arch = "aarch64")]
        v.push(Isa::Neon);
        v
    }

    /// The best kernel set this CPU supports, capped by [`ISA_ENV`] (detected once).
    pub fn detect() -> Isa {
        static ISA: OnceLock<Isa> = OnceLock::new();
        *ISA.get_or_init(|| {
            let cap = std::env::var(ISA_ENV).ok().map(|v| v.trim().to_ascii_lowercase());
            let allowed = |name: &str| match cap.as_deref() {
                None => true,
                Some("generic") => false,
                Some("avx2") => name == "avx2",
                Some(_) => true,
            };
            #[cfg(target_arch = "x86_64")]
            {
                if allowed("avx512") && Isa::Avx512.available() {
                    return Isa::Avx512;
                }
                if allowed("avx2") && Isa::Avx2.available() {
                    return Isa::Avx2;
                }
            }
            #[cfg(target_arch = "aarch64")]
            if allowed("neon") {
                return Isa::Neon;
            }
            let _ = allowed;
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
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => true,
        }
    }

    /// Rows of `x` per GEMM micro-kernel call.
    pub(crate) fn mr(self) -> usize {
        match self {
            Isa::Generic => 8,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => 6,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => 12,
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => crate::gemm::neon::MR,
        }
    }
}

//! Which hand-written kernels run: detected once at run time from the CPU, capped by
//! [`ISA_ENV`].

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

/// Environment variable that caps the detected kernel sets (for comparisons; a set the CPU
/// lacks is never used): one of [`IsaCap::VALID`]. `avx512` (or unset) allows every AVX-512
/// kernel but not the AMX tiles; `amx` allows everything the CPU has. The AMX kernels are opt-in
/// until they have been run on AMX hardware by the test suite (see [`AMX_BY_DEFAULT`]).
pub const ISA_ENV: &str = "CHRONOS2_CPU_ISA";

/// The highest kernel set allowed by [`ISA_ENV`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum IsaCap {
    Generic,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// AVX-512 plus the AMX tiles (bf16 and w8a8 products).
    #[cfg(target_arch = "x86_64")]
    Amx,
    #[cfg(target_arch = "aarch64")]
    Neon,
}

/// [`ISA_ENV`] holds a value that names no kernel set of this architecture.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{ISA_ENV}={value} is not a kernel set of this CPU architecture; valid values: {}", IsaCap::VALID.join(", "))]
pub struct UnknownIsa {
    pub value: String,
}

impl IsaCap {
    /// The values [`ISA_ENV`] accepts on this architecture, lowest first.
    #[cfg(target_arch = "x86_64")]
    pub const VALID: &'static [&'static str] = &["generic", "avx2", "avx512", "amx"];
    #[cfg(target_arch = "aarch64")]
    pub const VALID: &'static [&'static str] = &["generic", "neon"];
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    pub const VALID: &'static [&'static str] = &["generic"];

    /// Parses a value of [`ISA_ENV`] (case and surrounding spaces ignored).
    pub fn parse(value: &str) -> Result<IsaCap, UnknownIsa> {
        Ok(match value.trim().to_ascii_lowercase().as_str() {
            "generic" => IsaCap::Generic,
            #[cfg(target_arch = "x86_64")]
            "avx2" => IsaCap::Avx2,
            #[cfg(target_arch = "x86_64")]
            "avx512" => IsaCap::Avx512,
            #[cfg(target_arch = "x86_64")]
            "amx" => IsaCap::Amx,
            #[cfg(target_arch = "aarch64")]
            "neon" => IsaCap::Neon,
            _ => return Err(UnknownIsa { value: value.to_string() }),
        })
    }

    /// The cap set by [`ISA_ENV`]: `None` when unset, an error for an unknown value.
    pub fn from_env() -> Result<Option<IsaCap>, UnknownIsa> {
        match std::env::var(ISA_ENV) {
            Ok(v) => IsaCap::parse(&v).map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Whether kernels of level `level` may run under this cap.
    fn allows(cap: Option<IsaCap>, level: IsaCap) -> bool {
        cap.is_none_or(|c| level <= c)
    }
}

/// The cap read once from [`ISA_ENV`]; an unknown value caps nothing here (loading a model
/// reports it first, see [`check_env`]).
fn env_cap() -> Option<IsaCap> {
    static CAP: OnceLock<Option<IsaCap>> = OnceLock::new();
    *CAP.get_or_init(|| IsaCap::from_env().unwrap_or(None))
}

/// Fails when [`ISA_ENV`] holds an unknown value (called when a model is loaded).
pub fn check_env() -> Result<(), UnknownIsa> {
    IsaCap::from_env().map(|_| ())
}

/// Whether the AMX kernels run when [`ISA_ENV`] is unset. Off: they are tested against naive
/// oracles here without AMX only as far as "skipped", and have not yet run on AMX hardware.
#[cfg(target_arch = "x86_64")]
pub const AMX_BY_DEFAULT: bool = false;

/// Whether the AMX tiles may be used: the CPU has AMX-TILE, AMX-BF16 and AMX-INT8, Linux
/// granted this process the tile data state, and [`ISA_ENV`] asks for them (`amx`; or is unset
/// where [`AMX_BY_DEFAULT`]).
#[cfg(target_arch = "x86_64")]
pub fn amx_allowed() -> bool {
    let asked = match env_cap() {
        None => AMX_BY_DEFAULT,
        Some(cap) => cap >= IsaCap::Amx,
    };
    asked && Isa::Avx512.available() && crate::amx::available()
}

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
            let cap = env_cap();
            #[cfg(target_arch = "x86_64")]
            {
                if IsaCap::allows(cap, IsaCap::Avx512) && Isa::Avx512.available() {
                    return Isa::Avx512;
                }
                if IsaCap::allows(cap, IsaCap::Avx2) && Isa::Avx2.available() {
                    return Isa::Avx2;
                }
            }
            #[cfg(target_arch = "aarch64")]
            if IsaCap::allows(cap, IsaCap::Neon) {
                return Isa::Neon;
            }
            let _ = cap;
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

/// One line per kind of product saying which kernels run on this CPU and with which
/// parameters (for `chronos2 info`).
pub fn kernel_description() -> String {
    use crate::gemm::Bf16Kernel;
    use crate::w8a8::W8a8Isa;
    let cap = match IsaCap::from_env() {
        Ok(Some(c)) => format!("{ISA_ENV}={}", format!("{c:?}").to_ascii_lowercase()),
        Ok(None) => format!("{ISA_ENV} unset"),
        Err(e) => format!("invalid: {e}"),
    };
    let f32_isa = Isa::detect();
    let bf16 = match Bf16Kernel::detect() {
        Bf16Kernel::Widen(isa) => format!("bf16 weights widened per panel to f32, {isa:?}"),
        #[cfg(target_arch = "x86_64")]
        Bf16Kernel::Dot => "AVX512-BF16 vdpbf16ps, 12x32 tiles, activations rounded to bf16".to_string(),
        #[cfg(target_arch = "x86_64")]
        Bf16Kernel::Amx => format!(
            "AMX-BF16 tdpbf16ps, {0}x{0} blocks of four 16x16 fp32 tiles, k steps of 32, activations rounded to bf16",
            crate::amx::BLOCK
        ),
    };
    let w8a8 = match W8a8Isa::detect() {
        W8a8Isa::Portable => "portable".to_string(),
        #[cfg(target_arch = "x86_64")]
        W8a8Isa::Avx2 => "AVX2 vpmaddwd (codes widened to i16, exact), 6x16 tiles".to_string(),
        #[cfg(target_arch = "x86_64")]
        W8a8Isa::Vnni => "AVX512-VNNI vpdpbusd, 6x32 tiles".to_string(),
        #[cfg(target_arch = "x86_64")]
        W8a8Isa::Amx => format!(
            "AMX-INT8 tdpbusd, {0}x{0} blocks of four 16x16 int32 tiles, one k step per group of 64",
            crate::amx::BLOCK
        ),
    };
    #[cfg(target_arch = "x86_64")]
    let amx = match (crate::amx::available(), amx_allowed()) {
        (true, true) => "AMX tiles granted and used",
        (true, false) => "AMX tiles granted, not used (set CHRONOS2_CPU_ISA=amx)",
        (false, _) => "no AMX (or not granted by the OS)",
    };
    #[cfg(not(target_arch = "x86_64"))]
    let amx = "no AMX";
    format!(
        "CPU kernels ({cap}; {amx}): fp32 and int8/int4 {f32_isa:?} ({}x32 tiles, k blocks of 128); bf16 {bf16}; w8a8 {w8a8}",
        f32_isa.mr()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_isa_values_are_errors_naming_the_valid_ones() {
        let err = IsaCap::parse("avx1024").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("CHRONOS2_CPU_ISA=avx1024"), "{msg}");
        for v in IsaCap::VALID {
            assert!(msg.contains(v), "{msg} lacks {v}");
            assert!(IsaCap::parse(v).is_ok(), "{v}");
        }
        assert_eq!(IsaCap::parse(" Generic ").unwrap(), IsaCap::Generic);
        assert!(IsaCap::parse("").is_err());
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn caps_are_ordered_from_portable_to_amx() {
        assert!(IsaCap::allows(None, IsaCap::Amx));
        assert!(IsaCap::allows(Some(IsaCap::Amx), IsaCap::Avx512));
        assert!(!IsaCap::allows(Some(IsaCap::Avx512), IsaCap::Amx));
        assert!(!IsaCap::allows(Some(IsaCap::Avx2), IsaCap::Avx512));
        assert!(IsaCap::allows(Some(IsaCap::Avx2), IsaCap::Avx2));
        assert!(!IsaCap::allows(Some(IsaCap::Generic), IsaCap::Avx2));
    }

    #[test]
    fn the_description_names_every_product() {
        let d = kernel_description();
        for what in ["fp32", "bf16", "w8a8"] {
            assert!(d.contains(what), "{d}");
        }
    }
}

//! The machine a profile was measured on: CPU model, the CPU features the kernels use, and the
//! thread count the model runs with. `auto` uses a calibrated profile only on the machine it
//! describes.

use serde::{Deserialize, Serialize};

/// A machine as far as the route choice cares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// The processor's model name (`/proc/cpuinfo`'s, macOS's `sysctl machdep` brand string).
    pub processor: String,
    /// The CPU features the kernels look for that this CPU has.
    pub features: Vec<String>,
    /// Threads the model runs with (`RAYON_NUM_THREADS`, else the available parallelism).
    pub threads: usize,
    pub os: String,
    pub arch: String,
}

impl Machine {
    /// This machine, as the process runs now.
    pub fn this() -> Machine {
        Machine {
            processor: processor_model(),
            features: cpu_features(),
            threads: threads(),
            os: std::env::consts::OS.to_string(),
            arch: std::env::consts::ARCH.to_string(),
        }
    }

    /// How `self` differs from `other` (empty when the same machine).
    pub fn differences(&self, other: &Machine) -> Vec<String> {
        let mut out = Vec::new();
        if (&self.os, &self.arch, &self.processor) != (&other.os, &other.arch, &other.processor) {
            let (a, b) = (self, other);
            out.push(format!("CPU {} ({} {}), here {} ({} {})", a.processor, a.os, a.arch, b.processor, b.os, b.arch));
        }
        if self.features != other.features {
            out.push(format!("features {}, here {}", self.features.join(" "), other.features.join(" ")));
        }
        if self.threads != other.threads {
            out.push(format!("{} threads, here {}", self.threads, other.threads));
        }
        out
    }
}

impl std::fmt::Display for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}, {} {}, {} threads", self.processor, self.os, self.arch, self.threads)
    }
}

/// Threads the model runs with: the rayon pool's size, as rayon sizes it.
fn threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
}

fn processor_model() -> String {
    let from_proc = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|text| {
        text.lines()
            .find(|l| l.starts_with("model name") || l.starts_with("Model"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    });
    let from_sysctl = || {
        std::process::Command::new("sysctl")
            .args(["-n", "machdep.cpu.brand_string"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
    };
    from_proc.or_else(from_sysctl).unwrap_or_else(|| "unknown CPU".to_string())
}

fn cpu_features() -> Vec<String> {
    #[allow(unused_mut)]
    let mut out: Vec<&str> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        let detected = [
            ("avx2", is_x86_feature_detected!("avx2")),
            ("fma", is_x86_feature_detected!("fma")),
            ("f16c", is_x86_feature_detected!("f16c")),
            ("avx512f", is_x86_feature_detected!("avx512f")),
            ("avx512bw", is_x86_feature_detected!("avx512bw")),
            ("avx512vl", is_x86_feature_detected!("avx512vl")),
            ("avx512vnni", is_x86_feature_detected!("avx512vnni")),
            ("avx512bf16", is_x86_feature_detected!("avx512bf16")),
        ];
        out.extend(detected.iter().filter(|(_, on)| *on).map(|(name, _)| *name));
    }
    #[cfg(target_arch = "aarch64")]
    {
        let detected = [
            ("neon", std::arch::is_aarch64_feature_detected!("neon")),
            ("dotprod", std::arch::is_aarch64_feature_detected!("dotprod")),
            ("i8mm", std::arch::is_aarch64_feature_detected!("i8mm")),
            ("bf16", std::arch::is_aarch64_feature_detected!("bf16")),
        ];
        out.extend(detected.iter().filter(|(_, on)| *on).map(|(name, _)| *name));
    }
    out.into_iter().map(String::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_machine_is_itself_and_differences_are_named() {
        let here = Machine::this();
        assert!(here.threads >= 1);
        assert!(here.differences(&Machine::this()).is_empty());
        let other = Machine { threads: here.threads + 1, processor: "Other CPU".into(), ..here.clone() };
        let d = other.differences(&here);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d[0].starts_with("CPU Other CPU"), "{d:?}");
        assert_eq!(d[1], format!("{} threads, here {}", here.threads + 1, here.threads));
    }
}

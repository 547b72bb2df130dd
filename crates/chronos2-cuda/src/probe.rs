//! Whether the CUDA libraries and a GPU are there, without panicking when they are not.
//!
//! cudarc loads libcuda, libnvrtc and libcublas at run time (`dynamic-loading`) and panics on
//! its first call into a library it cannot find, so every entry point of this crate asks
//! [`libraries_present`] first.

use std::fmt;

/// The NVIDIA GPU the backend runs on (device 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuInfo {
    pub name: String,
    /// Total device memory in bytes.
    pub total_memory: usize,
    /// Free device memory in bytes when probed.
    pub free_memory: usize,
    /// Compute capability `(major, minor)`, e.g. `(9, 0)` for an H100 / H200.
    pub compute_capability: (i32, i32),
    /// CUDA driver API version as `(major, minor)`, e.g. `(13, 0)`.
    pub driver_version: (i32, i32),
}

impl fmt::Display for GpuInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let gib = |b: usize| b as f64 / (1u64 << 30) as f64;
        write!(
            f,
            "{}, {:.1} GiB ({:.1} GiB free), compute capability {}.{}, driver CUDA {}.{}",
            self.name,
            gib(self.total_memory),
            gib(self.free_memory),
            self.compute_capability.0,
            self.compute_capability.1,
            self.driver_version.0,
            self.driver_version.1
        )
    }
}

/// The libraries the backend needs, by what cudarc looks for, and whether each loads.
pub fn libraries() -> [(&'static str, bool); 3] {
    // SAFETY: each `is_culib_present` only tries `dlopen` of the library's usual names
    // (libloading) and drops the handles; it calls nothing in them.
    unsafe {
        [
            ("libcuda (NVIDIA driver)", cudarc::driver::sys::is_culib_present()),
            ("libnvrtc (CUDA runtime compiler)", cudarc::nvrtc::sys::is_culib_present()),
            ("libcublas", cudarc::cublas::sys::is_culib_present()),
        ]
    }
}

/// `Ok` when every library of [`libraries`] loads, else which ones do not.
pub fn libraries_present() -> Result<(), String> {
    let missing: Vec<&str> = libraries().iter().filter(|(_, present)| !present).map(|(name, _)| *name).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("not usable: {} not found (no NVIDIA GPU driver / CUDA 13 libraries here)", missing.join(", ")))
    }
}

/// Device 0's description, after checking the libraries.
pub fn gpu_info() -> Result<GpuInfo, String> {
    libraries_present()?;
    let ctx = cudarc::driver::CudaContext::new(0).map_err(|e| format!("not usable: no CUDA device 0: {e}"))?;
    let e = |what: &str, err: cudarc::driver::DriverError| format!("not usable: {what}: {err}");
    let (free_memory, total_memory) = ctx.mem_get_info().map_err(|err| e("memory info", err))?;
    let mut version = 0;
    // SAFETY: `cuDriverGetVersion` writes one int through the valid pointer; libcuda is loaded
    // (checked above, and the context exists).
    let status = unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut version) };
    if status != cudarc::driver::sys::cudaError_enum::CUDA_SUCCESS {
        return Err(format!("not usable: cuDriverGetVersion: {status:?}"));
    }
    Ok(GpuInfo {
        name: ctx.name().map_err(|err| e("device name", err))?,
        total_memory,
        free_memory,
        compute_capability: ctx.compute_capability().map_err(|err| e("compute capability", err))?,
        driver_version: (version / 1000, (version % 1000) / 10),
    })
}

/// Whether the backend can run here: `Ok` holds the GPU's description ([`GpuInfo`]), `Err`
/// starts with "not usable:" and says what is missing. Never panics.
pub fn check_available() -> Result<String, String> {
    gpu_info().map(|info| info.to_string())
}

//! Build entry of the CUDA backend: cudarc loads the CUDA libraries at run time and NVRTC compiles
//! the kernels on first use, so it builds on any machine with no preparation (and in the default
//! target directory: it adds only pure-Rust crates). Its GPU tests and the facade / CLI tests on
//! it run only where an NVIDIA driver is found (`scripts/gpu-run.sh` on a GPU machine).

use super::{Entry, Setup};

pub const ENTRY: Entry = Entry { name: "cuda", package: "chronos2-cuda", prepare, found, runs, own_target: false };

fn prepare() -> anyhow::Result<Setup> {
    Ok(found())
}

fn found() -> Setup {
    Setup::Builds { config: None }
}

/// Whether libcuda, NVRTC and cuBLAS load here (no GPU: the tests on cuda are skipped).
fn runs() -> Result<(), String> {
    chronos2_cuda::libraries_present()
}

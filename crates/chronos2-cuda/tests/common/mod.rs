//! Shared by the GPU tests: the GPU ops, or a panic that says why not.
//!
//! Every GPU test is `#[ignore = "needs an NVIDIA GPU ..."]`, so a plain `cargo test` (CI, any
//! machine without a GPU) lists it as ignored, never as passed. On a GPU machine run them with
//! `--include-ignored` (the device script does); there a missing GPU is a failure.

use chronos2_cuda::CudaOps;

pub fn gpu() -> CudaOps {
    if let Err(e) = chronos2_cuda::libraries_present() {
        panic!("GPU test run without a usable GPU: {e}");
    }
    CudaOps::new().unwrap_or_else(|e| panic!("{e}"))
}

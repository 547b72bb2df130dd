//! Runs everywhere (no GPU needed): the backend reports whether it can run, and never panics
//! where there is no NVIDIA driver.

#[test]
fn check_available_reports_the_gpu_or_why_not_without_panicking() {
    let libraries = chronos2_cuda::libraries();
    match chronos2_cuda::check_available() {
        Ok(gpu) => {
            assert!(libraries.iter().all(|(_, present)| *present));
            assert!(gpu.contains("compute capability") && gpu.contains("driver CUDA"), "{gpu}");
            eprintln!("GPU: {gpu}");
        }
        Err(e) => {
            assert!(e.starts_with("not usable: "), "{e}");
            if !libraries[0].1 {
                assert!(e.contains("libcuda"), "{e}");
                eprintln!("SKIPPED: no NVIDIA GPU (libcuda not found): {e}");
            }
            // Loading a model says the same instead of panicking.
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/models/tiny");
            let load = chronos2_cuda::load(&dir).err().expect("no GPU, no model").to_string();
            assert!(load.contains("not usable: "), "{load}");
        }
    }
}

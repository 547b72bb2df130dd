//! The reference fixtures on the GPU in fp32: layer by layer (`model_*` cases) and end to end
//! through the pipeline (`predict_*`, `embed_*`), at the CPU backend's tolerances.
//!
//! Set `CHRONOS2_REPO_ROOT` to run them outside the checkout they were built in (the device
//! script does).

mod common;

use chronos2_test_fixtures as fixtures;

#[test]
#[ignore = "needs an NVIDIA GPU (run with --include-ignored on the device)"]
fn model_cases_match_reference_layer_by_layer() {
    // The CPU and MLX backends' tolerance (random fixture models with sharp attention reach 2.4e-5).
    let checked = fixtures::check_model_cases(common::gpu(), 3e-5).unwrap_or_else(|e| panic!("{e}"));
    assert!(checked > 0);
    eprintln!("cuda: {checked} model cases match the reference");
}

#[test]
#[ignore = "needs an NVIDIA GPU (run with --include-ignored on the device)"]
fn predict_cases_match_reference() {
    common::gpu();
    let checked = fixtures::check_predict_cases(&chronos2_cuda::load).unwrap_or_else(|e| panic!("{e}"));
    assert!(checked > 0);
    eprintln!("cuda: {checked} predict cases match the reference");
}

#[test]
#[ignore = "needs an NVIDIA GPU (run with --include-ignored on the device)"]
fn embed_cases_match_reference() {
    common::gpu();
    let checked = fixtures::check_embed_cases(&chronos2_cuda::load).unwrap_or_else(|e| panic!("{e}"));
    assert!(checked > 0);
    eprintln!("cuda: {checked} embed cases match the reference");
}

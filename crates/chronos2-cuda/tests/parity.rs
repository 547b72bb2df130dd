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

/// The full-size architecture (random weights, 12 layers of 768) at 4 x 512: fp32 on the GPU
/// within 1e-5 (relative to the largest value) of the CPU backend, and how far bf16 moves.
#[test]
#[ignore = "needs an NVIDIA GPU (run with --include-ignored on the device)"]
fn full_size_random_model_matches_the_cpu_backend() {
    use chronos2_core::{Forecaster, ModelBatch, Precision};
    common::gpu();
    let dir = std::env::temp_dir().join(format!("chronos2-cuda-full-size-{}", std::process::id()));
    chronos2_bench::write_random_model(&dir, &chronos2_bench::full_size_config_json(), 42).unwrap();
    let (rows, context) = (4, 512);
    let batch = ModelBatch::independent(chronos2_bench::random_context(rows, context, 7), rows, context, 2);
    let cpu = chronos2_candle_cpu::load(&dir).unwrap().forecast(&batch).unwrap().values;
    let gpu = chronos2_cuda::load(&dir).unwrap().forecast(&batch).unwrap().values;
    let mut bf16 = chronos2_cuda::load_model_for(&dir, Precision::Bf16).unwrap();
    bf16.set_precision(Precision::Bf16).unwrap();
    let bf16 = bf16.forecast(&batch).unwrap().values;
    std::fs::remove_dir_all(&dir).unwrap();
    let scale = cpu.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = |a: &[f32]| a.iter().zip(&cpu).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale;
    let (fp32_rel, bf16_rel) = (diff(&gpu), diff(&bf16));
    eprintln!("full-size 4x512: cuda fp32 vs cpu max rel diff {fp32_rel:.3e}; cuda bf16 vs cpu fp32 {bf16_rel:.3e}");
    assert!(gpu.iter().chain(&bf16).all(|v| v.is_finite()));
    assert!(fp32_rel <= 1e-5, "cuda fp32 is {fp32_rel:.3e} (relative) from the CPU backend");
}

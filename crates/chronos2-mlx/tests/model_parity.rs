//! Layer-by-layer parity of the MLX backend with the reference fixtures
//! (`tests/fixtures/cases/model_*.json`, see `scripts/README.md`).
// Same tolerance as the candle CPU backend: the real model (chronos2-mini) agrees to ~6e-7
// relative at every stage; the random fixture models with sharp (unscaled) attention reach 2.4e-5.
#![cfg(mlx_backend)]

use chronos2_mlx::MlxOps;
use chronos2_test_fixtures as fixtures;

#[test]
fn model_cases_match_reference_layer_by_layer() {
    let checked = fixtures::check_model_cases(MlxOps::new(), 3e-5).unwrap_or_else(|e| panic!("{e}"));
    assert!(checked > 0);
}

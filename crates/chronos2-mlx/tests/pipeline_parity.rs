//! End-to-end parity of the pipeline (`predict`, `embed`) on the MLX backend with the reference
//! fixtures (`tests/fixtures/cases/{predict,embed}_*.json`, see `scripts/README.md`).
//!
//! Same checks and tolerances as the candle CPU backend (`chronos2_test_fixtures`); only the
//! model loader differs.
#![cfg(mlx_backend)]

use chronos2_test_fixtures as fixtures;

#[test]
fn predict_cases_match_reference() {
    let checked = fixtures::check_predict_cases(&chronos2_mlx::load).unwrap_or_else(|e| panic!("{e}"));
    assert!(checked > 0);
}

#[test]
fn embed_cases_match_reference() {
    fixtures::check_embed_cases(&chronos2_mlx::load).unwrap_or_else(|e| panic!("{e}"));
}

//! Layer-by-layer parity of the candle CPU backend with the reference fixtures.

use chronos2_candle_cpu::CandleCpuOps;
use chronos2_test_fixtures as fixtures;

#[test]
fn model_cases_match_reference_layer_by_layer() {
    let checked = fixtures::check_model_cases(CandleCpuOps::new(), 3e-5).unwrap_or_else(|e| panic!("{e}"));
    assert!(checked > 0);
}

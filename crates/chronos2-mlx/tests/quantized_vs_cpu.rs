//! The same quantized model gives the same forecasts on MLX and on the candle CPU backend
//! (both use `chronos2_core::quant`, MLX's affine scheme, for the weights).
#![cfg(mlx_backend)]

use std::path::Path;

use chronos2_test_fixtures::{assert_close, cases, model_batch, model_dir};

#[test]
fn quantized_forecasts_match_between_mlx_and_cpu() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mini = repo.join("models/chronos2-mini");
    for bits in [8, 4] {
        let mut mlx = chronos2_mlx::load(&mini).unwrap();
        let mut cpu = chronos2_candle_cpu::load(&mini).unwrap();
        let precision = chronos2_core::Precision::weight_only(bits).unwrap();
        mlx.set_precision(precision).unwrap();
        cpu.set_precision(precision).unwrap();
        assert_eq!(mlx.footprint().quantized_params, cpu.footprint().quantized_params);
        for (name, case) in cases("model").into_iter().filter(|(_, c)| model_dir(c).ends_with("chronos2-mini")) {
            let batch = model_batch(&case);
            let a = mlx.forecast(&batch).unwrap();
            let b = cpu.forecast(&batch).unwrap();
            assert_close(&format!("{name} int{bits}"), &a.values, &b.values, 2e-5, 0.0).unwrap();
        }
    }
}

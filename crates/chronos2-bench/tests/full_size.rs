//! The full-size (768/12/12/3072) architecture loads and runs on the CPU backend.

use chronos2_bench::{full_size_config_json, random_context, write_random_model};
use chronos2_core::ModelBatch;

#[test]
fn full_size_random_model_forecasts_on_cpu() {
    let dir = std::env::temp_dir().join(format!("chronos2-full-size-test-{}", std::process::id()));
    write_random_model(&dir, &full_size_config_json(), 1).unwrap();
    let model = chronos2_candle_cpu::load(&dir).unwrap();
    assert_eq!(model.config().d_model, 768);
    let (rows, len) = (2, 100);
    let mut batch = ModelBatch::independent(random_context(rows, len, 3), rows, len, 2);
    batch.group_ids = vec![0, 0];
    let forecast = model.forecast(&batch).unwrap();
    assert_eq!((forecast.rows, forecast.num_quantiles, forecast.horizon), (2, 21, 32));
    assert!(forecast.values.iter().all(|v| v.is_finite()));
    std::fs::remove_dir_all(&dir).unwrap();
}

//! Weight quantization and bf16 on the CPU backend: footprint from the actual buffers, and
//! end-to-end deviation from fp32 on the bundled trained model over the real series in `eval/`.

use std::path::PathBuf;

use chronos2_core::pipeline::{predict, PredictOptions, SeriesInput};
use chronos2_core::{Error, Forecaster, Precision};
use chronos2_test_fixtures::real_series;

fn repo() -> PathBuf {
    chronos2_test_fixtures::repo_root()
}

fn mini(precision: Precision) -> Box<dyn Forecaster> {
    let mut model = chronos2_candle_cpu::load(&repo().join("models/chronos2-mini")).unwrap();
    model.set_precision(precision).unwrap();
    model
}

#[test]
fn footprint_is_measured_and_shrinks_quantized_layers() {
    let fp32 = mini(Precision::Fp32).footprint();
    // The model card's 7,315,872 parameters less the PAD row of `shared.weight`, which the
    // model never reads and we do not keep.
    assert_eq!(fp32.total_params, 7_315_872 - 256);
    // Float linears are packed in strips of 32 output rows; a layer whose output width is not a
    // multiple of 32 holds a zero-padded last strip (here 81,920 bytes, 0.3%).
    let unpadded = 4 * fp32.total_params;
    assert!(fp32.bytes >= unpadded && fp32.bytes <= unpadded + unpadded / 200, "{fp32:?}");
    assert_eq!(fp32.quantized_params, 0);
    for (bits, max_ratio) in [(8, 0.30), (4, 0.17)] {
        let q = mini(Precision::weight_only(bits).unwrap()).footprint();
        assert_eq!(q.total_params, fp32.total_params);
        // Everything but the 48-input patch-embedding layers (and norms / REG) is quantized.
        assert!(q.quantized_params > 7_000_000, "{q:?}");
        let ratio = q.quantized_layer_bytes as f64 / q.quantized_layer_fp32_bytes() as f64;
        assert!(ratio <= max_ratio, "int{bits}: quantized layers at {ratio:.3} of fp32");
        assert!(q.bytes < fp32.bytes);
    }
    // bf16: every linear weight in half the bytes (biases, norms and REG stay f32); nothing
    // counts as quantized.
    let bf16 = mini(Precision::Bf16).footprint();
    assert_eq!(bf16.total_params, fp32.total_params);
    assert_eq!(bf16.quantized_params, 0);
    let ratio = bf16.bytes as f64 / fp32.bytes as f64;
    assert!((0.5..0.52).contains(&ratio), "bf16 model at {ratio:.3} of fp32 bytes");
    // w8a8 holds the int8 weights of the quantized layers but the output head, which stays fp32.
    let w8a8 = mini(Precision::W8a8).footprint();
    let int8 = mini(Precision::Int8).footprint();
    assert!(w8a8.quantized_params > 6_000_000 && w8a8.quantized_params < int8.quantized_params, "{w8a8:?}");
    assert!(w8a8.quantized_layer_bytes as f64 <= 0.30 * w8a8.quantized_layer_fp32_bytes() as f64, "{w8a8:?}");
}

#[test]
fn precision_is_set_once() {
    let mut model = chronos2_candle_cpu::load(&repo().join("models/chronos2-mini")).unwrap();
    model.set_precision(Precision::Int8).unwrap();
    assert!(matches!(model.set_precision(Precision::Int4), Err(Error::PrecisionAlreadySet { .. })));
    assert!(matches!(model.set_precision(Precision::W8a8), Err(Error::PrecisionAlreadySet { .. })));
}

#[test]
fn quantized_forecasts_stay_close_to_fp32_on_real_series() {
    let items = real_series();
    let mut options = PredictOptions::new(24);
    options.quantile_levels = vec![0.1, 0.5, 0.9];
    let run = |model: &dyn Forecaster| predict(model, &items, &options, &mut |_, _| {}).unwrap();
    let reference = run(mini(Precision::Fp32).as_ref());
    // Deviation = sum over series and steps of |median_q - median_fp32| divided by the sum of
    // the fp32 10-90 spreads (the per-step mean of the ratio is reported by
    // `cargo xtask accuracy`; it weighs steps with tiny spreads heavily).
    // bf16 within the 1% of the spread.
    let modes = [(Precision::Int8, 0.02), (Precision::Int4, 0.10), (Precision::Bf16, 0.01), (Precision::W8a8, 0.01)];
    for (precision, max_share) in modes {
        let quantized = run(mini(precision).as_ref());
        let (mut deviation, mut spread) = (0f64, 0f64);
        for (r, q) in reference.iter().zip(&quantized) {
            for step in 0..24 {
                let at = |f: &chronos2_core::pipeline::ItemForecast, level: usize| f.quantiles[step * 3 + level] as f64;
                deviation += (at(q, 1) - at(r, 1)).abs();
                spread += at(r, 2) - at(r, 0);
            }
        }
        let share = deviation / spread;
        assert!(share < max_share, "{precision}: median moves {:.2}% of the fp32 10-90 spread", 100.0 * share);
        assert!(share > 0.0, "{precision}: changed nothing — not applied?");
        eprintln!("{precision}: median moves {:.3}% of the fp32 10-90 spread", 100.0 * share);
    }
}

#[test]
fn bf16_built_while_loading_equals_bf16_converted_after_loading() {
    let dir = repo().join("models/chronos2-mini");
    let mut built = chronos2_candle_cpu::load_model_for(&dir, Precision::Bf16).unwrap();
    // Nothing is left to convert, and it is no error to ask.
    built.set_precision(Precision::Bf16).unwrap();
    let converted = mini(Precision::Bf16);
    let (a, b) = (built.footprint(), converted.footprint());
    assert_eq!((a.bytes, a.total_params, a.quantized_params), (b.bytes, b.total_params, b.quantized_params));
    let items: Vec<SeriesInput> = real_series().into_iter().take(4).collect();
    let options = PredictOptions::new(12);
    let run = |model: &dyn Forecaster| predict(model, &items, &options, &mut |_, _| {}).unwrap();
    let (x, y) = (run(&built), run(converted.as_ref()));
    for (p, q) in x.iter().zip(&y) {
        assert_eq!(p.quantiles, q.quantiles);
    }
    // Other precisions load in fp32, as `load_model`.
    let fp32 = chronos2_candle_cpu::load_model_for(&dir, Precision::W8a8).unwrap();
    assert_eq!(fp32.footprint().bytes, mini(Precision::Fp32).footprint().bytes);
}

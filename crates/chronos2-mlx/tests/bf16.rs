//! bf16 on MLX: linear weights stored as bf16 arrays (half the bytes), computed in fp32 with f32
//! activations; norms, softmax, the residual stream and instance normalisation stay f32.
//!
//! Its numbers are those of fp32 on the weights rounded to bf16 (8 significant bits, relative
//! error up to 2^-9), and the candle CPU backend's bf16 numbers: its distance to fp32 is the
//! rounding of the weights, not MLX's arithmetic.
#![cfg(mlx_backend)]

use std::path::{Path, PathBuf};

use chronos2_core::pipeline::{predict, ItemForecast, PredictOptions};
use chronos2_core::train::export::{read_safetensors, write_safetensors};
use chronos2_core::{Forecaster, Precision};
use chronos2_test_fixtures::{assert_close, cases, model_batch, model_dir, real_series, repo_root};

fn mlx(dir: &Path, precision: Precision) -> Box<dyn Forecaster> {
    let mut model = chronos2_mlx::load(dir).unwrap();
    model.set_precision(precision).unwrap();
    model
}

#[test]
fn bf16_halves_the_linear_weights() {
    let mini = repo_root().join("models/chronos2-mini");
    let fp32 = mlx(&mini, Precision::Fp32).footprint();
    let bf16 = mlx(&mini, Precision::Bf16).footprint();
    assert_eq!(bf16.total_params, fp32.total_params);
    assert_eq!(bf16.quantized_params, 0);
    // biases, norms and the REG embedding stay f32 (measured: 0.5006)
    let ratio = bf16.bytes as f64 / fp32.bytes as f64;
    assert!((0.5..0.51).contains(&ratio), "bf16 model at {ratio:.4} of fp32 bytes");
}

/// The fixture's model with its linear weights rounded to bf16 (round to nearest even), as an
/// fp32 model directory.
fn rounded_to_bf16(dir: &Path, name: &str) -> PathBuf {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chronos2-mlx-bf16").join(name);
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    std::fs::copy(dir.join("config.json"), out.join("config.json")).unwrap();
    let mut tensors = read_safetensors(&dir.join("model.safetensors")).unwrap();
    let round = |v: f32| {
        let bits = v.to_bits();
        f32::from_bits(((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16)
    };
    for t in tensors.iter_mut().filter(|t| t.shape.len() == 2 && t.name != "shared.weight") {
        t.data.iter_mut().for_each(|v| *v = round(*v));
    }
    write_safetensors(&out.join("model.safetensors"), &tensors).unwrap();
    out
}

/// On every model fixture case, MLX bf16 forecasts what MLX fp32 forecasts with the linear
/// weights rounded to bf16 (measured on the small-model case: bit for bit): bf16 is the rounding of the weights and
/// nothing else (activations, norms, softmax, residual stream stay f32).
#[test]
fn bf16_is_fp32_on_weights_rounded_to_bf16() {
    for (name, case) in cases("model") {
        let dir = model_dir(&case);
        let batch = model_batch(&case);
        let ours = mlx(&dir, Precision::Bf16).forecast(&batch).unwrap().values;
        let rounded = mlx(&rounded_to_bf16(&dir, &name), Precision::Fp32).forecast(&batch).unwrap().values;
        assert_close(&format!("{name} bf16 vs fp32 on rounded weights"), &ours, &rounded, 1e-6, 0.0).unwrap();
        let full = mlx(&dir, Precision::Fp32).forecast(&batch).unwrap().values;
        assert!(ours != full, "{name}: bf16 changed nothing: not applied?");
    }
}

/// On the trained chronos2-mini: MLX bf16 within 2e-5 (of the largest value) of the CPU
/// backend's fp32 on the weights rounded to bf16 (what the CPU backend's bf16 computes where it
/// widens the weights; on CPUs with AVX512-BF16 it also rounds the activations, so it is not the
/// reference here; measured: 1e-7; the tolerance of the quantized MLX-vs-CPU test), and within
/// 1e-3 of fp32 (measured: between 2e-4 and 3e-4, the rounding of the weights). (The random
/// `small` fixture model is not used here: with bf16-rounded weights it is ill-conditioned on
/// `model_small_one_group`, where even the two backends' fp32 forecasts of the rounded weights
/// differ by 2.4e-4 of the largest value.)
#[test]
fn bf16_gives_the_cpu_backends_numbers_on_rounded_weights_and_stays_close_to_fp32() {
    let (name, case) = cases("model").into_iter().find(|(_, c)| model_dir(c).ends_with("chronos2-mini")).unwrap();
    let dir = model_dir(&case);
    let batch = model_batch(&case);
    let cpu = chronos2_candle_cpu::load(&rounded_to_bf16(&dir, &name)).unwrap();
    let ours = mlx(&dir, Precision::Bf16).forecast(&batch).unwrap().values;
    let theirs = cpu.forecast(&batch).unwrap().values;
    assert_close(&format!("{name} bf16 mlx vs cpu fp32 on rounded weights"), &ours, &theirs, 2e-5, 0.0).unwrap();
    let full = mlx(&dir, Precision::Fp32).forecast(&batch).unwrap().values;
    assert_close(&format!("{name} bf16 vs fp32"), &ours, &full, 1e-3, 0.0).unwrap();
}

/// The accuracy bar for bf16, as on the CPU backend: on the 23 real series the medians
/// move less than 1% of the fp32 10-90 spread (measured: 0.13%).
#[test]
fn bf16_medians_stay_within_one_percent_of_the_fp32_spread_on_real_series() {
    let mini = repo_root().join("models/chronos2-mini");
    let items = real_series();
    let mut options = PredictOptions::new(24);
    options.quantile_levels = vec![0.1, 0.5, 0.9];
    let run = |p: Precision| predict(mlx(&mini, p).as_ref(), &items, &options, &mut |_, _| {}).unwrap();
    let (reference, bf16) = (run(Precision::Fp32), run(Precision::Bf16));
    let (mut deviation, mut spread) = (0f64, 0f64);
    for (r, b) in reference.iter().zip(&bf16) {
        for step in 0..24 {
            let at = |f: &ItemForecast, level: usize| f.quantiles[step * 3 + level] as f64;
            deviation += (at(b, 1) - at(r, 1)).abs();
            spread += at(r, 2) - at(r, 0);
        }
    }
    let share = deviation / spread;
    assert!(share > 0.0, "bf16 changed nothing: not applied?");
    assert!(share < 0.01, "bf16 medians move {:.3}% of the fp32 10-90 spread", 100.0 * share);
}

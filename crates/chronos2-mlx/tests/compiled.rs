//! Compiled forwards (`MlxOptions { compile: true }`, `mlx_rs::transforms::compile` of the model
//! graph): the same outputs as the uncompiled graph on every model fixture, the same parity with
//! the reference, one trace per graph structure (input shapes + group layout), quantized models.
#![cfg(mlx_backend)]

use std::path::Path;

use chronos2_core::{Forecaster, ModelBatch};
use chronos2_mlx::{load_model_with, MlxModel, MlxOptions};
use chronos2_test_fixtures::{self as fixtures, assert_close, flat, model_batch, model_dir};

const COMPILED: MlxOptions = MlxOptions { compile: true };

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max)
}

fn max_abs(a: &[f32]) -> f32 {
    a.iter().fold(0f32, |m, v| m.max(v.abs()))
}

/// Compiled vs uncompiled: fused elementwise kernels may round differently from the unfused
/// ones, so allow float noise (relative to the output's scale).
const COMPILED_RTOL: f32 = 1e-5;

fn agree(what: &str, compiled: &[f32], plain: &[f32]) -> f32 {
    let d = max_diff(compiled, plain);
    assert!(
        d <= COMPILED_RTOL * max_abs(plain) + 1e-6,
        "{what}: compiled vs uncompiled max |diff| {d} (scale {})",
        max_abs(plain)
    );
    d
}

#[test]
fn model_and_options_are_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<MlxModel>();
    check::<MlxOptions>();
}

#[test]
fn compiled_matches_uncompiled_on_every_model_case() {
    for (name, case) in fixtures::cases("model") {
        let dir = model_dir(&case);
        let plain = chronos2_mlx::load_model(&dir).unwrap();
        let compiled = load_model_with(&dir, COMPILED).unwrap();
        assert!(compiled.options().compile && !plain.options().compile);
        let batch = model_batch(&case);
        let f_plain = plain.forecast(&batch).unwrap();
        let f_comp = compiled.forecast(&batch).unwrap();
        assert_eq!(compiled.compile_traces(), 1, "{name}");
        assert_eq!(
            (f_comp.rows, f_comp.num_quantiles, f_comp.horizon),
            (f_plain.rows, f_plain.num_quantiles, f_plain.horizon)
        );
        let df = agree(&format!("{name} forecast"), &f_comp.values, &f_plain.values);
        let e_plain = plain.encode(&batch).unwrap();
        let e_comp = compiled.encode(&batch).unwrap();
        let de = agree(&format!("{name} encode"), &e_comp.hidden, &e_plain.hidden);
        assert_eq!((e_comp.rows, e_comp.seq_len, e_comp.d_model), (e_plain.rows, e_plain.seq_len, e_plain.d_model));
        assert_eq!((&e_comp.loc, &e_comp.scale), (&e_plain.loc, &e_plain.scale));
        // forecast and encode share one compiled graph; repeated calls hit the cache and give
        // bit-identical results.
        for _ in 0..3 {
            assert_eq!(compiled.forecast(&batch).unwrap().values, f_comp.values, "{name}: repeated compiled forecast");
        }
        assert_eq!(compiled.encode(&batch).unwrap().hidden, e_comp.hidden, "{name}: repeated compiled encode");
        assert_eq!((compiled.compile_traces(), compiled.compiled_graphs()), (1, 1), "{name}: one trace");
        println!("{name:40} compiled vs uncompiled: forecast {df:.1e}, hidden {de:.1e}");
    }
}

/// Same tolerance as `model_parity.rs` (the uncompiled backend): `rtol` of the stage's scale, or
/// the reference's own eager-vs-SDPA noise when larger.
#[test]
fn compiled_model_cases_match_reference() {
    let rtol = 3e-5;
    let mut checked = 0;
    for (name, case) in fixtures::cases("model") {
        let model = load_model_with(&model_dir(&case), COMPILED).unwrap();
        let batch = model_batch(&case);
        let expected = &case["expected"];
        let noise = |stage: &str| 2.0 * case["eager_vs_sdpa_max_abs_diff"][stage].as_f64().unwrap_or(0.0) as f32;
        let forecast = model.forecast(&batch).unwrap();
        assert_close(
            &format!("{name}: quantile_preds"),
            &forecast.values,
            &flat(&expected["quantile_preds"]),
            rtol,
            noise("quantile_preds"),
        )
        .unwrap();
        let encoding = model.encode(&batch).unwrap();
        assert_close(
            &format!("{name}: last_hidden_state"),
            &encoding.hidden,
            &flat(&expected["last_hidden_state"]),
            rtol,
            noise("last_hidden_state"),
        )
        .unwrap();
        assert_close(&format!("{name}: loc"), &encoding.loc, &flat(&expected["loc"]), rtol, 0.0).unwrap();
        checked += 1;
    }
    assert!(checked > 0);
}

fn batch(rows: usize, context_len: usize, group_ids: Vec<i64>, horizon_patches: usize, seed: usize) -> ModelBatch {
    let context =
        (0..rows * context_len).map(|i| (((i + seed * 31) % 89) as f32 * 0.13).sin() * 5.0 + (i % 7) as f32).collect();
    ModelBatch { group_ids, ..ModelBatch::independent(context, rows, context_len, horizon_patches) }
}

/// One compiled graph per structure: new shapes and new group layouts (also the same shapes
/// with another gather order) trace anew; new values with a known structure do not.
#[test]
fn cache_is_keyed_by_shapes_and_group_layout() {
    let dir = fixtures::repo_root().join("tests/fixtures/models/tiny");
    let plain = chronos2_mlx::load_model(&dir).unwrap();
    let compiled = load_model_with(&dir, COMPILED).unwrap();
    let cases: Vec<(ModelBatch, u64)> = vec![
        (batch(4, 64, vec![0, 1, 2, 3], 1, 0), 1),
        (batch(4, 64, vec![0, 1, 2, 3], 1, 1), 1), // new values, same structure
        (batch(4, 64, vec![9, 8, 7, 6], 1, 2), 1), // other ids, same layout
        (batch(4, 64, vec![0, 0, 1, 1], 1, 3), 2), // groups of two
        (batch(4, 64, vec![0, 1, 0, 1], 1, 4), 3), // same runs, gathered order
        (batch(4, 64, vec![1, 0, 1, 0], 1, 5), 3), // same layout as the previous one
        (batch(4, 64, vec![0, 0, 0, 1], 1, 6), 4), // runs of sizes 3 and 1
        (batch(4, 80, vec![0, 1, 2, 3], 1, 7), 5), // longer context
        (batch(4, 64, vec![0, 1, 2, 3], 2, 8), 6), // longer horizon
        (batch(2, 64, vec![0, 1], 1, 9), 7),       // fewer rows
        (batch(4, 64, vec![0, 1, 2, 3], 1, 10), 7), // back to the first structure
        (batch(4, 64, vec![0, 1, 0, 1], 1, 11), 7),
    ];
    for (i, (b, traces)) in cases.iter().enumerate() {
        let a = compiled.forecast(b).unwrap();
        let p = plain.forecast(b).unwrap();
        agree(&format!("batch {i}"), &a.values, &p.values);
        agree(&format!("batch {i} encode"), &compiled.encode(b).unwrap().hidden, &plain.encode(b).unwrap().hidden);
        assert_eq!(compiled.compile_traces(), *traces, "batch {i}: traces");
    }
    assert_eq!(compiled.compiled_graphs(), 7);

    // A context with missing values: some group-attention queries see no key (visibility input).
    let mut hidden = batch(3, 48, vec![0, 0, 1], 1, 12);
    hidden.context[..32].fill(f32::NAN);
    hidden.context[48..80].fill(f32::NAN);
    hidden.context[96..].fill(f32::NAN);
    agree("hidden keys", &compiled.forecast(&hidden).unwrap().values, &plain.forecast(&hidden).unwrap().values);
    assert_eq!(compiled.compile_traces(), 8);
}

#[test]
fn compile_can_be_turned_off_and_on() {
    let dir = fixtures::repo_root().join("tests/fixtures/models/tiny");
    let mut model = chronos2_mlx::load_model(&dir).unwrap();
    let b = batch(3, 40, vec![0, 0, 1], 1, 0);
    let plain = model.forecast(&b).unwrap();
    assert_eq!(model.compile_traces(), 0);
    model.set_compile(true);
    agree("on", &model.forecast(&b).unwrap().values, &plain.values);
    assert_eq!(model.compiled_graphs(), 1);
    model.set_compile(false);
    assert_eq!(model.compiled_graphs(), 0);
    assert_eq!(model.forecast(&b).unwrap().values, plain.values);
}

#[test]
fn compiled_forecasts_from_several_threads() {
    let dir = fixtures::repo_root().join("tests/fixtures/models/tiny");
    let model = load_model_with(&dir, COMPILED).unwrap();
    let b = batch(4, 64, vec![0, 1, 0, 1], 1, 0);
    let want = model.forecast(&b).unwrap().values;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|_| s.spawn(|| (0..3).map(|_| model.forecast(&b).unwrap().values).collect::<Vec<_>>()))
            .collect();
        for h in handles {
            for got in h.join().unwrap() {
                assert_eq!(got, want);
            }
        }
    });
    // One compiled graph per (thread, structure): MLX's compile cache is per thread.
    assert_eq!(model.compile_traces(), 4);
}

#[test]
fn quantized_compiled_matches_quantized_uncompiled() {
    let mini = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/chronos2-mini");
    let cases: Vec<_> =
        fixtures::cases("model").into_iter().filter(|(_, c)| model_dir(c).ends_with("chronos2-mini")).collect();
    assert!(!cases.is_empty());
    for bits in [8, 4] {
        let mut plain = chronos2_mlx::load(&mini).unwrap();
        let mut compiled = chronos2_mlx::load_with(&mini, COMPILED).unwrap();
        // A compiled graph of the float model exists before quantizing: quantize drops it.
        let (_, case) = &cases[0];
        let float = compiled.forecast(&model_batch(case)).unwrap();
        let precision = chronos2_core::Precision::weight_only(bits).unwrap();
        plain.set_precision(precision).unwrap();
        compiled.set_precision(precision).unwrap();
        assert_eq!(compiled.footprint(), plain.footprint());
        for (name, case) in &cases {
            let b = model_batch(case);
            let a = compiled.forecast(&b).unwrap();
            let p = plain.forecast(&b).unwrap();
            agree(&format!("{name} int{bits}"), &a.values, &p.values);
            assert_eq!(compiled.forecast(&b).unwrap().values, a.values);
            assert!(
                max_diff(&a.values, &float.values) > 0.0,
                "{name} int{bits}: the compiled graph must use the quantized weights"
            );
            agree(
                &format!("{name} int{bits} encode"),
                &compiled.encode(&b).unwrap().hidden,
                &plain.encode(&b).unwrap().hidden,
            );
        }
    }
}

#[test]
fn cache_keeps_at_most_its_capacity() {
    let dir = fixtures::repo_root().join("tests/fixtures/models/tiny");
    let model = load_model_with(&dir, COMPILED).unwrap();
    let n = chronos2_mlx::COMPILE_CACHE_CAPACITY + 3;
    for rows in 1..=n {
        model.forecast(&batch(rows, 16, (0..rows as i64).collect(), 1, rows)).unwrap();
    }
    assert_eq!(model.compiled_graphs(), chronos2_mlx::COMPILE_CACHE_CAPACITY);
    assert_eq!(model.compile_traces(), n as u64);
    // The most recent structure is still cached, the first one was evicted.
    model.forecast(&batch(n, 16, (0..n as i64).collect(), 1, 0)).unwrap();
    assert_eq!(model.compile_traces(), n as u64);
    model.forecast(&batch(1, 16, vec![0], 1, 0)).unwrap();
    assert_eq!(model.compile_traces(), n as u64 + 1);
}

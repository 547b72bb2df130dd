//! Reading the reference fixtures (`tests/fixtures/cases/*.json`, written by
//! `scripts/generate_fixtures.py` with `chronos-forecasting`) and comparing results to them.
//! Shared by the parity tests of every backend (feature `fixtures`).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::forecaster::{Forecaster, ModelBatch};
use crate::model::Chronos2Model;
use crate::ops::Ops;

/// The repository root (fixture paths are relative to it).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// All fixture cases of `kind`, as `(file name, parsed JSON)`, sorted by name.
pub fn cases(kind: &str) -> Vec<(String, Value)> {
    let dir = repo_root().join("tests/fixtures/cases");
    let mut out = Vec::new();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read case");
        let value: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if value["kind"] == kind {
            out.push((path.file_stem().unwrap().to_string_lossy().into_owned(), value));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!out.is_empty(), "no fixture cases of kind {kind:?} in {}", dir.display());
    out
}

/// The model directory a case refers to.
pub fn model_dir(case: &Value) -> PathBuf {
    repo_root().join(case["model"].as_str().expect("case has a model path"))
}

/// Flattens a nested JSON array of numbers (null = NaN) into f32s.
pub fn flat(value: &Value) -> Vec<f32> {
    let mut out = Vec::new();
    fn walk(v: &Value, out: &mut Vec<f32>) {
        match v {
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            Value::Null => out.push(f32::NAN),
            Value::Number(n) => out.push(n.as_f64().expect("number") as f32),
            other => panic!("expected a number, found {other}"),
        }
    }
    walk(value, &mut out);
    out
}

/// Lengths of the nested arrays along the first element of each level.
pub fn dims(value: &Value) -> Vec<usize> {
    let mut dims = Vec::new();
    let mut v = value;
    while let Value::Array(items) = v {
        dims.push(items.len());
        match items.first() {
            Some(first) => v = first,
            None => break,
        }
    }
    dims
}

/// Checks `actual` against `expected` with `max|a - e| <= max(rtol * max|e|, atol) + 1e-6`;
/// NaN must match NaN.
pub fn assert_close(what: &str, actual: &[f32], expected: &[f32], rtol: f32, atol: f32) -> Result<(), String> {
    if actual.len() != expected.len() {
        return Err(format!("{what}: {} values, expected {}", actual.len(), expected.len()));
    }
    let scale = expected.iter().filter(|e| e.is_finite()).fold(0f32, |m, e| m.max(e.abs()));
    let tol = (rtol * scale).max(atol) + 1e-6;
    let mut worst = (0usize, 0f32);
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        if e.is_nan() != a.is_nan() {
            return Err(format!("{what}[{i}]: {a} vs expected {e}"));
        }
        let d = (a - e).abs();
        if d > worst.1 {
            worst = (i, d);
        }
    }
    if worst.1 > tol {
        let i = worst.0;
        return Err(format!(
            "{what}: max |diff| {} at [{i}] ({} vs expected {}) exceeds {tol} (rtol {rtol} x max|expected| {scale}, atol {atol})",
            worst.1, actual[i], expected[i]
        ));
    }
    Ok(())
}

/// Builds the [`ModelBatch`] of a `"kind": "model"` case.
pub fn model_batch(case: &Value) -> ModelBatch {
    let context = &case["context"];
    let d = dims(context);
    let future = &case["future_covariates"];
    let (future_covariates, future_len) = if future.is_null() { (None, 0) } else { (Some(flat(future)), dims(future)[1]) };
    ModelBatch {
        context: flat(context),
        rows: d[0],
        context_len: d[1],
        group_ids: case["group_ids"].as_array().expect("group_ids").iter().map(|g| g.as_i64().unwrap()).collect(),
        future_covariates,
        future_len,
        num_output_patches: case["num_output_patches"].as_u64().expect("num_output_patches") as usize,
    }
}

/// The reference's own fp32 noise for a stage of a model case: twice the difference between its
/// eager and SDPA attention paths (`eager_vs_sdpa_max_abs_diff`, recorded by the generator).
/// With no 1/sqrt(d) scaling and large random weights, attention is sharp and two exact fp32
/// implementations differ by more than `1e-5` relative; we then allow the reference's own spread.
fn reference_noise(case: &Value, stage: &str, layer: Option<usize>) -> f32 {
    let noise = &case["eager_vs_sdpa_max_abs_diff"][stage];
    let noise = match layer {
        Some(i) => &noise[i],
        None => noise,
    };
    2.0 * noise.as_f64().unwrap_or(0.0) as f32
}

/// Runs every `"kind": "model"` case on backend `ops`, comparing every stage of the forward
/// (patching, embeddings, each encoder block, final states, quantiles) with the reference:
/// `rtol` relative to the stage's largest value, or the reference's own noise if larger.
pub fn check_model_cases<O: Ops>(ops: O, rtol: f32) -> Result<usize, String> {
    let mut checked = 0;
    for (name, case) in cases("model") {
        let model = Chronos2Model::load_dir(ops.clone(), &model_dir(&case)).map_err(|e| format!("{name}: {e}"))?;
        let batch = model_batch(&case);
        let expected = &case["expected"];
        let trace = model.trace(&batch).map_err(|e| format!("{name}: {e}"))?;
        let ctx = |what: &str| format!("{name}: {what}");
        assert_close(&ctx("loc"), &trace.patched.loc, &flat(&expected["loc"]), rtol, 0.0)?;
        assert_close(&ctx("scale"), &trace.patched.scale, &flat(&expected["scale"]), rtol, 0.0)?;
        let tokens = trace.patched.num_context_patches;
        let feature_dim = 3 * model.config().patch_size();
        let context_features: Vec<f32> = trace
            .patched
            .features
            .chunks(feature_dim * (tokens + trace.patched.num_output_patches))
            .flat_map(|row| row[..tokens * feature_dim].to_vec())
            .collect();
        assert_close(&ctx("patched_context"), &context_features, &flat(&expected["patched_context"]), rtol, 0.0)?;
        assert_close(&ctx("attention_mask"), &trace.patched.attention_mask, &flat(&expected["attention_mask"]), 0.0, 0.0)?;
        assert_close(&ctx("input_embeds"), &trace.input_embeds, &flat(&expected["input_embeds"]), rtol, reference_noise(&case, "input_embeds", None))?;
        let layers = expected["layer_outputs"].as_array().expect("layer_outputs");
        if layers.len() != trace.layer_outputs.len() {
            return Err(ctx(&format!("{} layers, expected {}", trace.layer_outputs.len(), layers.len())));
        }
        for (i, (actual, exp)) in trace.layer_outputs.iter().zip(layers).enumerate() {
            assert_close(&ctx(&format!("layer {i}")), actual, &flat(exp), rtol, reference_noise(&case, "layer_outputs", Some(i)))?;
        }
        assert_close(&ctx("last_hidden_state"), &trace.last_hidden_state, &flat(&expected["last_hidden_state"]), rtol, reference_noise(&case, "last_hidden_state", None))?;
        let forecast = model.forecast(&batch).map_err(|e| format!("{name}: {e}"))?;
        assert_close(&ctx("quantile_preds"), &forecast.values, &flat(&expected["quantile_preds"]), rtol, reference_noise(&case, "quantile_preds", None))?;
        checked += 1;
    }
    Ok(checked)
}

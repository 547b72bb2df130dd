//! Pipeline tests against a deterministic mock model. `testdata/mock_reference.json` holds the
//! outputs of the reference `Chronos2Pipeline.predict_quantiles` run on the same mock model
//! (`testdata/mock_reference.py`).

use std::sync::Mutex;

use serde_json::Value;

use super::*;
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::forecaster::{Encoding, Forecaster, ModelBatch, QuantileForecast};

const MINI_CONFIG: &str = include_str!("../../../../models/chronos2-mini/config.json");
const MOCK_REFERENCE: &str = include_str!("testdata/mock_reference.json");

fn mock_config(context_length: usize) -> ModelConfig {
    let text = MINI_CONFIG.replace("\"context_length\": 2048", &format!("\"context_length\": {context_length}"));
    let config = ModelConfig::from_json(&text).unwrap();
    assert_eq!(config.chronos_config.context_length, context_length);
    config
}

/// A model whose outputs are simple functions of its inputs (see `testdata/mock_reference.py`)
/// and which records every batch it is given.
struct MockModel {
    config: ModelConfig,
    calls: Mutex<Vec<ModelBatch>>,
}

impl MockModel {
    fn new(context_length: usize) -> Self {
        MockModel { config: mock_config(context_length), calls: Mutex::new(Vec::new()) }
    }

    fn calls(&self) -> Vec<ModelBatch> {
        self.calls.lock().unwrap().clone()
    }
}

impl Forecaster for MockModel {
    fn config(&self) -> &ModelConfig {
        &self.config
    }

    fn backend_name(&self) -> &str {
        "mock"
    }

    fn forecast(&self, batch: &ModelBatch) -> Result<QuantileForecast> {
        self.calls.lock().unwrap().push(batch.clone());
        let ctx_len = self.config.chronos_config.context_length;
        let t = batch.context_len.min(ctx_len);
        let rows = batch.rows;
        let mut last = vec![0f64; rows];
        let mut nobs = vec![0f64; rows];
        for b in 0..rows {
            let row = &batch.context[b * batch.context_len..(b + 1) * batch.context_len];
            let row = &row[row.len() - t..];
            for &v in row {
                if !v.is_nan() {
                    last[b] = v as f64;
                    nobs[b] += 1.0;
                }
            }
        }
        let gsum: Vec<f64> = (0..rows)
            .map(|b| (0..rows).filter(|&o| batch.group_ids[o] == batch.group_ids[b]).map(|o| last[o]).sum())
            .collect();
        let fsum: Vec<f64> = (0..rows)
            .map(|b| match &batch.future_covariates {
                Some(f) => f[b * batch.future_len..(b + 1) * batch.future_len]
                    .iter()
                    .filter(|v| !v.is_nan())
                    .map(|&v| v as f64)
                    .sum(),
                None => 0.0,
            })
            .collect();
        let h = batch.num_output_patches * self.config.patch_size();
        let levels = self.config.quantiles();
        let mut values = Vec::with_capacity(rows * levels.len() * h);
        for b in 0..rows {
            let base = last[b] + 0.1 * gsum[b] + 0.01 * fsum[b] + 0.001 * nobs[b] + 0.0001 * t as f64;
            for &q in levels {
                for s in 0..h {
                    values.push((base + (q as f64 - 0.5) * (1.0 + 0.05 * s as f64)) as f32);
                }
            }
        }
        Ok(QuantileForecast { values, rows, num_quantiles: levels.len(), horizon: h })
    }

    /// The pipeline never changes precision; a mock has no weights to convert.
    fn set_precision(&mut self, precision: crate::Precision) -> Result<()> {
        Err(crate::Error::UnsupportedPrecision {
            backend: "mock".into(),
            precision,
            supported: "none (no weights)".into(),
        })
    }

    fn footprint(&self) -> crate::forecaster::Footprint {
        crate::forecaster::Footprint::default()
    }

    /// hidden[b, pos, j] = 1000 b + 10 pos + j; loc = b, scale = b + 1.
    fn encode(&self, batch: &ModelBatch) -> Result<Encoding> {
        self.calls.lock().unwrap().push(batch.clone());
        let p = self.config.patch_size();
        let n = batch.context_len.min(self.config.chronos_config.context_length).div_ceil(p);
        let seq_len = n + 1 + batch.num_output_patches;
        let d = 4;
        let mut hidden = Vec::new();
        for b in 0..batch.rows {
            for pos in 0..seq_len {
                for j in 0..d {
                    hidden.push((1000 * b + 10 * pos + j) as f32);
                }
            }
        }
        Ok(Encoding {
            hidden,
            rows: batch.rows,
            seq_len,
            d_model: d,
            num_context_patches: n,
            loc: (0..batch.rows).map(|b| b as f32).collect(),
            scale: (0..batch.rows).map(|b| b as f32 + 1.0).collect(),
        })
    }
}

fn json_f32s(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().map_or(f32::NAN, |x| x as f32)).collect()
}

fn json_values(v: &Value) -> CovariateValues {
    if let Some(n) = v.get("numeric") {
        CovariateValues::Numeric(json_f32s(n))
    } else {
        CovariateValues::Categorical(
            v["categorical"].as_array().unwrap().iter().map(|x| x.as_str().map(str::to_string)).collect(),
        )
    }
}

fn json_items(v: &Value) -> Vec<SeriesInput> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|item| SeriesInput {
            targets: item["targets"].as_array().unwrap().iter().map(json_f32s).collect(),
            covariates: item["covariates"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| Covariate {
                    name: c["name"].as_str().unwrap().to_string(),
                    past: json_values(&c["past"]),
                    future: match &c["future"] {
                        Value::String(s) if s == "past_only" => FutureValues::PastOnly,
                        Value::String(s) if s == "unavailable" => FutureValues::KnownUnavailable,
                        other => FutureValues::Known(json_values(other)),
                    },
                })
                .collect(),
        })
        .collect()
}

fn json_options(v: &Value) -> PredictOptions {
    let mut o = PredictOptions::default();
    let levels = |x: &Value| json_f32s(x);
    if let Some(h) = v.get("prediction_length") {
        o.prediction_length = Some(h.as_u64().unwrap() as usize);
    }
    if let Some(x) = v.get("batch_size") {
        o.batch_size = x.as_u64().unwrap() as usize;
    }
    if let Some(x) = v.get("context_length") {
        o.context_length = Some(x.as_u64().unwrap() as usize);
    }
    if let Some(x) = v.get("max_output_patches") {
        o.max_output_patches = Some(x.as_u64().unwrap() as usize);
    }
    if let Some(x) = v.get("cross_learning") {
        o.cross_learning = x.as_bool().unwrap();
    }
    if let Some(x) = v.get("quantile_levels") {
        o.quantile_levels = levels(x);
    }
    if let Some(x) = v.get("unrolled_quantiles") {
        o.unrolled_quantiles = levels(x);
    }
    o
}

fn assert_close(what: &str, actual: &[f32], expected: &[f32], rtol: f32) {
    assert_eq!(actual.len(), expected.len(), "{what}: lengths differ");
    let scale = expected.iter().fold(0f32, |m, e| m.max(e.abs()));
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a.is_nan() && e.is_nan()) || (a - e).abs() <= rtol * scale + 1e-6,
            "{what}[{i}]: got {a}, expected {e}"
        );
    }
}

#[test]
fn predict_matches_reference_pipeline_on_mock_model() {
    let reference: Value = serde_json::from_str(MOCK_REFERENCE).unwrap();
    let ctx = reference["model_context_length"].as_u64().unwrap() as usize;
    for case in reference["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let mut items = json_items(&case["items"]);
        sort_covariates_by_name(&mut items); // list-of-dicts semantics
        let options = json_options(&case["options"]);
        let model = MockModel::new(ctx);
        let mut progress = Vec::new();
        let out = predict(&model, &items, &options, &mut |done, total| progress.push((done, total))).unwrap();
        assert_eq!(progress.last(), Some(&(items.len(), items.len())), "{name}");

        let expected_q = case["quantiles"].as_array().unwrap();
        let expected_m = case["median"].as_array().unwrap();
        assert_eq!(out.len(), expected_q.len(), "{name}");
        for (i, f) in out.iter().enumerate() {
            let shape: Vec<usize> =
                expected_q[i]["shape"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
            assert_eq!(vec![f.n_targets, f.prediction_length, f.quantile_levels.len()], shape, "{name} item {i}");
            assert_close(
                &format!("{name} item {i} quantiles"),
                &f.quantiles,
                &json_f32s(&expected_q[i]["values"]),
                1e-6,
            );
            assert_close(&format!("{name} item {i} median"), &f.median, &json_f32s(&expected_m[i]), 1e-6);
        }

        let calls = model.calls();
        let expected_calls = case["calls"].as_array().unwrap();
        assert_eq!(calls.len(), expected_calls.len(), "{name}: number of model calls");
        for (c, (got, exp)) in calls.iter().zip(expected_calls).enumerate() {
            assert_eq!(got.rows, exp["rows"].as_u64().unwrap() as usize, "{name} call {c}");
            assert_eq!(got.context_len, exp["context_len"].as_u64().unwrap() as usize, "{name} call {c}");
            assert_eq!(got.num_output_patches, exp["num_output_patches"].as_u64().unwrap() as usize, "{name} call {c}");
            let gids: Vec<i64> = exp["group_ids"].as_array().unwrap().iter().map(|g| g.as_i64().unwrap()).collect();
            assert_eq!(got.group_ids, gids, "{name} call {c}");
            if got.future_covariates.is_some() {
                assert_eq!(got.future_len, exp["future_len"].as_u64().unwrap() as usize, "{name} call {c}");
            }
        }
    }
}

fn univariate(lens: &[usize]) -> Vec<SeriesInput> {
    lens.iter()
        .enumerate()
        .map(|(i, &n)| SeriesInput::univariate((0..n).map(|t| (i * 100 + t) as f32).collect()))
        .collect()
}

#[test]
fn no_quantile_levels_give_empty_quantiles_and_the_median() {
    let model = MockModel::new(2048);
    let options = PredictOptions { quantile_levels: vec![], ..PredictOptions::new(10) };
    let out = predict(&model, &univariate(&[30]), &options, &mut |_, _| {}).unwrap();
    assert!(out[0].quantiles.is_empty() && out[0].quantile_levels.is_empty());
    assert_eq!(out[0].median.len(), 10);
}

#[test]
fn an_interrupt_check_stops_between_batches() {
    let model = MockModel::new(2048);
    let options = PredictOptions { batch_size: 1, ..PredictOptions::new(10) };
    let checks = std::rc::Rc::new(std::cell::Cell::new(0));
    let counted = checks.clone();
    let mut progress = Vec::new();
    let result = crate::interrupt::with_check(
        move || {
            counted.set(counted.get() + 1);
            counted.get() == 2
        },
        || predict(&model, &univariate(&[20, 20, 20, 20]), &options, &mut |d, t| progress.push((d, t))),
    );
    assert!(matches!(result, Err(Error::Interrupted)), "{result:?}");
    assert_eq!((checks.get(), progress), (2, vec![(1, 4)]), "stopped after the second batch");
    assert_eq!(model.calls().len(), 2);
}

#[test]
fn batches_pad_group_and_report_progress() {
    let model = MockModel::new(2048);
    let items = vec![
        SeriesInput { targets: vec![vec![1.0; 20], vec![2.0; 20]], covariates: vec![] },
        SeriesInput::univariate(vec![3.0; 5]),
        SeriesInput::univariate(vec![4.0; 40]),
    ];
    let options = PredictOptions { batch_size: 2, ..PredictOptions::new(10) };
    let mut progress = Vec::new();
    let out = predict(&model, &items, &options, &mut |d, t| progress.push((d, t))).unwrap();
    assert_eq!(progress, vec![(1, 3), (3, 3)]);
    assert_eq!(out.iter().map(|f| f.n_targets).collect::<Vec<_>>(), vec![2, 1, 1]);
    let calls = model.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!((calls[0].rows, calls[0].context_len, calls[0].num_output_patches), (2, 20, 1));
    assert_eq!(calls[0].group_ids, vec![0, 0]);
    assert_eq!((calls[1].rows, calls[1].context_len), (2, 40));
    assert_eq!(calls[1].group_ids, vec![0, 1]);
    // item 1 is left-padded with 35 NaNs
    assert!(calls[1].context[..35].iter().all(|v| v.is_nan()));
    assert_eq!(&calls[1].context[35..40], &[3.0; 5]);
    // no known future values -> no future covariates given to the model
    assert!(calls.iter().all(|c| c.future_covariates.is_none()));
    // default levels 0.1..0.9 are model levels: picked directly (mock: last + ... + (q - 0.5) (1 + 0.05 t))
    let f = &out[1];
    assert_eq!(f.quantiles.len(), 10 * 9);
    let base = 3.0 + 0.1 * 3.0 + 0.005 + 0.0001 * 40.0;
    assert!((f.median[0] - base as f32).abs() < 1e-5);
    assert!((f.quantiles[0] - (base - 0.4) as f32).abs() < 1e-5);
}

#[test]
fn context_length_is_capped_at_the_model_and_truncates_items() {
    let model = MockModel::new(32);
    let items = univariate(&[50, 10]);
    let options = PredictOptions { context_length: Some(100), ..PredictOptions::new(16) };
    assert_eq!(options.resolved_context_length(model.config()), 32);
    assert!(options.warnings(model.config()).iter().any(|w| w.contains("context_length 100")));
    predict(&model, &items, &options, &mut |_, _| {}).unwrap();
    let call = &model.calls()[0];
    assert_eq!(call.context_len, 32);
    assert_eq!(call.context[0], 18.0); // last 32 of 0..50
    assert!(call.context[32..32 + 22].iter().all(|v| v.is_nan()));
    assert_eq!(call.context[32 + 22], 100.0);

    let options = PredictOptions { context_length: Some(8), ..PredictOptions::new(16) };
    let model = MockModel::new(32);
    predict(&model, &items, &options, &mut |_, _| {}).unwrap();
    assert_eq!(model.calls()[0].context_len, 8);
    assert_eq!(model.calls()[0].context[..8], [42.0, 43.0, 44.0, 45.0, 46.0, 47.0, 48.0, 49.0]);
}

#[test]
fn default_prediction_length_is_the_models() {
    let model = MockModel::new(64);
    let options = PredictOptions::default();
    assert_eq!(options.resolved_prediction_length(model.config()), 64 * 16);
    let out = predict(&model, &univariate(&[5]), &options, &mut |_, _| {}).unwrap();
    assert_eq!(out[0].prediction_length, 1024);
    assert_eq!(model.calls().len(), 1);
    assert_eq!(model.calls()[0].num_output_patches, 64);
}

#[test]
fn rollout_appends_paths_and_splices_known_future_values() {
    // One univariate item with a known-future covariate; 2 patches per call, horizon 40.
    let model = MockModel::new(2048);
    let items = vec![SeriesInput {
        targets: vec![vec![1.0, 2.0, 3.0]],
        covariates: vec![Covariate {
            name: "x".into(),
            past: CovariateValues::Numeric(vec![5.0, 6.0, 7.0]),
            future: FutureValues::Known(CovariateValues::Numeric(
                (0..40).map(|i| if i == 33 { f32::NAN } else { 100.0 + i as f32 }).collect(),
            )),
        }],
    }];
    let options = PredictOptions { max_output_patches: Some(2), ..PredictOptions::new(40) };
    let out = predict(&model, &items, &options, &mut |_, _| {}).unwrap();
    assert_eq!(out[0].quantiles.len(), 40 * 9);
    let calls = model.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].future_len, 32);
    let second = &calls[1];
    assert_eq!((second.rows, second.context_len, second.num_output_patches), (18, 35, 1));
    assert_eq!(second.group_ids, (0..9).chain(0..9).collect::<Vec<i64>>());
    // Rows 9..18 are the covariate's paths: the appended 32 steps are its known future values.
    for path in 0..9 {
        let row = &second.context[(9 + path) * 35..(10 + path) * 35];
        assert_eq!(&row[..3], &[5.0, 6.0, 7.0]);
        let appended: Vec<f32> = (0..32).map(|i| 100.0 + i as f32).collect();
        assert_eq!(&row[3..], &appended[..]);
    }
    // Target paths get the first step's prediction at their unrolled level.
    let first = MockModel::new(2048).forecast(&calls[0]).unwrap();
    let q_index = |level: f32| model.config().quantiles().iter().position(|&q| q == level).unwrap();
    for (path, level) in DEFAULT_QUANTILE_LEVELS.iter().enumerate() {
        let row = &second.context[path * 35..(path + 1) * 35];
        let expected = &first.values[q_index(*level) * 32..(q_index(*level) + 1) * 32];
        assert_eq!(&row[3..], expected);
    }
    // Future covariates shifted by 32: step 33 is unknown.
    let fc = second.future_covariates.as_ref().unwrap();
    assert_eq!(second.future_len, 16);
    let covariate_row = &fc[9 * 16..10 * 16];
    assert_eq!(covariate_row[0], 132.0);
    assert!(covariate_row[1].is_nan());
    assert_eq!(covariate_row[7], 139.0);
    assert!(covariate_row[8..].iter().all(|v| v.is_nan()));
    assert!(fc[..9 * 16].iter().all(|v| v.is_nan()));
}

#[test]
fn rollout_keeps_the_models_context_length() {
    let model = MockModel::new(40);
    let options = PredictOptions { max_output_patches: Some(2), context_length: Some(20), ..PredictOptions::new(80) };
    predict(&model, &univariate(&[30]), &options, &mut |_, _| {}).unwrap();
    let lens: Vec<usize> = model.calls().iter().map(|c| c.context_len).collect();
    // pipeline context 20; after appending 32 -> 52, cut to the model's 40; again 40 + 32 -> 40
    assert_eq!(lens, vec![20, 40, 40]);
    let nop: Vec<usize> = model.calls().iter().map(|c| c.num_output_patches).collect();
    assert_eq!(nop, vec![2, 2, 1]);
}

#[test]
fn invalid_options_are_rejected() {
    let model = MockModel::new(64);
    let items = univariate(&[10]);
    let run = |o: PredictOptions| match predict(&model, &items, &o, &mut |_, _| {}) {
        Err(Error::InvalidInput(m)) => m,
        other => panic!("expected InvalidInput, got {other:?}"),
    };
    assert!(run(PredictOptions { unrolled_quantiles: vec![0.33], ..PredictOptions::new(4) }).contains("0.33"));
    assert!(run(PredictOptions { batch_size: 0, ..PredictOptions::new(4) }).contains("batch_size"));
    assert!(run(PredictOptions::new(0)).contains("prediction_length"));
    assert!(
        run(PredictOptions { max_output_patches: Some(0), ..PredictOptions::new(4) }).contains("max_output_patches")
    );
    assert!(run(PredictOptions { quantile_levels: vec![1.5], ..PredictOptions::new(4) }).contains("between 0 and 1"));
    assert!(run(PredictOptions { context_length: Some(0), ..PredictOptions::new(4) }).contains("context_length"));
    assert!(matches!(predict(&model, &[], &PredictOptions::new(4), &mut |_, _| {}), Err(Error::InvalidInput(_))));
}

#[test]
fn warnings_follow_the_reference() {
    let model = MockModel::new(64);
    let config = model.config();
    assert!(PredictOptions::new(16).warnings(config).is_empty());
    let w = PredictOptions { quantile_levels: vec![0.001, 0.5], ..PredictOptions::new(2000) }.warnings(config);
    assert_eq!(w.len(), 2, "{w:?}");
    // Only the levels outside the model's range are named.
    assert!(w[1].contains("level 0.001 is outside") && !w[1].contains("0.5"), "{w:?}");
}

#[test]
fn select_quantiles_interpolates_and_clamps() {
    let levels = [0.1f32, 0.5, 0.9];
    // (n_targets 1, Q 3, H 2)
    let raw = RawForecast {
        values: vec![1.0, 10.0, 2.0, 20.0, 4.0, 40.0],
        n_targets: 1,
        num_quantiles: 3,
        prediction_length: 2,
    };
    let f = select_quantiles(&raw, &levels, &[0.0, 0.3, 0.9, 1.0]).unwrap();
    assert_eq!(f.quantiles, vec![1.0, 1.5, 4.0, 4.0, 10.0, 15.0, 40.0, 40.0]);
    assert_eq!(f.median, vec![2.0, 20.0]);
    // A model without a 0.5 level: the median is interpolated.
    let f = select_quantiles(&raw, &[0.1, 0.4, 0.9], &[0.9]).unwrap();
    assert_eq!(f.quantiles, vec![4.0, 40.0]);
    assert!((f.median[0] - 2.4).abs() < 1e-6);
}

fn embed_items() -> Vec<SeriesInput> {
    let mut long = vec![f32::NAN; 40];
    long[39] = 1.0;
    vec![SeriesInput { targets: vec![vec![1.0; 20], vec![2.0; 20]], covariates: vec![] }, SeriesInput::univariate(long)]
}

#[test]
fn embed_returns_batch_wide_tokens_and_pools() {
    let model = MockModel::new(2048);
    let items = embed_items();
    let mut progress = Vec::new();
    let all = embed(&model, &items, 256, None, Pooling::All, &mut |d, t| progress.push((d, t))).unwrap();
    assert_eq!(progress, vec![(2, 2)]);
    let call = &model.calls()[0];
    assert_eq!((call.rows, call.context_len, call.num_output_patches), (3, 40, 1));
    assert!(call.future_covariates.is_none());
    assert_eq!(call.group_ids, vec![0, 0, 1]);
    // batch length 40 -> N = 3 patches (left-padded to 48), seq = N + REG + 1 future token
    assert_eq!((all[0].n_variates, all[0].tokens, all[0].d_model), (2, 5, 4));
    assert_eq!(all[0].values.len(), 2 * 5 * 4);
    assert_eq!(all[0].loc, vec![0.0, 1.0]);
    assert_eq!(all[1].scale, vec![3.0]);
    assert_eq!(all[1].values[0], 2000.0);

    let reg = embed(&model, &items, 256, None, Pooling::RegToken, &mut |_, _| {}).unwrap();
    assert_eq!(reg[0].values, vec![30.0, 31.0, 32.0, 33.0, 1030.0, 1031.0, 1032.0, 1033.0]);
    let last = embed(&model, &items, 256, None, Pooling::LastContextPatch, &mut |_, _| {}).unwrap();
    assert_eq!(last[1].values, vec![2020.0, 2021.0, 2022.0, 2023.0]);
    // item 0 (20 steps padded to 40, then to 48): patches 0 (all padding) is masked, 1 and 2 observed
    let mean = embed(&model, &items, 256, None, Pooling::MeanContext, &mut |_, _| {}).unwrap();
    assert_eq!(&mean[0].values[..4], &[15.0, 16.0, 17.0, 18.0]);
    // item 1 observes only its last step -> only patch 2
    assert_eq!(mean[1].values, vec![2020.0, 2021.0, 2022.0, 2023.0]);
    assert_eq!(mean[1].tokens, 1);
}

#[test]
fn embed_batches_and_truncates() {
    let model = MockModel::new(2048);
    let items = embed_items();
    let out = embed(&model, &items, 1, Some(16), Pooling::All, &mut |_, _| {}).unwrap();
    let calls = model.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!((calls[0].rows, calls[0].context_len), (2, 16));
    assert_eq!((calls[1].rows, calls[1].context_len), (1, 16));
    assert_eq!(out[0].tokens, 3);
}

#[test]
fn patch_mask_follows_left_padding() {
    let n = f32::NAN;
    let row = [n, n, n, 1.0, n, n];
    assert_eq!(patch_mask(&row, 4), vec![false, true]);
    assert_eq!(patch_mask(&row, 2), vec![false, true, false]);
    assert_eq!(patch_mask(&[n, n, 2.0], 4), vec![true]);
}

#[test]
fn embed_ignores_future_values_but_keeps_row_order() {
    let model = MockModel::new(2048);
    let items = vec![SeriesInput {
        targets: vec![vec![1.0, 2.0]],
        covariates: vec![
            Covariate {
                name: "k".into(),
                past: CovariateValues::Numeric(vec![7.0, 8.0]),
                future: FutureValues::Known(CovariateValues::Numeric(vec![1.0; 5])),
            },
            Covariate {
                name: "p".into(),
                past: CovariateValues::Numeric(vec![3.0, 4.0]),
                future: FutureValues::PastOnly,
            },
        ],
    }];
    let out = embed(&model, &items, 8, None, Pooling::RegToken, &mut |_, _| {}).unwrap();
    assert_eq!(out[0].n_variates, 1);
    assert_eq!(model.calls()[0].context, vec![1.0, 2.0, 3.0, 4.0, 7.0, 8.0]);
}

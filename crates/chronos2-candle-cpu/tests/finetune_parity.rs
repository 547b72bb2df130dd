//! Fine-tuning on candle CPU against the reference (`tests/fixtures/finetune/`, written by
//! `scripts/generate_fixtures.py` with chronos-forecasting 2.3.2 + peft): the validation batch
//! built from the same tasks, the loss and the gradient of every trainable parameter (full, LoRA,
//! head, QLoRA on a dequantized base), and five AdamW steps of the reference's `Trainer`.

use chronos2_candle_cpu::train::{CpuTrainModel, TrainSpec};
use chronos2_core::forecaster::ModelBatch;
use chronos2_core::pipeline::PreparedInput;
use chronos2_core::train::{AdamW, AdamWConfig, FinetuneMode, LoraConfig, TrainBatch, TrainDataset, TrainModel};
use chronos2_test_fixtures::{dims, flat, repo_root};
use serde_json::Value;

fn case(name: &str) -> Value {
    let path = repo_root().join(format!("tests/fixtures/finetune/{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("fixture JSON")
}

fn batch(v: &Value) -> TrainBatch {
    let cdims = dims(&v["context"]);
    let tdims = dims(&v["future_target"]);
    TrainBatch {
        model: ModelBatch {
            context: flat(&v["context"]),
            rows: cdims[0],
            context_len: cdims[1],
            group_ids: v["group_ids"].as_array().unwrap().iter().map(|g| g.as_i64().unwrap()).collect(),
            future_covariates: Some(flat(&v["future_covariates"])),
            future_len: tdims[1],
            num_output_patches: v["num_output_patches"].as_u64().unwrap() as usize,
        },
        future_target: flat(&v["future_target"]),
        prediction_length: tdims[1],
    }
}

fn prepared(v: &Value) -> Vec<PreparedInput> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let d = dims(&p["context"]);
            let fd = dims(&p["future_covariates"]);
            let n = |k: &str| p[k].as_u64().unwrap() as usize;
            PreparedInput {
                context: flat(&p["context"]),
                context_len: d[1],
                future_covariates: flat(&p["future_covariates"]),
                prediction_length: fd[1],
                n_targets: n("n_targets"),
                n_covariates: n("n_covariates"),
                n_future_covariates: n("n_future_covariates"),
            }
        })
        .collect()
}

fn mode(c: &Value) -> FinetuneMode {
    let bits = c["quantize_bits"].as_u64().map(|b| b as u32);
    FinetuneMode::parse(c["mode"].as_str().unwrap(), bits).unwrap()
}

fn model(c: &Value, init: &Value) -> CpuTrainModel {
    let spec = TrainSpec { mode: mode(c), lora: LoraConfig::default(), seed: 0 };
    let m = CpuTrainModel::load_dir(&repo_root().join(c["model"].as_str().unwrap()), spec).unwrap();
    if let Some(init) = init.as_object() {
        for (name, values) in init {
            m.set_param(name, &reference_of(name, values)).unwrap();
        }
    }
    m
}

/// The reference's value of our parameter `name`: `shared.weight` is trained as its [REG] row.
fn reference_of(name: &str, values: &Value) -> Vec<f32> {
    let v = flat(values);
    if name == "shared.weight" {
        let d = v.len() / 2;
        v[d..].to_vec()
    } else {
        v
    }
}

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0f32, |m, x| m.max(x.abs()))
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

fn same_nan(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x.is_nan() && y.is_nan()) || x == y)
}

const GRAD_CASES: [&str; 9] = [
    "grad_tiny_full_nan",
    "grad_tiny_full_covariates",
    "grad_tiny_lora_nan",
    "grad_tiny_lora_covariates",
    "grad_tiny_head_nan",
    "grad_tiny_head_covariates",
    "grad_small_lora_covariates",
    "grad_small_qlora8_covariates",
    "grad_small_qlora4_covariates",
];

#[test]
fn validation_batch_matches_the_reference_dataset() {
    for name in GRAD_CASES {
        let c = case(name);
        let h = c["prediction_length"].as_u64().unwrap() as usize;
        let ctx = c["context_length"].as_u64().unwrap() as usize;
        let ds = TrainDataset::new(prepared(&c["prepared"]), ctx, h, h, 256, 16).unwrap();
        let ours = &ds.validation_batches()[0];
        let theirs = batch(&c["batch"]);
        assert_eq!(ours.model.group_ids, theirs.model.group_ids, "{name}");
        assert_eq!((ours.model.rows, ours.model.context_len), (theirs.model.rows, theirs.model.context_len), "{name}");
        assert!(same_nan(&ours.model.context, &theirs.model.context), "{name}: context");
        assert!(same_nan(&ours.future_target, &theirs.future_target), "{name}: future target");
        assert!(
            same_nan(ours.model.future_covariates.as_ref().unwrap(), theirs.model.future_covariates.as_ref().unwrap()),
            "{name}: future covariates"
        );
        assert_eq!(ours.model.num_output_patches, theirs.model.num_output_patches);
    }
}

#[test]
fn loss_and_gradients_match_the_reference() {
    for name in GRAD_CASES {
        let c = case(name);
        let mut m = model(&c, &c["lora_init"]);
        let (loss, grads) = m.loss_and_grads(&batch(&c["batch"])).unwrap();
        let expected = c["loss"].as_f64().unwrap() as f32;
        let rel = ((loss - expected) / expected).abs();
        assert!(rel <= 1e-5, "{name}: loss {loss} vs reference {expected} (relative {rel:e})");
        let names = m.parameter_names();
        let reference = c["grads"].as_object().unwrap();
        assert_eq!(names.len(), reference.len(), "{name}: trainable parameters {names:?}");
        for (pname, g) in names.iter().zip(&grads) {
            let r = reference_of(pname, &reference[pname.as_str()]);
            let noise = c["grad_noise"][pname.as_str()].as_f64().unwrap() as f32;
            let diff = max_diff(g, &r);
            // 16x the reference's own float32-vs-float64 spread of that gradient (measured worst
            // case over these fixtures: 10.3x, in the unscaled attention of the random tiny model)
            let tol = 16.0 * noise + 1e-6 * max_abs(&r) + 1e-9;
            assert!(diff <= tol, "{name}: gradient of {pname}: max |diff| {diff:e} > {tol:e} (noise {noise:e})");
        }
    }
}

#[test]
fn five_adamw_steps_match_the_reference_trainer() {
    for name in ["adamw_tiny_full", "adamw_tiny_lora", "adamw_tiny_head"] {
        let c = case(name);
        let mut m = model(&c, &c["initial"]);
        let names = m.parameter_names();
        let initial = c["initial"].as_object().unwrap();
        assert_eq!(names.len(), initial.len(), "{name}: trainable parameters");
        let mut values: Vec<Vec<f32>> = names.iter().map(|n| reference_of(n, &initial[n.as_str()])).collect();
        m.set_parameter_values(&values).unwrap();
        let batches = c["batches"].as_array().unwrap();
        let lr = c["learning_rate"].as_f64().unwrap() as f32;
        let mut opt =
            AdamW::new(AdamWConfig::new(lr, batches.len()).unwrap(), &values.iter().map(Vec::len).collect::<Vec<_>>());
        for (step, (b, expected)) in batches.iter().zip(c["losses"].as_array().unwrap()).enumerate() {
            let (loss, mut grads) = m.loss_and_grads(&batch(b)).unwrap();
            let expected = expected.as_f64().unwrap() as f32;
            let rel = ((loss - expected) / expected).abs();
            assert!(rel <= 1e-5, "{name}: step {step} loss {loss} vs reference {expected} (relative {rel:e})");
            opt.step(&mut values, &mut grads).unwrap();
            m.set_parameter_values(&values).unwrap();
        }
        let final_ = c["final"].as_object().unwrap();
        for (pname, v) in names.iter().zip(&values) {
            let r = reference_of(pname, &final_[pname.as_str()]);
            let diff = max_diff(v, &r);
            // 5 steps move a parameter by at most 5 lr; a gradient component at the noise level
            // can take another sign through Adam's normalisation, so allow a tenth of one step
            assert!(diff <= 0.1 * lr, "{name}: final {pname}: max |diff| {diff:e} (lr {lr})");
        }
    }
}

/// The reference's PEFT adapter, read and fused by us, forecasts what the reference forecasts
/// through it; the fused weights are the base plus `scaling * B A`.
#[test]
fn reference_adapter_fused_forecasts_like_the_reference() {
    use chronos2_core::pipeline::{predict_raw, PredictOptions, SeriesInput};
    use chronos2_core::train::export::{read_safetensors, write_fused, Adapter};

    let c = case("adapter_tiny_lora");
    let root = repo_root();
    let adapter = Adapter::load(&root.join(c["adapter"].as_str().unwrap())).unwrap();
    let base_dir = root.join(c["model"].as_str().unwrap());
    let out = std::env::temp_dir().join(format!("chronos2-fused-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    write_fused(&out, &base_dir, &adapter).unwrap();

    let base = read_safetensors(&base_dir.join("model.safetensors")).unwrap();
    let fused = read_safetensors(&out.join("model.safetensors")).unwrap();
    let Adapter::Lora { pairs, scaling, .. } = &adapter else { panic!("a LoRA adapter") };
    assert_eq!(pairs.len(), 17, "2 blocks x 2 attentions x 4 projections + the head's output layer");
    for (b, f) in base.iter().zip(&fused) {
        let module = b.name.strip_suffix(".weight").unwrap_or("");
        match pairs.get(module) {
            None => assert_eq!(b.data, f.data, "{} changed without an adapter", b.name),
            Some((a, bb)) => {
                let (o, i, r) = (b.shape[0], b.shape[1], a.shape[0]);
                let delta: f32 = (0..r).map(|j| bb.data[j] * a.data[j * i]).sum();
                assert!((f.data[0] - b.data[0] - scaling * delta).abs() < 1e-6, "{}", b.name);
                assert_eq!(f.data.len(), o * i);
            }
        }
    }

    let model = chronos2_candle_cpu::load(&out).unwrap();
    let h = c["prediction_length"].as_u64().unwrap() as usize;
    let items = vec![SeriesInput::univariate(flat(&c["context"]))];
    let raw = predict_raw(model.as_ref(), &items, &PredictOptions::new(h), &mut |_, _| {}).unwrap();
    let expected = flat(&c["quantiles"]);
    let base_expected = flat(&c["base_quantiles"]);
    let diff = max_diff(&raw[0].values, &expected);
    assert!(diff <= 2e-5 * max_abs(&expected), "fused forecast differs from the reference's by {diff}");
    assert!(max_diff(&base_expected, &expected) > 100.0 * diff, "the adapter must matter");
    std::fs::remove_dir_all(&out).unwrap();
}

//! The fine-tuning fixtures (`tests/fixtures/finetune/*.json`, written by
//! `scripts/generate_fixtures.py` with chronos-forecasting 2.3.2 + peft) and the parity checks
//! every backend's training model runs against them: the loss and the gradient of every
//! trainable parameter on a fixed batch, and five AdamW steps of the reference's `Trainer`.

use std::path::Path;

use serde_json::Value;

use chronos2_core::forecaster::ModelBatch;
use chronos2_core::pipeline::PreparedInput;
use chronos2_core::train::{AdamW, AdamWConfig, FinetuneMode, LoraConfig, TrainBatch, TrainModel, TrainSpec};

use crate::{dims, flat, repo_root};

/// Builds a backend's training model for a model directory.
pub type TrainLoader<'a> = &'a dyn Fn(&Path, TrainSpec) -> chronos2_core::Result<Box<dyn TrainModel>>;

/// The loss-and-gradient cases: full, LoRA and head on the tiny model (NaN gaps; covariates),
/// LoRA on the small model, QLoRA (int8, int4) against the reference's LoRA on the dequantized base.
pub const GRAD_CASES: [&str; 9] = [
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

/// Five steps of the reference's `Chronos2Trainer` per mode.
pub const ADAMW_CASES: [&str; 3] = ["adamw_tiny_full", "adamw_tiny_lora", "adamw_tiny_head"];

/// The fine-tuning fixture `name`.
pub fn finetune_case(name: &str) -> Value {
    let path = repo_root().join(format!("tests/fixtures/finetune/{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("fixture JSON")
}

/// The [`TrainBatch`] of a fixture batch (the reference `Chronos2Dataset`'s).
pub fn train_batch(v: &Value) -> TrainBatch {
    let cdims = dims(&v["context"]);
    let tdims = dims(&v["future_target"]);
    TrainBatch {
        model: ModelBatch {
            context: flat(&v["context"]),
            rows: cdims[0],
            context_len: cdims[1],
            group_ids: v["group_ids"].as_array().expect("group_ids").iter().map(|g| g.as_i64().expect("id")).collect(),
            future_covariates: Some(flat(&v["future_covariates"])),
            future_len: tdims[1],
            num_output_patches: v["num_output_patches"].as_u64().expect("num_output_patches") as usize,
        },
        future_target: flat(&v["future_target"]),
        prediction_length: tdims[1],
    }
}

/// The tasks of a case as the pipeline prepares them.
pub fn prepared_inputs(v: &Value) -> Vec<PreparedInput> {
    v.as_array()
        .expect("prepared tasks")
        .iter()
        .map(|p| {
            let d = dims(&p["context"]);
            let fd = dims(&p["future_covariates"]);
            let n = |k: &str| p[k].as_u64().expect("count") as usize;
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

/// The training spec of a case: its mode (and QLoRA bits), the default LoRA configuration.
pub fn case_spec(c: &Value) -> TrainSpec {
    let bits = c["quantize_bits"].as_u64().map(|b| b as u32);
    let mode = FinetuneMode::parse(c["mode"].as_str().expect("mode"), bits).expect("a valid mode");
    TrainSpec { mode, lora: LoraConfig::default(), seed: 0 }
}

/// The reference's value of our parameter `name`: `shared.weight` is trained as its [REG] row.
pub fn reference_of(name: &str, values: &Value) -> Vec<f32> {
    let v = flat(values);
    if name == "shared.weight" {
        let d = v.len() / 2;
        v[d..].to_vec()
    } else {
        v
    }
}

/// The case's model on a backend, with the parameters named in `init` set to the reference's.
pub fn case_model(load: TrainLoader<'_>, c: &Value, init: &Value) -> Box<dyn TrainModel> {
    let dir = repo_root().join(c["model"].as_str().expect("model"));
    let mut model = load(&dir, case_spec(c)).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    set_initial(model.as_mut(), init);
    model
}

/// Sets the parameters named in `init` to the reference's values.
pub fn set_initial(model: &mut dyn TrainModel, init: &Value) {
    if let Some(init) = init.as_object() {
        let names = model.parameter_names();
        let mut values = model.parameter_values().expect("parameter values");
        for (name, v) in names.iter().zip(values.iter_mut()) {
            if let Some(reference) = init.get(name.as_str()) {
                *v = reference_of(name, reference);
            }
        }
        model.set_parameter_values(&values).expect("set the reference's initial values");
    }
}

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0f32, |m, x| m.max(x.abs()))
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).fold(if a.len() == b.len() { 0f32 } else { f32::INFINITY }, |m, (x, y)| m.max((x - y).abs()))
}

fn relative(loss: f32, expected: f32) -> f32 {
    ((loss - expected) / expected).abs()
}

/// The gradient tolerance of a parameter: 16x the reference's own float32-vs-float64 spread of
/// that gradient (measured worst case of the CPU backend over these fixtures: 10.3x, in the
/// unscaled attention of the random tiny model), plus 1e-6 of its largest value.
pub fn gradient_tolerance(noise: f32, reference: &[f32]) -> f32 {
    16.0 * noise + 1e-6 * max_abs(reference) + 1e-9
}

/// Every [`GRAD_CASES`] case: the loss within 1e-5 relative of the reference's and the gradient
/// of every trainable parameter within [`gradient_tolerance`]. Returns the number of cases
/// checked, or every mismatch.
pub fn check_loss_and_gradients(load: TrainLoader<'_>) -> Result<usize, String> {
    let mut failures = Vec::new();
    for name in GRAD_CASES {
        let c = finetune_case(name);
        let mut m = case_model(load, &c, &c["lora_init"]);
        let (loss, grads) = m.loss_and_grads(&train_batch(&c["batch"])).map_err(|e| format!("{name}: {e}"))?;
        compare_loss_and_gradients(name, &c, loss, &m.parameter_names(), &grads, &mut failures);
    }
    if failures.is_empty() {
        Ok(GRAD_CASES.len())
    } else {
        Err(failures.join("\n"))
    }
}

/// Adds to `failures` where `loss` is not within 1e-5 relative of case `c`'s or a gradient of a
/// parameter of `names` not within [`gradient_tolerance`] of the reference's.
pub fn compare_loss_and_gradients(
    name: &str,
    c: &Value,
    loss: f32,
    names: &[String],
    grads: &[Vec<f32>],
    failures: &mut Vec<String>,
) {
    let expected = c["loss"].as_f64().expect("loss") as f32;
    if relative(loss, expected) > 1e-5 {
        failures.push(format!("{name}: loss {loss} vs reference {expected}"));
    }
    let reference = c["grads"].as_object().expect("grads");
    if names.len() != reference.len() {
        failures.push(format!("{name}: {} trainable parameters, the reference has {}", names.len(), reference.len()));
        return;
    }
    for (pname, g) in names.iter().zip(grads) {
        let Some(r) = reference.get(pname.as_str()) else {
            failures.push(format!("{name}: the reference trains no `{pname}`"));
            continue;
        };
        let r = reference_of(pname, r);
        let noise = c["grad_noise"][pname.as_str()].as_f64().expect("grad_noise") as f32;
        let (diff, tol) = (max_diff(g, &r), gradient_tolerance(noise, &r));
        if diff > tol {
            failures.push(format!("{name}: gradient of {pname}: max |diff| {diff:e} > {tol:e} (noise {noise:e})"));
        }
    }
}

/// Every [`ADAMW_CASES`] case: from the reference's initial values, five AdamW steps on its
/// batches; every step's loss within 1e-5 relative and the final parameters within 0.1 lr (5
/// steps move a parameter by at most 5 lr; a gradient component at the noise level can take
/// another sign through Adam's normalisation). Returns the number of cases checked, or every
/// mismatch.
pub fn check_adamw_steps(load: TrainLoader<'_>) -> Result<usize, String> {
    let mut failures = Vec::new();
    for name in ADAMW_CASES {
        let c = finetune_case(name);
        let mut m = case_model(load, &c, &c["initial"]);
        let names = m.parameter_names();
        let initial = c["initial"].as_object().expect("initial");
        if names.len() != initial.len() {
            failures.push(format!("{name}: {} trainable parameters, the reference has {}", names.len(), initial.len()));
            continue;
        }
        let mut values = m.parameter_values().map_err(|e| format!("{name}: {e}"))?;
        let batches = c["batches"].as_array().expect("batches");
        let lr = c["learning_rate"].as_f64().expect("learning_rate") as f32;
        let sizes: Vec<usize> = values.iter().map(Vec::len).collect();
        let mut opt = AdamW::new(AdamWConfig::new(lr, batches.len()).expect("AdamW settings"), &sizes);
        for (step, (b, expected)) in batches.iter().zip(c["losses"].as_array().expect("losses")).enumerate() {
            let (loss, mut grads) = m.loss_and_grads(&train_batch(b)).map_err(|e| format!("{name}: {e}"))?;
            let expected = expected.as_f64().expect("loss") as f32;
            if relative(loss, expected) > 1e-5 {
                failures.push(format!("{name}: step {step} loss {loss} vs reference {expected}"));
            }
            opt.step(&mut values, &mut grads).map_err(|e| format!("{name}: {e}"))?;
            m.set_parameter_values(&values).map_err(|e| format!("{name}: {e}"))?;
        }
        let final_ = c["final"].as_object().expect("final");
        for (pname, v) in names.iter().zip(&values) {
            let diff = max_diff(v, &reference_of(pname, &final_[pname.as_str()]));
            if diff > 0.1 * lr {
                failures.push(format!("{name}: final {pname}: max |diff| {diff:e} (lr {lr})"));
            }
        }
    }
    if failures.is_empty() {
        Ok(ADAMW_CASES.len())
    } else {
        Err(failures.join("\n"))
    }
}

//! Both backends train alike: the candle CPU (autograd) and MLX (`value_and_grad`) training
//! models of the registry give the same loss and the same gradient of every trainable parameter
//! on the reference's fixed batches (full, LoRA, head, QLoRA int8 / int4; NaN gaps, covariates),
//! and `Chronos2::finetune` on either backend takes the same steps from the same seed.
#![cfg(feature = "mlx")]

use std::path::Path;

use chronos2::chronos2_core::pipeline::SeriesInput;
use chronos2::chronos2_core::train::{FinetuneMode, TrainModel, TrainSpec};
use chronos2::finetune::FinetuneOptions;
use chronos2::{registry, Backend, BackendKind, Chronos2, LoadOptions};
use chronos2_test_fixtures::finetune::{case_model, finetune_case, train_batch, GRAD_CASES};
use chronos2_test_fixtures::repo_root;

fn loader(kind: BackendKind) -> impl Fn(&Path, TrainSpec) -> chronos2::chronos2_core::Result<Box<dyn TrainModel>> {
    move |dir, spec| {
        registry::train_model(kind, dir, spec).map_err(|e| chronos2::chronos2_core::Error::Backend(e.to_string()))
    }
}

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0f32, |m, x| m.max(x.abs()))
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

#[test]
fn cpu_and_mlx_give_the_same_losses_and_gradients() {
    let (cpu, mlx) = (loader(BackendKind::from_name("cpu").unwrap()), loader(BackendKind::from_name("mlx").unwrap()));
    let mut failures = Vec::new();
    for name in GRAD_CASES {
        let c = finetune_case(name);
        let batch = train_batch(&c["batch"]);
        let (mut on_cpu, mut on_mlx) = (case_model(&cpu, &c, &c["lora_init"]), case_model(&mlx, &c, &c["lora_init"]));
        assert_eq!(on_cpu.parameter_names(), on_mlx.parameter_names(), "{name}");
        assert_eq!(on_cpu.parameter_shapes(), on_mlx.parameter_shapes(), "{name}");
        let (loss_cpu, grads_cpu) = on_cpu.loss_and_grads(&batch).unwrap();
        let (loss_mlx, grads_mlx) = on_mlx.loss_and_grads(&batch).unwrap();
        let rel = ((loss_cpu - loss_mlx) / loss_cpu).abs();
        if rel > 1e-5 {
            failures.push(format!("{name}: loss {loss_cpu} on cpu, {loss_mlx} on mlx"));
        }
        for ((pname, g_cpu), g_mlx) in on_cpu.parameter_names().iter().zip(&grads_cpu).zip(&grads_mlx) {
            let noise = c["grad_noise"][pname.as_str()].as_f64().unwrap() as f32;
            let diff = max_diff(g_cpu, g_mlx);
            // 24x the reference's float32-vs-float64 spread of that gradient. Each backend is
            // within 16x of the reference (the parity tests); measured worst cases on an AMD EPYC
            // Zen 4 (2026-11-29): CPU 10.6x and MLX 6.4x from the reference on the LoRA of the
            // tiny model's unscaled attention (grad_tiny_lora_covariates), in opposite directions,
            // so 17.0x apart (an earlier machine measured 4.2x); MLX's worst elsewhere is 8.7x.
            // The loss differs by at most 2.4e-6 relative.
            let tol = 24.0 * noise + 1e-6 * max_abs(g_cpu) + 1e-9;
            if diff > tol {
                failures.push(format!("{name}: gradient of {pname}: cpu vs mlx max |diff| {diff:e} > {tol:e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn finetune_takes_the_same_steps_on_both_backends() {
    let model = repo_root().join("tests/fixtures/models/tiny");
    let model = Chronos2::load_with(
        model.to_str(),
        Backend::Forced(BackendKind::from_name("cpu").unwrap()),
        LoadOptions::default(),
    )
    .unwrap();
    let series: Vec<SeriesInput> = (0..3)
        .map(|s| {
            let values = (0..200).map(|t| ((t as f32) * 0.3 + s as f32).sin() * 10.0 + t as f32 * 0.05).collect();
            SeriesInput::univariate(values)
        })
        .collect();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chronos2-finetune-backends");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let mut losses = Vec::new();
    // The two training backends (the registry's others, e.g. cuda, run inference only).
    for kind in ["cpu", "mlx"].map(|name| BackendKind::from_name(name).unwrap()) {
        let mut options = FinetuneOptions::new(12, FinetuneMode::Lora);
        options.steps = 4;
        options.batch_size = 2;
        options.learning_rate = Some(1e-3);
        options.backend = kind;
        let report = model.finetune(&series, None, &options, &out.join(kind.name()), &mut |_| {}).unwrap();
        assert!(out.join(kind.name()).join("adapter_model.safetensors").is_file());
        losses.push(report.train_losses);
    }
    assert_eq!(losses[0].len(), 4);
    // measured: within 1e-6 relative at every step
    for (step, (cpu, mlx)) in losses[0].iter().zip(&losses[1]).enumerate() {
        assert!(((cpu - mlx) / cpu).abs() <= 1e-5, "step {step}: loss {cpu} on cpu, {mlx} on mlx");
    }
    std::fs::remove_dir_all(&out).unwrap();
}

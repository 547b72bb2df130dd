//! `chronos2 finetune --backend`: every mode trains on MLX when it is compiled in (the outputs of
//! each mode; a LoRA adapter that changes the forecast); without it, and for an unknown backend,
//! a clear error and no output directory. That both backends compute the same losses and
//! gradients is tested in `finetune_backends.rs`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const TINY: &str = "tests/fixtures/models/tiny";
const INPUT: &str = "examples/airpassengers.csv";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn tmpdir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chronos2-cli-finetune-backend").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn chronos2(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chronos2"))
        .args(args)
        .current_dir(root())
        .env_remove("CHRONOS2_BACKEND")
        .output()
        .expect("run chronos2")
}

/// `finetune` of the tiny model (or `--model` in `extra`) with a few fast steps.
fn finetune_args<'a>(mode: &'a str, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["finetune", "--input", INPUT, "--mode", mode, "--prediction-length", "12"];
    if !extra.contains(&"--model") {
        args.extend_from_slice(&["--model", TINY]);
    }
    args.extend_from_slice(&["--steps", "4", "--batch-size", "4", "--learning-rate", "1e-3"]);
    args.extend_from_slice(&["--output", out.to_str().unwrap()]);
    args.extend_from_slice(extra);
    args
}

fn fails_with(args: &[&str], message: &str, output: &Path) {
    let out = chronos2(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(stderr.contains(message), "{args:?}: expected `{message}` in: {stderr}");
    assert!(!output.exists(), "{args:?} left {}", output.display());
    let leftovers: Vec<_> = std::fs::read_dir(output.parent().unwrap()).unwrap().filter_map(|e| e.ok()).collect();
    assert!(leftovers.is_empty(), "{args:?} left {:?}", leftovers.iter().map(|e| e.path()).collect::<Vec<_>>());
}

#[test]
fn an_unknown_backend_is_a_clear_error() {
    let out = tmpdir("unknown").join("out");
    fails_with(&finetune_args("lora", &out, &["--backend", "cuda"]), "--backend cuda: expected one of cpu, mlx", &out);
}

#[cfg(not(feature = "mlx"))]
#[test]
fn mlx_is_refused_when_not_compiled_in() {
    let out = tmpdir("not-compiled").join("out");
    fails_with(
        &finetune_args("lora", &out, &["--backend", "mlx"]),
        "backend 'mlx' is not available here (usable backends: cpu)",
        &out,
    );
}

#[cfg(feature = "mlx")]
#[test]
fn every_mode_trains_on_mlx() {
    use chronos2::chronos2_core::train::export::read_safetensors;

    fn ok(out: &Output) -> String {
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "failed: {stderr}");
        stderr
    }
    fn forecast(adapter: Option<&Path>, out: &Path) -> String {
        let mut args = vec!["predict", "--model", TINY, "--input", INPUT, "--prediction-length", "12"];
        args.extend_from_slice(&["--output", out.to_str().unwrap()]);
        if let Some(a) = adapter {
            args.extend_from_slice(&["--adapter", a.to_str().unwrap()]);
        }
        ok(&chronos2(&args));
        std::fs::read_to_string(out).unwrap()
    }

    let dir = tmpdir("mlx");
    let lora = dir.join("lora");
    let log = ok(&chronos2(&finetune_args("lora", &lora, &["--backend", "mlx", "--validation", INPUT])));
    assert!(log.contains("lora fine-tuning: 4 steps") && log.contains("kept step"), "{log}");
    let tensors = read_safetensors(&lora.join("adapter_model.safetensors")).unwrap();
    assert_eq!(tensors.len(), 34, "2 blocks x 2 attentions x q,k,v,o + the head's output layer, A and B");
    assert!(tensors.iter().any(|t| t.name == "base_model.model.output_patch_embedding.output_layer.lora_B.weight"));
    assert_ne!(forecast(None, &dir.join("base.csv")), forecast(Some(&lora), &dir.join("lora.csv")));

    let full = dir.join("full");
    ok(&chronos2(&finetune_args("full", &full, &["--backend", "mlx"])));
    assert!(full.join("config.json").is_file() && full.join("model.safetensors").is_file());

    let head = dir.join("head");
    ok(&chronos2(&finetune_args("head", &head, &["--backend", "mlx"])));
    let names: Vec<String> =
        read_safetensors(&head.join("head.safetensors")).unwrap().into_iter().map(|t| t.name).collect();
    assert!(names.iter().all(|n| n.starts_with("output_patch_embedding.")) && names.len() == 6, "{names:?}");

    // a diverging run stops with the step and leaves nothing, on MLX too
    let diverged = tmpdir("mlx-diverged").join("out");
    let o = diverged.to_str().unwrap();
    let args = ["finetune", "--model", TINY, "--input", INPUT, "--mode", "lora", "--prediction-length", "12"];
    let args = [&args[..], &["--steps", "3", "--learning-rate", "1e30", "--backend", "mlx", "--output", o]].concat();
    fails_with(&args, "training diverged at step", &diverged);

    let qlora = dir.join("qlora");
    let small = ["--backend", "mlx", "--quantize", "int4", "--model", "tests/fixtures/models/small"];
    ok(&chronos2(&finetune_args("qlora", &qlora, &small)));
    assert!(qlora.join("adapter_model.safetensors").is_file());
}

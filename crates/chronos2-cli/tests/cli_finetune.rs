//! End-to-end tests of `chronos2 finetune`, `chronos2 fuse` and `--adapter` on the tiny fixture
//! model: the outputs of each mode, an adapter that changes the forecast and fuses to the same
//! forecast, and every bad input of the issue (clear error, no output directory left).
//! Parity of the numbers with the reference is in chronos2-candle-cpu's finetune_parity test;
//! `--backend mlx` trains every mode on MLX when it is compiled in.

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::root;

use chronos2::chronos2_core::train::export::read_safetensors;

const TINY: &str = "tests/fixtures/models/tiny";
const SMALL: &str = "tests/fixtures/models/small";
const INPUT: &str = "examples/airpassengers.csv";

fn tmpdir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chronos2-cli-finetune").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The isolated binary (tests/common), on the default backend: training runs on the backend
/// each test names.
fn chronos2(args: &[&str]) -> Output {
    common::run(args)
}

fn ok(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "failed: {stderr}");
    stderr
}

fn fails_with(args: &[&str], message: &str, output: &Path) {
    let out = chronos2(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(stderr.contains(message), "{args:?}: expected `{message}` in: {stderr}");
    assert!(!output.exists(), "{args:?} left {}", output.display());
    let parent = output.parent().unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(parent).unwrap().filter_map(|e| e.ok()).collect();
    assert!(leftovers.is_empty(), "{args:?} left {:?}", leftovers.iter().map(|e| e.path()).collect::<Vec<_>>());
}

fn finetune(mode: &str, out: &Path, extra: &[&str]) -> String {
    let out = out.to_str().unwrap();
    let mut args = vec!["finetune", "--input", INPUT, "--mode", mode];
    if !extra.contains(&"--model") {
        args.extend_from_slice(&["--model", TINY]);
    }
    if !extra.contains(&"--prediction-length") {
        args.extend_from_slice(&["--prediction-length", "12"]);
    }
    args.extend_from_slice(&["--steps", "6", "--batch-size", "4", "--learning-rate", "1e-3", "--output", out]);
    args.extend_from_slice(extra);
    ok(&chronos2(&args))
}

/// `finetune` of the tiny model (or `--model` in `extra`) with a few fast steps.
fn finetune_args<'a>(mode: &'a str, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["finetune", "--input", INPUT, "--mode", mode, "--prediction-length", "12"];
    if !extra.contains(&"--model") {
        args.extend_from_slice(&["--model", TINY]);
    }
    for (flag, value) in [("--steps", "4"), ("--batch-size", "4"), ("--learning-rate", "1e-3")] {
        if !extra.contains(&flag) {
            args.extend_from_slice(&[flag, value]);
        }
    }
    args.extend_from_slice(&["--output", out.to_str().unwrap()]);
    args.extend_from_slice(extra);
    args
}

fn forecast(model: &str, adapter: Option<&Path>, out: &Path) -> String {
    let mut args = vec!["predict", "--model", model, "--input", INPUT, "--prediction-length", "12", "--output"];
    args.push(out.to_str().unwrap());
    if let Some(a) = adapter {
        args.extend_from_slice(&["--adapter", a.to_str().unwrap()]);
    }
    ok(&chronos2(&args));
    std::fs::read_to_string(out).unwrap()
}

#[test]
fn lora_writes_a_peft_adapter_that_changes_the_forecast_and_fuses_to_the_same_forecast() {
    let dir = tmpdir("lora");
    let adapter = dir.join("adapter");
    let log = finetune("lora", &adapter, &["--validation", INPUT]);
    assert!(log.contains("kept step"), "{log}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(adapter.join("adapter_config.json")).unwrap()).unwrap();
    assert_eq!((config["peft_type"].as_str(), config["r"].as_u64()), (Some("LORA"), Some(8)));
    let tensors = read_safetensors(&adapter.join("adapter_model.safetensors")).unwrap();
    assert_eq!(tensors.len(), 34, "2 blocks x 2 attentions x q,k,v,o + the head's output layer, A and B");
    assert!(tensors
        .iter()
        .any(|t| t.name == "base_model.model.encoder.block.1.layer.1.self_attention.o.lora_B.weight"));
    assert!(tensors.iter().any(|t| t.name == "base_model.model.output_patch_embedding.output_layer.lora_A.weight"));

    let base = forecast(TINY, None, &dir.join("base.csv"));
    let adapted = forecast(TINY, Some(&adapter), &dir.join("adapted.csv"));
    assert_ne!(base, adapted, "the trained adapter must change the forecast");
    let fused = dir.join("fused");
    ok(&chronos2(&[
        "fuse",
        "--model",
        TINY,
        "--adapter",
        adapter.to_str().unwrap(),
        "--output",
        fused.to_str().unwrap(),
    ]));
    assert_eq!(forecast(fused.to_str().unwrap(), None, &dir.join("fused.csv")), adapted);
}

/// `--format npz` writes the same adapter MLX style; predict and fuse read it (the directory or
/// the .npz file) and forecast what the PEFT adapter of the same run forecasts.
#[test]
fn npz_adapter_forecasts_as_the_peft_adapter_of_the_same_run() {
    let dir = tmpdir("npz");
    let peft = dir.join("peft");
    let npz = dir.join("npz");
    finetune("lora", &peft, &["--seed", "3"]);
    finetune("lora", &npz, &["--seed", "3", "--format", "npz"]);
    assert!(npz.join("adapters.npz").is_file() && !npz.join("adapter_model.safetensors").exists());
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(npz.join("adapter_config.json")).unwrap()).unwrap();
    assert_eq!(config["lora_parameters"]["rank"].as_u64(), Some(8));
    assert_eq!(config["lora_parameters"]["scale"].as_f64(), Some(2.0));
    let from_peft = forecast(TINY, Some(&peft), &dir.join("peft.csv"));
    assert_eq!(forecast(TINY, Some(&npz), &dir.join("npz.csv")), from_peft);
    assert_eq!(forecast(TINY, Some(&npz.join("adapters.npz")), &dir.join("npz-file.csv")), from_peft);
    let fused = dir.join("fused");
    let args = ["fuse", "--model", TINY, "--adapter", npz.to_str().unwrap(), "--output", fused.to_str().unwrap()];
    ok(&chronos2(&args));
    assert_eq!(forecast(fused.to_str().unwrap(), None, &dir.join("fused.csv")), from_peft);
}

#[test]
fn full_head_and_qlora_outputs() {
    let dir = tmpdir("modes");
    let full = dir.join("full");
    finetune("full", &full, &["--context-length", "300", "--prediction-length", "40"]);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(full.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["chronos_config"]["context_length"].as_u64(), Some(300), "raised as fit does");
    assert!(full.join("model.safetensors").is_file());
    forecast(full.to_str().unwrap(), None, &dir.join("full.csv"));

    let head = dir.join("head");
    finetune("head", &head, &[]);
    let names: Vec<String> =
        read_safetensors(&head.join("head.safetensors")).unwrap().into_iter().map(|t| t.name).collect();
    assert!(names.iter().all(|n| n.starts_with("output_patch_embedding.")) && names.len() == 6, "{names:?}");
    forecast(TINY, Some(&head), &dir.join("head.csv"));

    let qlora = dir.join("qlora");
    finetune("qlora", &qlora, &["--quantize", "int4", "--model", SMALL]);
    assert!(qlora.join("adapter_model.safetensors").is_file());
}

#[test]
fn bad_input_is_a_clear_error_and_leaves_no_output() {
    let dir = tmpdir("bad");
    let out = dir.join("out");
    let o = out.to_str().unwrap();
    let base = ["finetune", "--model", TINY, "--input", INPUT, "--mode", "lora", "--steps", "3", "--output", o];
    let with = |extra: &[&'static str]| -> Vec<&str> { base.iter().copied().chain(extra.iter().copied()).collect() };
    fails_with(&with(&["--prediction-length", "100", "--min-past", "100"]), "no series is long enough", &out);
    fails_with(&with(&["--prediction-length", "12", "--learning-rate", "0"]), "--learning-rate must be > 0", &out);
    fails_with(&with(&["--prediction-length", "12", "--learning-rate=-1e-5"]), "--learning-rate must be > 0", &out);
    let zero_steps: Vec<&str> =
        with(&["--prediction-length", "12"]).into_iter().map(|a| if a == "3" { "0" } else { a }).collect();
    fails_with(&zero_steps, "--steps must be at least 1", &out);
    fails_with(
        &with(&["--prediction-length", "12", "--lora-targets", "self_attention.z"]),
        "unknown LoRA target",
        &out,
    );
    fails_with(&with(&["--prediction-length", "12", "--learning-rate", "1e30"]), "training diverged at step", &out);
    let head_npz: Vec<&str> = with(&["--prediction-length", "12", "--format", "npz"])
        .into_iter()
        .map(|a| if a == "lora" { "head" } else { a })
        .collect();
    fails_with(&head_npz, "--format npz writes LoRA adapters", &out);
    fails_with(&with(&["--prediction-length", "12", "--format", "gguf"]), "unknown adapter format `gguf`", &out);

    // an adapter trained on tiny does not fit small
    let adapter = tmpdir("bad-adapter").join("adapter");
    finetune("lora", &adapter, &[]);
    let a = adapter.to_str().unwrap();
    fails_with(&["fuse", "--model", SMALL, "--adapter", a, "--output", o], "the adapter does not fit the model", &out);
    let pred = dir.join("pred.csv");
    let args = ["predict", "--model", SMALL, "--input", INPUT, "--prediction-length", "4", "--adapter", a];
    let out_pred = chronos2(&[&args[..], &["--output", pred.to_str().unwrap()]].concat());
    assert!(!out_pred.status.success() && String::from_utf8_lossy(&out_pred.stderr).contains("does not fit"));
    assert!(!pred.exists());
}

/// An existing --output is refused, unless --overwrite: then the new checkpoint replaces the old
/// one (a head over a LoRA adapter here) and other files stay.
#[test]
fn an_existing_output_is_refused_unless_overwrite() {
    let out = tmpdir("overwrite").join("out");
    finetune("lora", &out, &[]);
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let refused = chronos2(&finetune_args("head", &out, &[]));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("already exists") && stderr.contains("--overwrite"),
        "{stderr}"
    );
    assert!(out.join("adapter_model.safetensors").is_file(), "a refused run leaves the output as it was");
    ok(&chronos2(&finetune_args("head", &out, &["--overwrite"])));
    let mut names: Vec<String> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["head.safetensors", "head_config.json", "notes.txt"]);
    let parent = out.parent().unwrap();
    let staged: Vec<_> =
        std::fs::read_dir(parent).unwrap().filter_map(|e| e.ok()).filter(|e| e.path() != out).collect();
    assert!(staged.is_empty(), "no staging directory is left: {staged:?}");
}

// --backend: every mode trains on MLX when it is compiled in; without it, and for an unknown
// backend, a clear error and no output directory. That both backends compute the same losses
// and gradients is tested in `finetune_backends.rs`.

#[test]
fn an_unknown_backend_is_a_clear_error() {
    let out = tmpdir("unknown").join("out");
    let args = finetune_args("lora", &out, &["--backend", "tpu"]);
    fails_with(&args, "invalid value 'tpu' for '--backend <BACKEND>'", &out);
    fails_with(&args, "[possible values: cpu, mlx", &out);
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
    let dir = tmpdir("mlx");
    let lora = dir.join("lora");
    let log = ok(&chronos2(&finetune_args("lora", &lora, &["--backend", "mlx", "--validation", INPUT])));
    assert!(log.contains("lora fine-tuning: 4 steps") && log.contains("kept step"), "{log}");
    let tensors = read_safetensors(&lora.join("adapter_model.safetensors")).unwrap();
    assert_eq!(tensors.len(), 34, "2 blocks x 2 attentions x q,k,v,o + the head's output layer, A and B");
    assert!(tensors.iter().any(|t| t.name == "base_model.model.output_patch_embedding.output_layer.lora_B.weight"));
    assert_ne!(forecast(TINY, None, &dir.join("base.csv")), forecast(TINY, Some(&lora), &dir.join("lora.csv")));

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

/// Flags that would do nothing, a non-finite learning rate, a qlora that quantizes nothing and
/// validation columns that differ from training: refused before training, saying why.
#[test]
fn ignored_flags_and_mismatched_inputs_are_refused() {
    let dir = tmpdir("refused");
    let out = dir.join("out");
    fails_with(
        &finetune_args("lora", &out, &["--learning-rate", "inf"]),
        "--learning-rate must be finite, got inf",
        &out,
    );
    fails_with(
        &finetune_args("full", &out, &["--lora-targets", "self_attention.q"]),
        "--lora-targets only apply to --mode lora or qlora, not --mode full",
        &out,
    );
    fails_with(
        &finetune_args("head", &out, &["--lora-rank", "4", "--lora-alpha", "8"]),
        "--lora-rank, --lora-alpha only apply to --mode lora or qlora, not --mode head",
        &out,
    );
    fails_with(&finetune_args("qlora", &out, &[]), "nothing would be quantized; use --mode lora", &out);

    let inputs = tmpdir("refused-inputs");
    let validation = inputs.join("validation.csv");
    let text = std::fs::read_to_string(root().join(INPUT)).unwrap();
    let with_promo: String = text
        .lines()
        .enumerate()
        .map(|(i, l)| if i == 0 { format!("{l},promo\n") } else { format!("{l},{}\n", i % 2) })
        .collect();
    std::fs::write(&validation, with_promo).unwrap();
    fails_with(
        &finetune_args("lora", &out, &["--validation", validation.to_str().unwrap()]),
        r#"has the columns ["item_id", "promo", "target", "timestamp"] but --input examples/airpassengers.csv has ["item_id", "target", "timestamp"]"#,
        &out,
    );
}

/// An output that cannot be written fails before the first training step (the run asks for a
/// million steps: it must end at once), with a message about writing, naming the cause once.
#[test]
fn an_unwritable_output_fails_before_training() {
    let dir = tmpdir("unwritable");
    let file = dir.join("existfile");
    std::fs::write(&file, "x").unwrap();
    let missing = dir.join("missing").join("out");
    let under_file = file.join("out");
    let mut cases = vec![
        (
            missing.clone(),
            format!("cannot write {}: directory {} does not exist", missing.display(), dir.join("missing").display()),
        ),
        (
            under_file.clone(),
            format!("cannot write {}: {} is a file, not a directory", under_file.display(), file.display()),
        ),
    ];
    if cfg!(target_os = "linux") {
        cases.push((PathBuf::from("/proc/x"), "cannot write /proc/x: cannot create entries in /proc".to_string()));
    }
    for (out, message) in cases {
        let args = finetune_args("lora", &out, &["--steps", "1000000"]);
        let mut child = common::command(&args).stderr(std::process::Stdio::piped()).spawn().unwrap();
        let start = std::time::Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() > std::time::Duration::from_secs(120) {
                let _ = child.kill();
                panic!("{}: still running after 120 s: the output was not checked before training", out.display());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{}", out.display());
        assert!(stderr.contains(&message), "{}: expected `{message}` in: {stderr}", out.display());
        assert!(!stderr.contains("cannot read"), "{stderr}");
        assert!(stderr.matches("os error").count() <= 1, "the cause is printed once: {stderr}");
    }
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "only existfile is left");
}

//! `cargo xtask finetune-eval`: fine-tunes the bundled chronos2-mini in each mode on the
//! history of the 23 held-out real series of `eval/real-series/` (the repository's copy) and
//! compares WQL / MASE on their held-out truth with zero-shot, through the accuracy task's
//! protocol and metrics (each series forecast alone with its own horizon).
//!
//! Training: `fit` semantics (chronos2_core::train) on the candle CPU backend, one prediction
//! length for all series (`--prediction-length`, default 24), the context length, steps, batch
//! size and learning rates below (smaller than `fit`'s defaults so that a run fits a 2-core
//! machine).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use chronos2_candle_cpu::train::{CpuTrainModel, TrainSpec};
use chronos2_core::pipeline::{self, SeriesInput};
use chronos2_core::train::export::{self, Adapter, NamedTensor};
use chronos2_core::train::fit::validation_loss;
use chronos2_core::train::{fit, FinetuneMode, FitOptions, LoraConfig, TrainDataset, TrainModel};

use crate::accuracy::data::{self, Series};
use crate::accuracy::metrics::{self, SeriesMetrics};

/// Flags of `cargo xtask finetune-eval`: fine-tunes models/chronos2-mini on the history of
/// eval/real-series and reports WQL / MASE on the held-out truth against zero-shot (markdown on
/// stdout; --output writes it too).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Training steps per mode.
    #[arg(long, default_value_t = 100)]
    steps: usize,
    /// Rows per training batch.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Context length of training and evaluation.
    #[arg(long, default_value_t = 512)]
    context_length: usize,
    /// Forecast horizon.
    #[arg(long, default_value_t = 24)]
    prediction_length: usize,
    /// Modes to fine-tune, comma separated (lora, head, full, qlora).
    #[arg(long, value_delimiter = ',', default_value = "lora,head,full")]
    modes: Vec<String>,
    /// Learning rate of every mode (default: 1e-5 for full, 1e-4 for the others).
    #[arg(long, value_name = "X")]
    learning_rate: Option<f32>,
    /// Hold out the last `--prediction-length` points of each history as validation: train on the
    /// rest, validate every 100 steps and at the last step, keep the best step (as `fit` does with
    /// validation data) and report the validation loss of zero-shot and of the kept step. The
    /// held-out truth is never used for training or selection.
    #[arg(long)]
    validate: bool,
    /// Also write the markdown report here.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// A Python with chronos-forecasting 2.3.2: also runs the reference's `fit` (full and lora
    /// modes) with the same settings (scripts/reference_fit.py) and reports its rows beside ours.
    #[arg(long, value_name = "PYTHON")]
    reference_python: Option<PathBuf>,
}

fn learning_rate(mode: FinetuneMode, args: &Args) -> f32 {
    args.learning_rate.unwrap_or(match mode {
        FinetuneMode::Full => 1e-5,
        _ => 1e-4,
    })
}

/// Validation losses of a run with `--validate`.
struct Validation {
    zero_shot: f32,
    kept: f32,
    kept_step: usize,
}

struct Row {
    name: String,
    metrics: Vec<SeriesMetrics>,
    steps_per_second: f64,
    first_loss: f32,
    last_loss: f32,
    validation: Option<Validation>,
}

pub fn run(args: &Args) -> Result<()> {
    for (flag, value) in [
        ("--steps", args.steps),
        ("--batch-size", args.batch_size),
        ("--context-length", args.context_length),
        ("--prediction-length", args.prediction_length),
    ] {
        anyhow::ensure!(value >= 1, "{flag} must be at least 1 (got {value})");
    }
    if let Some(lr) = args.learning_rate {
        anyhow::ensure!(lr > 0.0 && lr.is_finite(), "--learning-rate must be positive (got {lr})");
    }
    let root = crate::repo_root();
    let base = root.join("models/chronos2-mini");
    let series = data::load(&root.join("eval/real-series"))?;
    let histories = |drop_last: usize| -> Result<_> {
        let items: Vec<SeriesInput> = series
            .iter()
            .map(|s| {
                let kept = s.history.len().saturating_sub(drop_last);
                SeriesInput::univariate(s.history[..kept].iter().map(|&v| v as f32).collect())
            })
            .collect();
        Ok(pipeline::prepare(&items, args.prediction_length)?)
    };
    let dataset = |tasks| {
        TrainDataset::new(
            tasks,
            args.context_length,
            args.prediction_length,
            args.prediction_length,
            args.batch_size,
            16,
        )
    };
    // With --validate the last window of every history is validation only: training stops before it.
    let tasks = histories(if args.validate { args.prediction_length } else { 0 })?;
    let validation = if args.validate { Some(dataset(histories(0)?)?.validation_batches()) } else { None };
    let zero_shot = evaluate(&base, &series)?;
    let mut rows = vec![Row {
        name: "zero-shot".into(),
        metrics: zero_shot,
        steps_per_second: f64::NAN,
        first_loss: f32::NAN,
        last_loss: f32::NAN,
        validation: None,
    }];
    for name in &args.modes {
        let mode = FinetuneMode::parse(name, None)?;
        let lr = learning_rate(mode, args);
        eprintln!("finetune-eval: {name}, {} steps, lr {lr}", args.steps);
        let spec = TrainSpec { mode, lora: LoraConfig::default(), seed: 0 };
        let mut model = CpuTrainModel::load_dir(&base, spec)?;
        let zero_shot_validation = validation.as_deref().map(|v| validation_loss(&model, v)).transpose()?;
        let train = dataset(tasks.clone())?;
        let options = FitOptions { steps: args.steps, learning_rate: lr, seed: 0 };
        let start = Instant::now();
        let outcome = fit(&mut model, &train, validation.as_deref(), &options, &mut |r| {
            if r.step % 10 == 0 {
                eprintln!("  step {}: loss {:.4}, {:.2} steps/s", r.step, r.train_loss, r.steps_per_second)
            }
        })?;
        let seconds = start.elapsed().as_secs_f64();
        let tensors: Vec<NamedTensor> = model
            .params()
            .iter()
            .zip(model.parameter_values()?)
            .map(|(p, data)| NamedTensor { name: p.name.clone(), shape: p.var.as_tensor().dims().to_vec(), data })
            .collect();
        let dir = std::env::temp_dir().join(format!("chronos2-finetune-eval-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let written = write_model(&dir, &base, mode, &tensors, args);
        let metrics = written.and_then(|()| evaluate(&dir.join("model"), &series));
        let _ = std::fs::remove_dir_all(&dir);
        rows.push(Row {
            name: name.clone(),
            metrics: metrics?,
            steps_per_second: args.steps as f64 / seconds,
            first_loss: outcome.train_losses[0],
            last_loss: *outcome.train_losses.last().expect("steps >= 1"),
            validation: zero_shot_validation.map(|zero_shot| Validation {
                zero_shot,
                kept: outcome.validation_losses.iter().find(|(s, _)| *s == outcome.kept_step).map_or(f32::NAN, |v| v.1),
                kept_step: outcome.kept_step,
            }),
        });
    }
    if let Some(python) = &args.reference_python {
        for name in args.modes.iter().filter(|m| matches!(m.as_str(), "lora" | "full")) {
            rows.push(reference_row(python, &base, name, &series, args)?);
        }
    }
    let doc = render(&rows, &series, args);
    print!("{doc}");
    if let Some(out) = &args.output {
        std::fs::write(root.join(out), &doc).with_context(|| format!("cannot write {}", out.display()))?;
    }
    Ok(())
}

/// The reference's `fit` in `mode` with the same settings, evaluated as our rows are (its LoRA
/// checkpoint fused into the base by us).
fn reference_row(python: &Path, base: &Path, mode: &str, series: &[Series], args: &Args) -> Result<Row> {
    let lr = learning_rate(FinetuneMode::parse(mode, None)?, args);
    eprintln!("finetune-eval: reference fit, {mode}, {} steps, lr {lr}", args.steps);
    let dir = std::env::temp_dir().join(format!("chronos2-finetune-eval-reference-{mode}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let root = crate::repo_root();
    let out = std::process::Command::new(python)
        .arg(root.join("scripts/reference_fit.py"))
        .args(["--model", &base.display().to_string(), "--mode", mode])
        .args(["--steps", &args.steps.to_string(), "--batch-size", &args.batch_size.to_string()])
        .args(["--context-length", &args.context_length.to_string()])
        .args(["--prediction-length", &args.prediction_length.to_string(), "--learning-rate", &lr.to_string()])
        .args(["--input", &root.join("eval/real-series/context.csv").display().to_string()])
        .args(["--output", &dir.display().to_string()])
        .args(args.validate.then_some("--validate"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    anyhow::ensure!(out.status.success(), "the reference's fit failed ({})", out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).context("no result line from reference_fit.py")?;
    let result: serde_json::Value = serde_json::from_str(line)?;
    let checkpoint = PathBuf::from(result["checkpoint"].as_str().context("no checkpoint")?);
    let metrics = if mode == "lora" {
        let fused = dir.join("fused");
        let adapter = Adapter::load(&checkpoint)?;
        export::write_staged(&fused, |d| export::write_fused(d, base, &adapter))?;
        evaluate(&fused, series)
    } else {
        evaluate(&checkpoint, series)
    };
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Row {
        name: format!("reference fit, {mode}"),
        metrics: metrics?,
        steps_per_second: result["steps_per_second"].as_f64().unwrap_or(f64::NAN),
        first_loss: f32::NAN,
        last_loss: f32::NAN,
        validation: None,
    })
}

/// The fine-tuned model as a full model directory `dir/model` (adapters fused into the base).
fn write_model(dir: &Path, base: &Path, mode: FinetuneMode, tensors: &[NamedTensor], args: &Args) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let model = dir.join("model");
    match mode {
        FinetuneMode::Full => export::write_staged(&model, |d| {
            export::write_full_model(d, base, tensors, args.context_length, args.prediction_length)
        })?,
        FinetuneMode::Head => {
            let adapter = dir.join("adapter");
            export::write_staged(&adapter, |d| export::write_head(d, "chronos2-mini", tensors))?;
            let a = Adapter::load(&adapter)?;
            export::write_staged(&model, |d| export::write_fused(d, base, &a))?;
        }
        FinetuneMode::Lora | FinetuneMode::Qlora { .. } => {
            let adapter = dir.join("adapter");
            export::write_staged(&adapter, |d| {
                export::write_peft_adapter(d, &LoraConfig::default(), "chronos2-mini", tensors)
            })?;
            let a = Adapter::load(&adapter)?;
            export::write_staged(&model, |d| export::write_fused(d, base, &a))?;
        }
    }
    Ok(())
}

fn evaluate(model_dir: &Path, series: &[Series]) -> Result<Vec<SeriesMetrics>> {
    let model = chronos2_candle_cpu::load(model_dir)?;
    series
        .iter()
        .map(|s| {
            let q = crate::accuracy::forecast(model.as_ref(), s)?;
            Ok(metrics::series_metrics(&s.history, &s.truth, s.season, &q))
        })
        .collect()
}

fn render(rows: &[Row], series: &[Series], args: &Args) -> String {
    let zero = &rows[0].metrics;
    let col = |m: &[SeriesMetrics], f: fn(&SeriesMetrics) -> f64| m.iter().map(f).collect::<Vec<f64>>();
    let lr = match args.learning_rate {
        Some(lr) => format!("lr {lr}"),
        None => "lr 1e-5 full, 1e-4 lora/qlora/head".into(),
    };
    let validation = if args.validate {
        " Trained on each history without its last window, which is the validation set (the best step by \
         validation loss is kept)."
    } else {
        ""
    };
    let (val_head, val_rule) =
        if args.validate { (" validation loss: zero-shot → kept (step) |", "---|") } else { ("", "") };
    let mut out = format!(
        "Fine-tuning chronos2-mini on the history of {} real series (eval/real-series), evaluated on the \
         held-out truth. {} steps, batch {} rows, context {}, prediction length {}; {lr}; candle CPU.{validation}\n\n\
         | mode | mean WQL | mean MASE | gmean WQL vs zero-shot | gmean MASE vs zero-shot | series better (WQL) \
         | train loss first → last | steps/s |{val_head}\n|---|---|---|---|---|---|---|---|{val_rule}\n",
        series.len(),
        args.steps,
        args.batch_size,
        args.context_length,
        args.prediction_length
    );
    for r in rows {
        let wql = col(&r.metrics, |m| m.wql);
        let mase = col(&r.metrics, |m| m.mase);
        let val = match (&r.validation, args.validate) {
            (Some(v), _) => format!(" {:.4} → {:.4} ({}) |", v.zero_shot, v.kept, v.kept_step),
            (None, true) => " – |".into(),
            (None, false) => String::new(),
        };
        out += &format!(
            "| {} | {:.4} | {:.3} | {:.3} | {:.3} | {}/{} | {:.3} → {:.3} | {:.2} |{val}\n",
            r.name,
            metrics::mean(&wql),
            metrics::mean(&mase),
            metrics::gmean_ratio(&wql, &col(zero, |m| m.wql)),
            metrics::gmean_ratio(&mase, &col(zero, |m| m.mase)),
            metrics::wins(&wql, &col(zero, |m| m.wql)),
            series.len(),
            r.first_loss,
            r.last_loss,
            r.steps_per_second
        );
    }
    out
}

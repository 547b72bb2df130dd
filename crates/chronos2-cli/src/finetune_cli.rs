//! `chronos2 finetune`, `chronos2 fuse` and the `--adapter` option of predict / embed.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;

use chronos2::backend::{Backend, BackendKind};
use chronos2::chronos2_core::train::{qlora_bits, FinetuneMode, LoraConfig, StepReport};
use chronos2::data::{self, Frame};
use chronos2::finetune::{self, AdapterFormat, FinetuneOptions};
use chronos2::Columns;

pub const FINETUNE_ABOUT: &str = "\
Fine-tune the model on a long-format table, as `Chronos2Pipeline.fit` of the reference.

Training samples a series uniformly, then a cut point uniformly in [min_past, len - H]; the context
is the last --context-length points before it. Batches hold whole series until --batch-size rows
(targets + covariates). AdamW (betas 0.9/0.999, eps 1e-8, no weight decay, gradient norm clipped
to 1), linear learning-rate decay without warmup. With --validation, the validation loss (last
window of each series) is computed every 100 steps and at the end, and the best step is kept.

Modes: full (every parameter; writes config.json + model.safetensors), lora (LoRA adapters on a
float base; writes a PEFT adapter: adapter_config.json + adapter_model.safetensors, or with
--format npz an mlx-lm-style adapters.npz + adapter_config.json), qlora (LoRA on an int8/int4
group-64 quantized base, adapters in fp32; writes a LoRA adapter as lora does), head (only
output_patch_embedding; writes head.safetensors + head_config.json). The output directory is
written to a temporary directory and renamed at the end.";

pub const FINETUNE_EXAMPLES: &str = "\
Examples:
  chronos2 finetune --input train.csv --prediction-length 24 --mode lora --steps 200 --output my-adapter
  chronos2 finetune --input train.csv --validation val.csv --prediction-length 12 --mode full \\
      --learning-rate 1e-5 --batch-size 64 --output my-model
  chronos2 finetune --input train.csv --prediction-length 24 --mode lora --format npz --output my-npz-adapter
  chronos2 predict --input train.csv --prediction-length 24 --adapter my-adapter";

#[derive(Args, Debug)]
pub struct FinetuneArgs {
    /// Base model directory or Hugging Face id. Default: bundled chronos2-mini.
    #[arg(long, value_name = "DIR|HF_ID")]
    model: Option<String>,
    /// Training table in long format (.csv or .parquet).
    #[arg(long, value_name = "FILE")]
    input: PathBuf,
    /// Marks known-future covariates: the covariate columns it holds (H rows per item, as for predict).
    #[arg(long, value_name = "FILE")]
    future: Option<PathBuf>,
    /// Validation table (its last window per series is evaluated; the best step is kept).
    #[arg(long, value_name = "FILE")]
    validation: Option<PathBuf>,
    /// Forecast horizon the model is trained for: the steps after each cut scored by the loss.
    #[arg(long, value_name = "H")]
    prediction_length: usize,
    /// full, lora, qlora or head.
    #[arg(long, value_name = "full|lora|qlora|head")]
    mode: String,
    /// Base quantization for --mode qlora (default int8).
    #[arg(long, value_name = "int8|int4")]
    quantize: Option<String>,
    /// Optimizer steps (fit's default).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    steps: usize,
    /// Default: 1e-6 for full (fit's default), 1e-5 for lora, qlora and head.
    #[arg(long, value_name = "X")]
    learning_rate: Option<f32>,
    /// Rows (targets + covariates) per batch; whole series, so a batch can overshoot.
    #[arg(long, value_name = "N", default_value_t = 256)]
    batch_size: usize,
    /// Default: the model's context length.
    #[arg(long, value_name = "N")]
    context_length: Option<usize>,
    /// Minimum context points before a cut (default: the prediction length).
    #[arg(long, value_name = "N")]
    min_past: Option<usize>,
    /// Rank r of the LoRA matrices (--mode lora or qlora). Default 8.
    #[arg(long, value_name = "R")]
    lora_rank: Option<usize>,
    /// LoRA alpha: the adapter's product is scaled by alpha / r (--mode lora or qlora). Default 16.
    #[arg(long, value_name = "A")]
    lora_alpha: Option<f32>,
    /// Module name suffixes, comma separated. Default: self_attention.q,self_attention.v,
    /// self_attention.k,self_attention.o,output_patch_embedding.output_layer.
    #[arg(long, value_name = "a,b,...", value_delimiter = ',')]
    lora_targets: Option<Vec<String>>,
    /// Seed of the sampler, the LoRA initialisation and the dropout masks. Training steps drop
    /// out at the model config's dropout_rate, as fit does (0 in chronos2-mini, 0.1 in
    /// amazon/chronos-2); validation never drops.
    #[arg(long, value_name = "S", default_value_t = 0)]
    seed: u64,
    /// Layout of a LoRA adapter: peft (adapter_model.safetensors, loadable by the reference) or
    /// npz (MLX style: adapters.npz with mlx-lm's `{module}.lora_a` (in, r) / `lora_b` (r, out)).
    #[arg(long, value_name = "peft|npz", default_value = "peft")]
    format: String,
    /// The backend that trains (one of the backends `chronos2 info` lists). Default: the first
    /// of that list.
    #[arg(long, value_parser = crate::backend_kind_arg(), ignore_case = true)]
    backend: Option<BackendKind>,
    /// Column naming the series, as for predict.
    #[arg(long, value_name = "NAME", default_value = "item_id")]
    id_column: String,
    /// Column of the timestamps, as for predict.
    #[arg(long, value_name = "NAME", default_value = "timestamp")]
    timestamp_column: String,
    /// Target column(s), as for predict; the other columns are covariates.
    #[arg(long, value_name = "NAME[,NAME...]", default_value = "target", value_delimiter = ',')]
    target: Vec<String>,
    /// Output directory (must not exist, unless --overwrite).
    #[arg(long, value_name = "DIR")]
    output: PathBuf,
    /// Write over an existing --output directory, as the Python fit (and the reference's
    /// save_pretrained) does: its checkpoint files are replaced once the new ones are written;
    /// its other files stay.
    #[arg(long)]
    overwrite: bool,
}

#[derive(Args, Debug)]
pub struct FuseArgs {
    /// Base model directory or Hugging Face id. Default: bundled chronos2-mini.
    #[arg(long, value_name = "DIR|HF_ID")]
    model: Option<String>,
    /// Adapter: a PEFT LoRA directory (adapter_config.json + adapter_model.safetensors), an
    /// MLX-style LoRA (a directory with adapters.npz, or the .npz file) or a head directory.
    #[arg(long, value_name = "DIR|FILE.npz")]
    adapter: PathBuf,
    /// Output model directory (config.json + model.safetensors; must not exist).
    #[arg(long, value_name = "DIR")]
    output: PathBuf,
}

fn read(path: &Path, what: &str) -> Result<Frame> {
    if !path.exists() {
        bail!("{what} file {} does not exist", path.display());
    }
    Frame::read(path).map_err(anyhow::Error::from)
}

/// A table's column names, sorted.
fn column_names(frame: &Frame) -> Vec<&str> {
    let mut names: Vec<&str> = frame.columns.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    names
}

fn parse_mode(args: &FinetuneArgs) -> Result<FinetuneMode> {
    let bits = match args.quantize.as_deref() {
        None => None,
        Some(name) => {
            Some(qlora_bits(name).ok_or_else(|| anyhow::anyhow!("--quantize {name}: expected int8 or int4"))?)
        }
    };
    Ok(FinetuneMode::parse(&args.mode, bits)?)
}

pub fn finetune(args: FinetuneArgs) -> Result<()> {
    let mode = parse_mode(&args)?;
    let format = AdapterFormat::parse(&args.format)?;
    if format == AdapterFormat::Npz && !mode.uses_lora() {
        bail!("--format npz writes LoRA adapters (--mode lora or qlora), not --mode {}", mode.name());
    }
    if args.prediction_length == 0 {
        bail!("--prediction-length must be at least 1");
    }
    if args.steps == 0 {
        bail!("--steps must be at least 1");
    }
    if let Some(lr) = args.learning_rate {
        if !lr.is_finite() {
            bail!("--learning-rate must be finite, got {lr}");
        }
        if lr <= 0.0 {
            bail!("--learning-rate must be > 0, got {lr}");
        }
    }
    if !mode.uses_lora() {
        let given: Vec<&str> = [
            (args.lora_rank.is_some(), "--lora-rank"),
            (args.lora_alpha.is_some(), "--lora-alpha"),
            (args.lora_targets.is_some(), "--lora-targets"),
        ]
        .iter()
        .filter(|(set, _)| *set)
        .map(|(_, flag)| *flag)
        .collect();
        if !given.is_empty() {
            bail!("{} only apply to --mode lora or qlora, not --mode {}", given.join(", "), mode.name());
        }
    }
    if args.output.exists() && !args.overwrite {
        bail!("--output {} already exists; choose a new directory, or pass --overwrite", args.output.display());
    }
    let backend = args.backend.unwrap_or(BackendKind::DEFAULT);
    chronos2::registry::check_usable(backend)?;
    let cols = Columns {
        id: args.id_column.clone(),
        timestamp: args.timestamp_column.clone(),
        targets: args.target.iter().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect(),
    };
    let df = read(&args.input, "input")?;
    let future = args.future.as_deref().map(|p| read(p, "future")).transpose()?;
    // Training needs no forecast timestamps: without --future (whose timestamps are checked
    // against the inferred frequency) items of different frequencies are fine.
    let freq = match future {
        Some(_) => None,
        None => Some("D".parse::<chronos2::Freq>().map_err(anyhow::Error::msg)?),
    };
    let train = data::prepare_predict(&df, future.as_ref(), &cols, args.prediction_length, freq)?;
    let validation = match &args.validation {
        Some(p) => {
            let v = read(p, "validation")?;
            let (train_columns, validation_columns) = (column_names(&df), column_names(&v));
            if train_columns != validation_columns {
                bail!(
                    "--validation {} has the columns {validation_columns:?} but --input {} has {train_columns:?}: \
                     validation must use the same targets and covariates as training",
                    p.display(),
                    args.input.display()
                );
            }
            Some(data::prepare_predict(&v, future.as_ref(), &cols, args.prediction_length, freq)?)
        }
        None => None,
    };
    let mut options = FinetuneOptions::new(args.prediction_length, mode);
    options.steps = args.steps;
    options.learning_rate = args.learning_rate;
    options.batch_size = args.batch_size;
    options.context_length = args.context_length;
    options.min_past = args.min_past;
    options.seed = args.seed;
    options.format = format;
    options.backend = backend;
    options.overwrite = args.overwrite;
    let default_lora = LoraConfig::default();
    options.lora = LoraConfig {
        rank: args.lora_rank.unwrap_or(default_lora.rank),
        alpha: args.lora_alpha.unwrap_or(default_lora.alpha),
        targets: args.lora_targets.clone().unwrap_or(default_lora.targets),
    };
    let bar = StepBar::new(args.steps);
    // Not loaded for inference first: only the training copy of the weights is held.
    let report = finetune::finetune_model(
        args.model.as_deref(),
        Backend::Forced(BackendKind::DEFAULT),
        chronos2::LoadOptions::default(),
        &train.inputs,
        validation.as_ref().map(|v| v.inputs.as_slice()),
        &options,
        &args.output,
        &mut |r| bar.update(r),
    );
    bar.finish();
    let report = report?;
    if report.dropped > 0 {
        eprintln!(
            "dropped {} series shorter than min_past + prediction_length ({} points)",
            report.dropped,
            options.min_past.unwrap_or(args.prediction_length) + args.prediction_length
        );
    }
    let last = report.train_losses.last().copied().unwrap_or(f32::NAN);
    eprintln!(
        "{} fine-tuning: {} steps, {} trainable parameters, last train loss {last:.4}{}; wrote {}",
        mode.name(),
        report.train_losses.len(),
        report.trainable_params,
        report
            .validation_losses
            .iter()
            .find(|(s, _)| *s == report.kept_step)
            .map(|(s, v)| format!(", kept step {s} (validation loss {v:.4})"))
            .unwrap_or_default(),
        report.output.display()
    );
    Ok(())
}

pub fn fuse(args: FuseArgs) -> Result<()> {
    finetune::fuse(args.model.as_deref(), &args.adapter, &args.output)
        .with_context(|| format!("cannot fuse {} into the model", args.adapter.display()))?;
    eprintln!("wrote {}", args.output.display());
    Ok(())
}

/// Loads the model of predict / embed, with `--adapter` fused in when given.
pub fn load_model(
    model: Option<&str>,
    adapter: Option<&Path>,
    backend: Option<Backend>,
    options: chronos2::LoadOptions,
) -> Result<chronos2::Chronos2> {
    let backend = Backend::from_flag_or_env(backend)?;
    finetune::load_with_adapter(model, adapter, backend, options).with_context(|| match adapter {
        Some(a) => format!("cannot load the model with adapter {}", a.display()),
        None => format!("cannot load model {}", model.unwrap_or("(bundled)")),
    })
}

/// The training progress: step, train loss, validation loss, steps/s (a bar on a terminal, a
/// line every 100 steps otherwise).
struct StepBar {
    bar: Option<indicatif::ProgressBar>,
}

impl StepBar {
    fn new(steps: usize) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(steps as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template("step {pos}/{len} [{bar:30}] {msg}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar
        });
        StepBar { bar }
    }

    fn update(&self, r: &StepReport) {
        let val = r.validation_loss.map_or("-".to_string(), |v| format!("{v:.4}"));
        let msg = format!("train loss {:.4}, val loss {val}, {:.2} steps/s", r.train_loss, r.steps_per_second);
        match &self.bar {
            Some(bar) => {
                bar.set_position(r.step as u64);
                bar.set_message(msg);
            }
            None if r.step.is_multiple_of(100) || r.step == r.steps => eprintln!("step {}/{}: {msg}", r.step, r.steps),
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

//! The `chronos2` command: forecasts and embeddings of long-format CSV / Parquet tables.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::LazyLock;

use anyhow::{bail, Context, Result};
use clap::builder::{PossibleValue, PossibleValuesParser};
use clap::{Args, Parser, Subcommand};

use chronos2::backend::{Backend, BackendKind, BACKEND_ENV};
use chronos2::bundled::{bundled_model_cache_dir, BUNDLED_MODEL_NAME};
use chronos2::data::{self, Format, Frame};
use chronos2::{load_args, Caller, Chronos2, Columns, EmbedDfOptions, PredictDfOptions};

/// The largest --batch-size used: memory grows with the rows of one model call, and results
/// without --cross-learning do not depend on the batch size.
const MAX_BATCH_ROWS: usize = 1024;

/// How output files are written (part of the long help of `predict` and `embed`).
macro_rules! output_files_help {
    () => {
        "\n\nOutput files: the result is written to a temporary file in the directory of --output and renamed \
over it once complete, so a failed run leaves no partial file and does not clobber an existing one. \
An existing output keeps its permissions; a symbolic link is written through (its target gets the new \
content); a file with several hard links is refused, as is an --output that is the input or future \
file. Whether the directory is writable is checked before any work. Ctrl-C (SIGINT) stops the run at \
once: before the rename the existing output is untouched (a hidden .NAME.PID.N.tmp file may remain \
next to it), after the rename the new file is complete."
    };
}

mod calibrate_cli;
mod finetune_cli;
mod signals;

/// `--backend` values: every backend request of the registry (`auto`, then each backend).
fn backend_arg() -> impl clap::builder::TypedValueParser<Value = Backend> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(chronos2::backend::REQUESTS.map(Backend::name))
        .map(|name| name.parse::<Backend>().expect("a possible value is a backend request"))
}

/// Backend values (without `auto`): every backend of the registry.
fn backend_kind_arg() -> impl clap::builder::TypedValueParser<Value = BackendKind> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(BackendKind::ALL.map(BackendKind::name))
        .map(|name| BackendKind::from_name(&name.to_ascii_lowercase()).expect("a possible value is a backend"))
}

const ABOUT: &str = "Chronos-2 time-series forecasting (a Rust port of amazon/chronos-2)";

const LONG_ABOUT: &str = "\
Chronos-2 time-series forecasting (a Rust port of amazon/chronos-2).

Input tables are in long format: one row per (item, timestamp) with an id column, a timestamp
column, one or more numeric target columns, and optionally covariate columns (any other column).
CSV and Parquet files are read; results are written as CSV, Parquet or JSON.

Without --model the bundled chronos2-mini model is used: it is extracted to a private cache directory
($XDG_CACHE_HOME/chronos2, else ~/.cache/chronos2) and compared with the embedded copy on every run.";

const MAIN_EXAMPLES: &str = "\
Examples:
  chronos2 predict --input examples/airpassengers.csv --prediction-length 12
  chronos2 predict --model amazon/chronos-2 --input sales.parquet --future promo.csv \\
      --id-column store --timestamp-column date --target sales --prediction-length 14 \\
      --quantiles 0.05,0.5,0.95 --output forecast.parquet
  chronos2 embed --input examples/airpassengers.csv --pooling mean_context --output emb.json
  chronos2 info";

#[derive(Parser, Debug)]
#[command(name = "chronos2", version, about = ABOUT, long_about = LONG_ABOUT, after_help = MAIN_EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Forecast every item of a long-format table (like `Chronos2Pipeline.predict_df`).
    #[command(
        long_about = concat!("Forecast every item of a long-format table, as `Chronos2Pipeline.predict_df` of the reference.\n\n\
Every column other than the id, timestamp and target columns is a covariate: numeric columns are used\n\
as numbers, other columns as categories. Covariates that also appear in --future are known in the\n\
future (their future values are used); the others are past-only.\n\n\
The output has the columns <id>, <timestamp>, target_name, predictions (the median), and one column\n\
per quantile level (0.1, 0.2, ...), with rows ordered by item (first appearance), target and step.\n\n\
Timestamps with a time zone (a tz-aware Parquet column, or ISO offsets in a CSV) keep it: forecast\n\
timestamps are written in the input's zone. Daily and longer frequencies are inferred and stepped in\n\
local calendar time, shorter ones in absolute time, as pandas does for tz-aware indexes.\n\n\
Values that are infinite or beyond the float32 range are refused (the item and row are named);\n\
leave a cell empty to mark a value missing.", output_files_help!()),
        after_help = "Examples:\n  \
chronos2 predict --input examples/airpassengers.csv --prediction-length 12\n  \
chronos2 predict --input examples/airpassengers.csv --prediction-length 24 --quantiles 0.05,0.5,0.95 --output forecast.csv\n  \
chronos2 predict --model amazon/chronos-2 --input sales.parquet --future future.csv --id-column store \\\n      \
--timestamp-column date --target sales,returns --prediction-length 14 --freq D --output forecast.parquet"
    )]
    Predict(PredictArgs),
    /// Encoder embeddings of every (item, target) of a long-format table.
    #[command(
        long_about = concat!("Encoder embeddings of every (item, target) of a long-format table, as `Chronos2Pipeline.embed`.\n\n\
Other columns than the id, timestamp and targets are used as past covariates. The JSON output is\n\
{\"pooling\": ..., \"embeddings\": [{\"item_id\", \"target_name\", \"loc\", \"scale\", \"embedding\"}, ...]}:\n\
loc/scale are the instance-normalisation statistics of the target; `embedding` is one vector of\n\
d_model values, or (with --pooling all) a list of N+2 vectors: the N context patches, [REG] and\n\
one future patch. Parquet output holds the same fields, one row per entry.", output_files_help!()),
        after_help = "Examples:\n  \
chronos2 embed --input examples/airpassengers.csv --output embeddings.json\n  \
chronos2 embed --input data.parquet --target load --pooling all --output embeddings.parquet"
    )]
    Embed(EmbedArgs),
    /// Show the backends compiled in and usable, the dispatcher's profile, and (with --model or
    /// --quantize) the model's memory footprint.
    #[command(after_help = "Examples:\n  chronos2 info\n  chronos2 info --model amazon/chronos-2 --quantize int8")]
    Info(InfoArgs),
    /// Fine-tune the model (full, LoRA, QLoRA or head-only), as `Chronos2Pipeline.fit`.
    #[command(long_about = finetune_cli::FINETUNE_ABOUT, after_help = finetune_cli::FINETUNE_EXAMPLES)]
    Finetune(finetune_cli::FinetuneArgs),
    /// Merge a LoRA adapter (or a trained head) into its base model.
    #[command(
        after_help = "Examples:\n  chronos2 fuse --model amazon/chronos-2 --adapter my-adapter --output my-model"
    )]
    Fuse(finetune_cli::FuseArgs),
    /// Measure this machine for `--backend auto` and write the profile it reads.
    #[command(
        long_about = calibrate_cli::CALIBRATE_ABOUT,
        after_help = "Examples:\n  chronos2 calibrate\n  chronos2 calibrate --full --model amazon/chronos-2"
    )]
    Calibrate(calibrate_cli::CalibrateArgs),
}

#[derive(Args, Debug)]
struct InfoArgs {
    /// Model whose footprint to report (directory or Hugging Face id; default: bundled chronos2-mini).
    #[arg(long, value_name = "DIR|HF_ID")]
    model: Option<String>,

    /// Backend to load the model on for the footprint (auto or a backend listed above).
    #[arg(long, value_parser = backend_arg(), ignore_case = true)]
    backend: Option<Backend>,

    #[command(flatten)]
    speed: SpeedArgs,
}

#[derive(Args, Debug)]
struct CommonArgs {
    /// Model directory (config.json + model.safetensors) or Hugging Face id (e.g. amazon/chronos-2,
    /// read from the local HF cache, downloaded unless HF_HUB_OFFLINE=1). Default: bundled chronos2-mini.
    #[arg(long, value_name = "DIR|HF_ID")]
    model: Option<String>,

    /// Input table in long format (.csv or .parquet).
    #[arg(long, value_name = "FILE")]
    input: PathBuf,

    /// Name of the column identifying the series.
    #[arg(long, value_name = "NAME", default_value = "item_id")]
    id_column: String,

    /// Name of the timestamp column (e.g. 2024-01-03, 2024-01-03 12:00:00, 2024-01-03T12:00:00).
    #[arg(long, value_name = "NAME", default_value = "timestamp")]
    timestamp_column: String,

    /// Target column(s), comma separated (e.g. --target sales,returns).
    #[arg(long, value_name = "NAME[,NAME...]", default_value = "target", value_delimiter = ',')]
    target: Vec<String>,

    /// Rows (targets + covariates) per model call; items are never split. Values above 1024 are
    /// capped at 1024 to bound memory (said on stderr).
    #[arg(long, value_name = "N", default_value_t = 256, allow_hyphen_values = true)]
    batch_size: i64,

    /// Context steps kept per item (default and maximum: the model's context length).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    context_length: Option<i64>,

    /// Backend: auto (per call, the backend expected to be fastest for its batch and context
    /// length, from the crossover profile) or a backend of `chronos2 info`. Default:
    /// $CHRONOS2_BACKEND, else auto.
    #[arg(long, value_parser = backend_arg(), ignore_case = true)]
    backend: Option<Backend>,

    /// Adapter applied to the model: a PEFT LoRA directory (adapter_config.json +
    /// adapter_model.safetensors, as `chronos2 finetune` or peft write it) or a trained head.
    #[arg(long, value_name = "DIR")]
    adapter: Option<PathBuf>,

    #[command(flatten)]
    speed: SpeedArgs,
}

/// Values of `--quantize`, `--dtype` or `--pooling`: the library's names, each with its aliases.
fn named_arg<T: 'static>(names: &'static [(&'static str, &'static [&'static str], T)]) -> PossibleValuesParser {
    PossibleValuesParser::new(names.iter().map(|(name, aliases, _)| PossibleValue::new(*name).aliases(aliases.iter())))
}

/// The default of `--quantiles`: the reference's levels.
static DEFAULT_QUANTILES: LazyLock<String> =
    LazyLock::new(|| chronos2::DEFAULT_QUANTILE_LEVELS.map(|q| q.to_string()).join(","));

#[derive(Args, Debug)]
struct SpeedArgs {
    /// Quantization of the linear layers: int8 or int4 (weight-only, group size 64, MLX's affine
    /// scheme; smaller and faster for small batches, see docs/accuracy.md for the accuracy cost),
    /// or w8a8 (int8 weights and activations). A backend that cannot run it is an error.
    #[arg(long, value_parser = named_arg(&load_args::QUANTIZE_NAMES), ignore_case = true)]
    quantize: Option<String>,

    /// Float type of the linear layers: fp32 (default) or bf16 (weights in bf16, fp32
    /// accumulation). Not combined with --quantize.
    #[arg(long, value_parser = named_arg(&load_args::DTYPE_NAMES), ignore_case = true)]
    dtype: Option<String>,

    /// Compile the forward graph (cached per input shape), on backends that compile their forward
    /// (`chronos2 info`).
    #[arg(long)]
    compile: bool,
}

impl SpeedArgs {
    fn load_options(&self) -> Result<chronos2::LoadOptions> {
        let precision = load_args::load_precision(Caller::Cli, self.quantize.as_deref(), self.dtype.as_deref())?;
        Ok(chronos2::LoadOptions { precision, compile: self.compile })
    }
}

#[derive(Args, Debug)]
struct PredictArgs {
    #[command(flatten)]
    common: CommonArgs,

    /// Known future covariate values: id and timestamp columns plus covariate columns of the input,
    /// exactly --prediction-length rows per item at the forecast timestamps.
    #[arg(long, value_name = "FILE")]
    future: Option<PathBuf>,

    /// Number of steps to forecast per item.
    #[arg(long, value_name = "H", allow_hyphen_values = true)]
    prediction_length: i64,

    /// Quantile levels, comma separated, or `all` for the model's 21 levels (0.01, 0.05, ..., 0.99).
    /// A level given twice is kept once, at its first place.
    #[arg(
        long,
        value_name = "0.1,0.2,...|all",
        default_value = DEFAULT_QUANTILES.as_str(),
        allow_hyphen_values = true
    )]
    quantiles: String,

    /// Forecast all items of a batch jointly (results then depend on --batch-size).
    #[arg(long)]
    cross_learning: bool,

    /// Frequency of the forecast timestamps as a pandas alias (h, D, B, W, W-MON, MS, ME, QS, QE,
    /// YS, YE, 15min, 30s, ...). Default: inferred from the timestamps.
    #[arg(long, value_name = "FREQ")]
    freq: Option<String>,

    /// Output file (.csv, .parquet or .json records). Default: CSV on standard output.
    /// How an existing file is replaced: see "Output files" in --help.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,

    /// Print (on stderr) which backend runs the forecast and why.
    #[arg(long)]
    explain_backend: bool,
}

#[derive(Args, Debug)]
struct EmbedArgs {
    #[command(flatten)]
    common: CommonArgs,

    /// How the hidden states of a series are reduced: reg_token (the [REG] token), mean_context
    /// (mean over observed context patches), last_context_patch, or all (no pooling).
    #[arg(long, value_parser = named_arg(&data::POOLING_NAMES), ignore_case = true,
          default_value = data::pooling_name(data::DEFAULT_POOLING))]
    pooling: String,

    /// Output file (.json or .parquet). How an existing file is replaced: see "Output files" in --help.
    #[arg(long, value_name = "FILE")]
    output: PathBuf,
}

/// Log lines on stderr, at the level named by `CHRONOS2_LOG` (error, warn, info, debug, trace).
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            eprintln!("[{}] {}", record.level().as_str().to_ascii_lowercase(), record.args());
        }
    }

    fn flush(&self) {}
}

fn init_logging() {
    let level = std::env::var("CHRONOS2_LOG")
        .ok()
        .and_then(|v| v.parse::<log::LevelFilter>().ok())
        .unwrap_or(log::LevelFilter::Off);
    if log::set_logger(&StderrLogger).is_ok() {
        log::set_max_level(level);
    }
}

fn main() -> ExitCode {
    signals::install();
    init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Predict(args) => predict(args),
        Command::Embed(args) => embed(args),
        Command::Info(args) => info(args),
        Command::Finetune(args) => finetune_cli::finetune(args),
        Command::Fuse(args) => finetune_cli::fuse(args),
        Command::Calibrate(args) => calibrate_cli::calibrate(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that closed standard output early (`| head`) wants no more: end quietly.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Standard output was closed by its reader (`| head`): the run ends quietly.
#[derive(Debug)]
struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("standard output was closed")
    }
}

impl std::error::Error for StdoutClosed {}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<StdoutClosed>().is_some()
}

/// Writes `bytes` to standard output; a closed pipe is [`StdoutClosed`].
fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|_| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write to standard output")),
    }
}

/// A count option's value, which must be at least 1 (numeric options accept hyphen values, so
/// that `-1` gets this range message rather than a parser error).
fn at_least_one(value: i64, flag: &str) -> Result<usize> {
    if value < 1 {
        bail!("{flag} must be at least 1 (got {value})");
    }
    usize::try_from(value).with_context(|| format!("{flag} {value} is too large"))
}

impl CommonArgs {
    fn batch_size(&self) -> Result<usize> {
        at_least_one(self.batch_size, "--batch-size")
    }

    fn context_length(&self) -> Result<Option<usize>> {
        self.context_length.map(|c| at_least_one(c, "--context-length")).transpose()
    }
}

/// The batch size used: at most [`MAX_BATCH_ROWS`] rows per model call, said on stderr when capped.
fn bounded_batch_size(requested: usize, cross_learning: bool) -> usize {
    if requested <= MAX_BATCH_ROWS {
        return requested;
    }
    let effect = if cross_learning {
        "with --cross-learning, items are grouped in batches of about this many rows"
    } else {
        "results do not depend on it"
    };
    eprintln!(
        "note: --batch-size {requested} is capped at {MAX_BATCH_ROWS} rows per model call to bound memory ({effect})"
    );
    MAX_BATCH_ROWS
}

/// Levels in the order first given, each once (the reference's output columns are keyed by level).
fn unique_levels(levels: Vec<f64>) -> Vec<f64> {
    let mut out: Vec<f64> = Vec::with_capacity(levels.len());
    for level in levels {
        if !out.contains(&level) {
            out.push(level);
        }
    }
    out
}

/// Refuses an output that is one of the input files (it would be overwritten by the result).
fn check_not_an_input(output: &Path, inputs: &[(&Path, &str)]) -> Result<()> {
    for (input, what) in inputs {
        if same_file(output, input) {
            bail!("--output {} is the {what} file; choose another output file", output.display());
        }
    }
    Ok(())
}

/// True when both paths exist and name the same file (through links too).
fn same_file(a: &Path, b: &Path) -> bool {
    let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        ma.dev() == mb.dev() && ma.ino() == mb.ino()
    }
    #[cfg(not(unix))]
    {
        let _ = (ma, mb);
        matches!((std::fs::canonicalize(a), std::fs::canonicalize(b)), (Ok(x), Ok(y)) if x == y)
    }
}

/// The model (with its adapter, on its backend) that `predict` and `embed` run.
fn load_common_model(common: &CommonArgs) -> Result<Chronos2> {
    finetune_cli::load_model(
        common.model.as_deref(),
        common.adapter.as_deref(),
        common.backend,
        common.speed.load_options()?,
    )
}

fn columns(common: &CommonArgs) -> Result<Columns> {
    let targets: Vec<String> = common.target.iter().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect();
    if targets.is_empty() {
        bail!("--target needs at least one column name");
    }
    Ok(Columns { id: common.id_column.clone(), timestamp: common.timestamp_column.clone(), targets })
}

fn read_table(path: &Path, what: &str) -> Result<Frame> {
    if !path.exists() {
        bail!("{what} file {} does not exist", path.display());
    }
    Frame::read(path).map_err(anyhow::Error::from)
}

fn check_output(path: &Path, allowed: &[Format], what: &str) -> Result<Format> {
    let format = Format::from_path(path).filter(|f| allowed.contains(f));
    let Some(format) = format else {
        let names: Vec<&str> = allowed
            .iter()
            .map(|f| match f {
                Format::Csv => ".csv",
                Format::Parquet => ".parquet",
                Format::Json => ".json",
            })
            .collect();
        bail!("{what} {}: unsupported file type (expected {})", path.display(), names.join(", "));
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            bail!("{what} {}: directory {} does not exist", path.display(), dir.display());
        }
    }
    data::check_writable(path).with_context(|| format!("{what} {}", path.display()))?;
    Ok(format)
}

fn load_model(model: Option<&str>, backend: Option<Backend>, speed: &SpeedArgs) -> Result<Chronos2> {
    let backend = Backend::from_flag_or_env(backend)?;
    let options = speed.load_options()?;
    let loaded = Chronos2::load_with(model, backend, options).with_context(|| match model {
        Some(m) => format!("cannot load model {m}"),
        None => format!("cannot load the bundled {BUNDLED_MODEL_NAME} model"),
    })?;
    Ok(loaded)
}

/// A progress bar on stderr when it is a terminal; `None` otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn new(what: &str, total: usize) -> Self {
        let bar = (std::io::stderr().is_terminal() && total > 1).then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} items ({elapsed}, ETA {eta})")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.set_message(what.to_string());
            bar
        });
        Progress { bar }
    }

    fn update(&self, done: usize, _total: usize) {
        if let Some(bar) = &self.bar {
            bar.set_position(done as u64);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn predict(args: PredictArgs) -> Result<()> {
    let output_format = match &args.output {
        Some(p) if p.as_os_str() != "-" => {
            let mut inputs = vec![(args.common.input.as_path(), "input")];
            inputs.extend(args.future.as_deref().map(|f| (f, "future")));
            check_not_an_input(p, &inputs)?;
            Some(check_output(p, &[Format::Csv, Format::Parquet, Format::Json], "--output")?)
        }
        _ => None,
    };
    let prediction_length = at_least_one(args.prediction_length, "--prediction-length")?;
    let batch_size = args.common.batch_size()?;
    let context_length = args.common.context_length()?;
    let freq = match &args.freq {
        Some(f) => Some(f.parse::<chronos2::Freq>().context("--freq")?),
        None => None,
    };
    // Levels that need no model are checked before loading it.
    let explicit_levels = if args.quantiles.trim().eq_ignore_ascii_case("all") {
        None
    } else {
        Some(unique_levels(chronos2::parse_quantile_levels(&args.quantiles, &[]).context("--quantiles")?))
    };
    let cols = columns(&args.common)?;
    let df = read_table(&args.common.input, "input")?;
    let future = match &args.future {
        Some(p) => Some(read_table(p, "future")?),
        None => None,
    };
    // Validate the tables before loading the model: bad input fails fast.
    let prepared = data::prepare_predict(&df, future.as_ref(), &cols, prediction_length, freq)?;
    for note in &prepared.notes {
        eprintln!("note: {note}");
    }

    let model = load_common_model(&args.common)?;
    let quantile_levels = match explicit_levels {
        Some(levels) => levels,
        None => model.model_quantile_levels(),
    };
    let options = PredictDfOptions {
        columns: cols,
        prediction_length,
        quantile_levels,
        batch_size: bounded_batch_size(batch_size, args.cross_learning),
        context_length,
        cross_learning: args.cross_learning,
        freq: prepared.freq,
    };
    for warning in model.warnings(&options) {
        eprintln!("warning: {warning}");
    }
    if args.explain_backend {
        eprintln!("backend: {}", model.decide(&prepared.inputs, &options.predict_options())?.reason);
    }
    let progress = Progress::new("forecasting", prepared.inputs.len());
    let forecasts = model.predict_prepared(&prepared, &options, &mut |done, total| progress.update(done, total));
    progress.finish();
    let forecasts = forecasts?;
    let table = data::forecast_frame(&prepared, &forecasts, &options.quantile_levels)?;

    match (&args.output, output_format) {
        (Some(path), Some(_)) => table.write(path)?,
        _ => {
            let bytes = table.to_bytes(Format::Csv).map_err(anyhow::Error::msg)?;
            write_stdout(&bytes)?;
        }
    }
    Ok(())
}

fn embed(args: EmbedArgs) -> Result<()> {
    check_not_an_input(&args.output, &[(args.common.input.as_path(), "input")])?;
    check_output(&args.output, &[Format::Json, Format::Parquet], "--output")?;
    let batch_size = args.common.batch_size()?;
    let context_length = args.common.context_length()?;
    let pooling = data::parse_pooling(&args.pooling)?;
    let cols = columns(&args.common)?;
    let df = read_table(&args.common.input, "input")?;
    let prepared = data::prepare_embed(&df, &cols)?;
    let model = load_common_model(&args.common)?;
    let options =
        EmbedDfOptions { columns: cols, pooling, batch_size: bounded_batch_size(batch_size, false), context_length };
    let progress = Progress::new("embedding", prepared.inputs.len());
    let embeddings = model.embed(&prepared.inputs, options.batch_size, options.context_length, pooling, &mut |d, t| {
        progress.update(d, t)
    });
    progress.finish();
    let embeddings = embeddings?;
    let entries = data::embedding_entries(&prepared, &embeddings)?;
    let rows: Vec<usize> = entries.iter().map(|e| e.item).collect();
    let table = chronos2::EmbeddingTable { pooling, item_ids: prepared.item_ids.take(&rows), entries };
    table.write(&args.output)?;
    Ok(())
}

fn info(args: InfoArgs) -> Result<()> {
    // Written at the end (also when loading the model fails), so that a closed stdout is one error.
    let mut out = String::new();
    let result = info_text(&args, &mut out);
    write_stdout(out.as_bytes())?;
    result
}

fn info_text(args: &InfoArgs, out: &mut String) -> Result<()> {
    use std::fmt::Write as _;
    writeln!(out, "chronos2 {}", env!("CARGO_PKG_VERSION"))?;
    writeln!(out, "backends:")?;
    let width = BackendKind::ALL.iter().map(|k| k.name().len()).max().unwrap_or(0) + 1;
    for kind in BackendKind::ALL {
        let status = match kind.usable() {
            Ok(()) => "compiled in, usable".to_string(),
            Err(why) if kind.compiled() => format!("compiled in, not usable: {why}"),
            Err(_) => "not compiled in".to_string(),
        };
        writeln!(out, "  {:<width$} {status}", kind.name())?;
        if let Some(device) = kind.device_description() {
            let precisions: Vec<&str> = kind.precisions().iter().map(|p| p.name()).collect();
            let compiles = if kind.compiles_forward() { ", --compile" } else { "" };
            writeln!(out, "  {:<width$} {device}; runs {}{compiles}", "", precisions.join(", "))?;
        }
    }
    match Backend::from_flag_or_env(args.backend) {
        Ok(b) => writeln!(out, "requested backend: {b} (set with --backend or {BACKEND_ENV})")?,
        Err(e) => writeln!(out, "requested backend: invalid: {e}")?,
    }
    let profile = chronos2::engine::load_profile()?;
    writeln!(
        out,
        "dispatch profile: {} (override: {} or {})",
        profile.source,
        chronos2::engine::PROFILE_ENV,
        chronos2::engine::user_profile_path().map(|p| p.display().to_string()).unwrap_or_default()
    )?;
    match bundled_model_cache_dir() {
        Ok(dir) => writeln!(out, "bundled model: {BUNDLED_MODEL_NAME} (extracted to {})", dir.display())?,
        Err(e) => writeln!(out, "bundled model: {BUNDLED_MODEL_NAME} (no cache directory: {e})")?,
    }
    if args.model.is_some() || args.speed.quantize.is_some() || args.speed.dtype.is_some() {
        let model = load_model(args.model.as_deref(), args.backend, &args.speed)?;
        let f = model.footprint();
        let mb = |b: usize| b as f64 / 1e6;
        writeln!(out, "model: {}", model.model_dir().display())?;
        writeln!(out, "  parameters:            {}", f.total_params)?;
        writeln!(
            out,
            "  quantized parameters:  {} ({:.1}%)",
            f.quantized_params,
            100.0 * f.quantized_params as f64 / f.total_params.max(1) as f64
        )?;
        writeln!(
            out,
            "  bytes in memory:       {:.2} MB (fp32 would be {:.2} MB)",
            mb(f.bytes),
            mb(4 * f.total_params)
        )?;
        if f.quantized_params > 0 {
            writeln!(
                out,
                "  quantized layers:      {:.2} MB ({:.3}x of their fp32 {:.2} MB)",
                mb(f.quantized_layer_bytes),
                f.quantized_layer_bytes as f64 / f.quantized_layer_fp32_bytes() as f64,
                mb(f.quantized_layer_fp32_bytes())
            )?;
        }
    }
    Ok(())
}

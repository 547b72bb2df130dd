//! `cargo xtask accuracy`: the bundled `models/chronos2-mini` in fp32 / int8 / int4 on the
//! held-out real series of `eval/real-series/`, with the metrics of the model card's
//! `evaluate.py` (ported in [`metrics`]), written as markdown to `docs/accuracy.md`.
//!
//! Protocol (the card's): each series is forecast alone, with its own horizon, from its whole
//! history (NaNs kept; the pipeline keeps the last 2048 points, the model's context length), at
//! the levels 0.05, 0.1, 0.2, ..., 0.9, 0.95. MASE is scaled by the in-sample seasonal-naive
//! error of the whole history.

pub(crate) mod data;
pub(crate) mod metrics;
mod report;
#[cfg(test)]
mod simulate;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use chronos2_core::pipeline::{predict, PredictOptions, SeriesInput};
use chronos2_core::{Forecaster, Precision};

use data::Series;
use metrics::{Quantiles, SeriesMetrics, LEVELS};

/// Context length of the card's protocol (`evaluate.py --context_length 2048`, also the
/// chronos2-mini config's).
const CONTEXT_LENGTH: usize = 2048;

/// Series of `--quick`: the short histories, covering MS, QS, YS and 500ms.
const QUICK_SERIES: [&str; 8] =
    ["nile_volume", "lynx", "airpassengers", "austres", "woolyrnq", "heartrate", "macro_cpi", "macro_realgdp"];

/// One way of running the model; the report has one row per mode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mode {
    pub name: &'static str,
    /// Precision of the linear layers.
    pub precision: Precision,
}

impl Mode {
    pub fn is_fp32(&self) -> bool {
        self.precision == Precision::Fp32
    }
}

/// The modes, fp32 first (the others are compared with it).
pub const MODES: [Mode; 5] = [
    Mode { name: "fp32", precision: Precision::Fp32 },
    Mode { name: "bf16", precision: Precision::Bf16 },
    Mode { name: "int8", precision: Precision::Int8 },
    Mode { name: "w8a8", precision: Precision::W8a8 },
    Mode { name: "int4", precision: Precision::Int4 },
];

/// Weights a mode holds in memory, as the library measures them (`Forecaster::footprint`).
#[derive(Debug, Clone, PartialEq)]
pub struct WeightMemory {
    /// Bytes of every weight buffer of the loaded model.
    pub bytes: u64,
    pub total_params: usize,
    /// Parameters in quantized linear layers.
    pub quantized_params: usize,
}

/// Loads the model on the CPU backend and, for a quantized mode, quantizes it in place
/// (`Forecaster::set_precision`: int8/int4 quantize every linear layer whose input width is a
/// multiple of 64).
fn load_mode(mode: Mode, model_dir: &Path) -> Result<(Box<dyn Forecaster>, WeightMemory)> {
    let mut model =
        chronos2_candle_cpu::load(model_dir).with_context(|| format!("cannot load {}", model_dir.display()))?;
    model.set_precision(mode.precision).with_context(|| format!("cannot set {}", mode.precision))?;
    let f = model.footprint();
    let memory =
        WeightMemory { bytes: f.bytes as u64, total_params: f.total_params, quantized_params: f.quantized_params };
    Ok((model, memory))
}

/// The results of one mode.
pub struct ModeRun {
    pub mode: Mode,
    pub memory: WeightMemory,
    /// Per series, in the order of the evaluation set.
    pub forecasts: Vec<Quantiles>,
    pub metrics: Vec<SeriesMetrics>,
}

/// A mode that could not be evaluated, and why.
pub struct Skipped {
    pub mode: Mode,
    pub reason: String,
}

/// `cargo xtask accuracy`: evaluates the model in fp32 / int8 / int4 on the held-out real series
/// and prints a markdown report; a full run writes it to docs/accuracy.md (--output to change; a
/// --quick run writes only when --output is given).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// 8 of the 23 series (short histories: MS, QS, YS, 500ms).
    #[arg(long)]
    quick: bool,
    /// Where to write the report (relative to the repository root).
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// Model directory.
    #[arg(long, value_name = "DIR", default_value = "models/chronos2-mini")]
    model: PathBuf,
    /// Evaluation set.
    #[arg(long, value_name = "DIR", default_value = "eval/real-series")]
    data: PathBuf,
    /// Also write the per-series metrics of every mode as CSV.
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
}

impl Args {
    /// Where the report goes: `--output`, else docs/accuracy.md for a full run, else nowhere.
    fn output(&self) -> Option<PathBuf> {
        match (&self.output, self.quick) {
            (Some(path), _) => Some(path.clone()),
            (None, false) => Some(PathBuf::from("docs/accuracy.md")),
            (None, true) => None,
        }
    }
}

/// Entry point of `cargo xtask accuracy ARGS`.
pub fn run(args: &Args) -> Result<()> {
    let root = super::repo_root();
    let model_dir = root.join(&args.model);
    let mut series = data::load(&root.join(&args.data))?;
    if args.quick {
        series.retain(|s| QUICK_SERIES.contains(&s.id.as_str()));
    }
    eprintln!("accuracy: {} series from {}, model {}", series.len(), args.data.display(), args.model.display());

    let mut runs: Vec<ModeRun> = Vec::new();
    let mut skipped = Vec::new();
    for mode in MODES {
        let (model, memory) = match load_mode(mode, &model_dir) {
            Ok(loaded) => loaded,
            Err(e) if !mode.is_fp32() => {
                eprintln!("accuracy: skipping {}: {e:#}", mode.name);
                skipped.push(Skipped { mode, reason: format!("{e:#}") });
                continue;
            }
            Err(e) => return Err(e),
        };
        let start = Instant::now();
        let mut forecasts = Vec::with_capacity(series.len());
        for s in &series {
            forecasts.push(forecast(model.as_ref(), s).with_context(|| format!("{} on {}", mode.name, s.id))?);
        }
        let seconds = start.elapsed().as_secs_f64();
        eprintln!("accuracy: {:<5} {} series in {seconds:.1} s", mode.name, series.len());
        let metrics = series
            .iter()
            .zip(&forecasts)
            .map(|(s, q)| metrics::series_metrics(&s.history, &s.truth, s.season, q))
            .collect();
        runs.push(ModeRun { mode, memory, forecasts, metrics });
    }

    let naive = naive_metrics(&series);
    let doc = report::render(&report::Report {
        series: &series,
        naive: &naive,
        runs: &runs,
        skipped: &skipped,
        quick: args.quick,
        model: &args.model,
        date: report::today_utc(),
        machine: report::machine(),
    });
    print!("{doc}");
    if let Some(out) = &args.csv {
        write(&root.join(out), &report::per_series_csv(&series, &naive, &runs))?;
        eprintln!("accuracy: wrote {}", out.display());
    }
    if let Some(out) = args.output() {
        write(&root.join(&out), &doc)?;
        eprintln!("accuracy: wrote {}", out.display());
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// The metrics of the seasonal-naive forecast of every series (the relative scores' baseline).
fn naive_metrics(series: &[Series]) -> Vec<SeriesMetrics> {
    series
        .iter()
        .map(|s| {
            metrics::series_metrics(
                &s.history,
                &s.truth,
                s.season,
                &metrics::seasonal_naive(&s.history, s.season, s.horizon),
            )
        })
        .collect()
}

/// Forecasts one series alone, as `evaluate.py` does (`predict_quantiles([y], prediction_length=H,
/// quantile_levels=QL, context_length=2048)`).
pub(crate) fn forecast(model: &dyn Forecaster, s: &Series) -> Result<Quantiles> {
    let input = SeriesInput::univariate(s.history.iter().map(|&v| v as f32).collect());
    let options = PredictOptions {
        quantile_levels: LEVELS.iter().map(|&l| l as f32).collect(),
        context_length: Some(CONTEXT_LENGTH),
        ..PredictOptions::new(s.horizon)
    };
    let out = predict(model, &[input], &options, &mut |_, _| {})?;
    let item = out.into_iter().next().context("no forecast returned")?;
    anyhow::ensure!(
        item.n_targets == 1 && item.prediction_length == s.horizon && item.quantiles.len() == s.horizon * LEVELS.len(),
        "unexpected forecast shape"
    );
    Ok(Quantiles::new(LEVELS.to_vec(), item.quantiles.iter().map(|&v| v as f64).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Per-series (MASE, WQL) of the Python reference for chronos2-mini: `python
    /// eval/real-series/evaluate.py mini=models/chronos2-mini` (chronos-forecasting 2.3.2, PyTorch
    /// CPU fp32, context_length 2048) — the run behind the model card's row.
    const PYTHON_REFERENCE: [(&str, f64, f64); 23] = [
        ("co2_monthly", 1.3335723120983372, 0.0032451793590416033),
        ("co2_weekly", 0.7423941404916531, 0.001998761566384531),
        ("sunspots_yearly", 0.6911508149069916, 0.1992760934853008),
        ("elnino_sst", 0.6552077418984649, 0.02497255093949716),
        ("nile_volume", 1.0944446583851901, 0.13228236437950175),
        ("macro_realgdp", 3.461709202030454, 0.05419324442807286),
        ("macro_realcons", 3.6082612293342895, 0.05602150904882039),
        ("macro_realinv", 5.68928236568647, 0.21994008092264802),
        ("macro_cpi", 0.9178645718369456, 0.011579415970734966),
        ("macro_unemp", 3.0782276733207556, 0.28436087075816163),
        ("macro_m1", 4.232613325361782, 0.0740942282233885),
        ("macro_tbilrate", 1.6862371353451489, 1.7487775609998275),
        ("macro_pop", 0.1261424438206648, 0.0010425489582384514),
        ("airpassengers", 0.8368611165786517, 0.04002822336453423),
        ("wineind", 1.1272023049385835, 0.06394730151907702),
        ("ausbeer", 0.4651993014117864, 0.014278195984295059),
        ("austres", 0.5719810448489235, 0.005670652532960167),
        ("woolyrnq", 1.333922205318928, 0.09552951762710092),
        ("lynx", 1.1243835679419105, 0.40852241468758393),
        ("heartrate", 13.135018309561675, 0.09343320739728286),
        ("sunspots_monthly", 1.3314179034370355, 0.1426069095042667),
        ("taylor_elec", 0.753272196872982, 0.043380898818086426),
        ("msft_close", 9.426483952534104, 0.03827587428196748),
    ];

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(list: &[&str]) -> Result<Args, clap::Error> {
        use clap::Parser;
        Cli::try_parse_from(std::iter::once("accuracy").chain(list.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn arguments() {
        let full = parse(&[]).unwrap();
        assert!(!full.quick);
        assert_eq!(full.output(), Some(PathBuf::from("docs/accuracy.md")));
        assert_eq!(full.model, PathBuf::from("models/chronos2-mini"));
        let quick = parse(&["--quick"]).unwrap();
        assert!(quick.quick && quick.output().is_none());
        let quick_out = parse(&["--quick", "--output", "x.md", "--csv", "y.csv"]).unwrap();
        assert_eq!(quick_out.output(), Some(PathBuf::from("x.md")));
        assert_eq!(quick_out.csv, Some(PathBuf::from("y.csv")));
        assert!(parse(&["--bogus"]).is_err());
        assert!(parse(&["--output"]).is_err());
    }

    #[test]
    fn quick_series_exist() {
        let series = data::load(&crate::repo_root().join("eval/real-series")).unwrap();
        for id in QUICK_SERIES {
            assert!(series.iter().any(|s| s.id == id), "{id}");
        }
    }

    /// The whole fp32 evaluation through the library pipeline against the Python reference:
    /// per series within 1e-3 relative (candle vs PyTorch float noise is ~5e-5), aggregates as
    /// on the model card.
    #[test]
    fn fp32_reproduces_python_reference_and_card() {
        let root = crate::repo_root();
        let series = data::load(&root.join("eval/real-series")).unwrap();
        let (model, _) = load_mode(MODES[0], &root.join("models/chronos2-mini")).unwrap();
        let naive = naive_metrics(&series);
        let mut got = Vec::new();
        for (s, (id, mase, wql)) in series.iter().zip(PYTHON_REFERENCE) {
            assert_eq!(s.id, id);
            let q = forecast(model.as_ref(), s).unwrap();
            let m = metrics::series_metrics(&s.history, &s.truth, s.season, &q);
            assert!((m.mase / mase - 1.0).abs() < 1e-3, "{id}: MASE {} vs Python {mase}", m.mase);
            assert!((m.wql / wql - 1.0).abs() < 1e-3, "{id}: WQL {} vs Python {wql}", m.wql);
            got.push(m);
        }
        let sum = report::summarize(&got, &naive);
        let card = &report::CARD_FP32;
        for (name, value, want) in report::card_aggregates(&sum) {
            assert!((value - want).abs() < 1e-3, "{name}: {value} vs card {want}");
        }
        assert_eq!(sum.wins, card.wins);
    }

    /// The library's quantized CPU model (`Forecaster::quantize`, fused-dequantization kernels)
    /// against the same quantization simulated: the MLX round trip of every quantized weight,
    /// run by the fp32 model. Same arithmetic up to float summation order, so every forecast
    /// quantile must agree to a small share of the fp32 10-90% spread.
    #[test]
    fn quantized_model_matches_simulated_quantization() {
        let root = crate::repo_root();
        let dir = root.join("models/chronos2-mini");
        let series = data::load(&root.join("eval/real-series")).unwrap();
        let (fp32, _) = load_mode(MODES[0], &dir).unwrap();
        // The weight-only modes (w8a8 also quantizes activations; bf16 rounds every weight).
        for mode in MODES.iter().filter(|m| matches!(m.precision, Precision::Int8 | Precision::Int4)) {
            let bits = mode.precision.weight_bits().unwrap_or(8);
            let (quantized, memory) = load_mode(*mode, &dir).unwrap();
            let sim = simulate::SimulatedModel::create(&dir, bits, chronos2_core::quant::DEFAULT_GROUP_SIZE).unwrap();
            let simulated = chronos2_candle_cpu::load(&sim.dir).unwrap();
            // The library measures its buffers: the MLX-layout size of the quantized layers
            // (`quant::footprint_bytes`) plus the kernel's padding of output rows to strips of
            // 32 (336 → 352 in the output patch embedding); the REG/PAD embedding keeps only
            // the REG row.
            let expected = sim.footprint - 4 * fp32.config().d_model as u64;
            assert!(
                memory.bytes >= expected && memory.bytes as f64 <= 1.01 * expected as f64,
                "int{bits}: footprint {} vs {expected} computed",
                memory.bytes
            );
            let mut worst = 0f64;
            for s in &series {
                let q = forecast(quantized.as_ref(), s).unwrap();
                let r = forecast(simulated.as_ref(), s).unwrap();
                let f = forecast(fp32.as_ref(), s).unwrap();
                let (f10, f90) = (f.column(0.1), f.column(0.9));
                for (step, (a, b)) in q.values.chunks(LEVELS.len()).zip(r.values.chunks(LEVELS.len())).enumerate() {
                    let spread = f90[step] - f10[step];
                    for (x, y) in a.iter().zip(b) {
                        worst = worst.max((x - y).abs() / spread);
                    }
                }
            }
            eprintln!("int{bits}: kernel vs simulated, worst |Δq| = {:.2e} of the fp32 spread", worst);
            assert!(worst < 1e-3, "int{bits}: kernel vs simulated differ by {worst:.2e} of the spread");
        }
    }
}

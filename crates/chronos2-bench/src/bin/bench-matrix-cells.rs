//! Times the Rust columns of the benchmark matrix on a full-size random model and prints them
//! as JSON (`{"<column>": {"<shape>": {median_ms, p10_ms, p90_ms, runs} | {skipped} | {unsupported}}}`).
//! The columns of a shape are timed in turns, run by run ([`time_forecasts_in_turns`]), so that
//! the machine's drift does not skew their ratios.
//! Driven by `cargo xtask bench-matrix`; run directly with
//! `cargo run --release -p chronos2-bench --bin bench-matrix-cells -- --shapes 1x128,8x512 --runs 10 --warmup 3`.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use chronos2_bench::matrix::{time_forecasts_in_turns, Shape, Stats};
use chronos2_bench::{full_size_config_json, write_random_model};
use chronos2_core::{Error, Forecaster, Precision};
use clap::Parser;
use serde_json::{json, Map, Value};

/// A column stops (its larger shapes are marked skipped) once a cell's median exceeds this.
const SLOW_CELL_MS: f64 = 5000.0;

type Loader = fn(&Path) -> chronos2_core::Result<Box<dyn Forecaster>>;

/// Times model forwards per (column, shape) and prints JSON on stdout.
#[derive(Debug, Parser)]
#[command(name = "bench-matrix-cells")]
struct Args {
    /// Shapes as BATCHxCONTEXT, comma-separated.
    #[arg(long, default_value = "1x128,8x128,8x512", value_delimiter = ',', value_parser = parse_shape)]
    shapes: Vec<Shape>,
    /// Timed runs per cell.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Untimed warm-up runs per cell.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    #[arg(long, default_value_t = 24)]
    prediction_length: usize,
    /// Only these columns (comma-separated keys such as cpu_fp32,cpu_bf16).
    #[arg(long, value_delimiter = ',')]
    columns: Option<Vec<String>>,
}

/// A column: key, backend loader, precision of the linear layers.
fn columns() -> Vec<(&'static str, Loader, Precision)> {
    let cpu: Loader = chronos2_candle_cpu::load;
    #[allow(unused_mut)]
    let mut cols = vec![
        ("cpu_fp32", cpu, Precision::Fp32),
        ("cpu_bf16", cpu, Precision::Bf16),
        ("cpu_int8", cpu, Precision::Int8),
        ("cpu_int4", cpu, Precision::Int4),
        ("cpu_w8a8", cpu, Precision::W8a8),
    ];
    #[cfg(feature = "mlx")]
    {
        let mlx: Loader = chronos2_mlx::load;
        let compiled: Loader = |dir| chronos2_mlx::load_with(dir, chronos2_mlx::MlxOptions { compile: true });
        cols.push(("mlx_fp32", mlx, Precision::Fp32));
        cols.push(("mlx_bf16", mlx, Precision::Bf16));
        cols.push(("mlx_int8", mlx, Precision::Int8));
        cols.push(("mlx_int4", mlx, Precision::Int4));
        cols.push(("mlx_int8_compile", compiled, Precision::Int8));
        cols.push(("mlx_fp32_compile", compiled, Precision::Fp32));
    }
    cols
}

fn parse_shape(s: &str) -> Result<Shape, String> {
    let parsed =
        s.trim().split_once('x').and_then(|(r, c)| Some(Shape { rows: r.parse().ok()?, context: c.parse().ok()? }));
    parsed
        .filter(|s| s.rows > 0 && s.context > 0)
        .ok_or_else(|| format!("shape '{s}' is not BATCHxCONTEXT, e.g. 8x512"))
}

fn main() -> Result<()> {
    let args = Args::parse();
    eprintln!("{}", chronos2_candle_cpu::kernel_description());
    let dir = std::env::temp_dir().join("chronos2-bench-full-size");
    if !dir.join("model.safetensors").exists() {
        write_random_model(&dir, &full_size_config_json(), 42).context("write the synthetic full-size model")?;
    }
    let mut out = Map::new();
    // Every column's model is loaded first; the columns of a shape are then timed in turns.
    let mut active: Vec<(&str, Box<dyn Forecaster>)> = Vec::new();
    for (name, load, precision) in columns() {
        if args.columns.as_ref().is_some_and(|only| !only.iter().any(|c| c == name)) {
            continue;
        }
        let mut model = load(&dir).with_context(|| format!("{name}: load"))?;
        match model.set_precision(precision) {
            Ok(()) => active.push((name, model)),
            Err(e @ Error::UnsupportedPrecision { .. }) => {
                eprintln!("{name}: {e}");
                let cells = args.shapes.iter().map(|s| (s.to_string(), json!({"unsupported": e.to_string()})));
                out.insert(name.to_string(), Value::Object(cells.collect()));
            }
            Err(e) => return Err(e).with_context(|| format!("{name}: set precision {precision}")),
        }
    }
    let mut cells: Vec<Map<String, Value>> = vec![Map::new(); active.len()];
    let mut too_slow = vec![false; active.len()];
    for &shape in &args.shapes {
        let timed: Vec<usize> = (0..active.len()).filter(|&i| !too_slow[i]).collect();
        for i in (0..active.len()).filter(|i| too_slow[*i]) {
            eprintln!("{} {shape} ... skipped (an earlier cell took over {SLOW_CELL_MS} ms)", active[i].0);
            cells[i].insert(
                shape.to_string(),
                json!({"skipped": format!("slower than {SLOW_CELL_MS} ms at a smaller shape")}),
            );
        }
        let names: Vec<&str> = timed.iter().map(|&i| active[i].0).collect();
        eprint!("{shape}: {} in turns ... ", names.join(", "));
        let models: Vec<&dyn Forecaster> = timed.iter().map(|&i| active[i].1.as_ref()).collect();
        let stats: Vec<Stats> =
            time_forecasts_in_turns(&models, shape, args.prediction_length, args.warmup, args.runs.max(1))
                .with_context(|| format!("{shape}: {}", names.join(", ")))?;
        let medians: Vec<String> = stats.iter().map(|s| format!("{:.1}", s.median_ms)).collect();
        eprintln!("{} ms", medians.join(", "));
        for (&i, stats) in timed.iter().zip(stats) {
            too_slow[i] = stats.median_ms > SLOW_CELL_MS;
            cells[i].insert(
                shape.to_string(),
                json!({"median_ms": stats.median_ms, "p10_ms": stats.p10_ms, "p90_ms": stats.p90_ms, "runs": stats.runs}),
            );
        }
    }
    for ((name, _), cells) in active.iter().zip(cells) {
        out.insert(name.to_string(), Value::Object(cells));
    }
    writeln!(std::io::stdout().lock(), "{}", Value::Object(out)).context("write stdout")?;
    Ok(())
}

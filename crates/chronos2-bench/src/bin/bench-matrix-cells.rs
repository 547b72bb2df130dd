//! Times the Rust columns of the benchmark matrix on a full-size random model and prints them
//! as JSON (`{"<column>": {"<shape>": {median_ms, p10_ms, p90_ms, runs} | {skipped} | {unsupported}}}`).
//! The columns of a shape are timed in turns, run by run ([`time_forecasts_in_turns`]), so that
//! the machine's drift does not skew their ratios.
//! Driven by `cargo xtask bench-matrix`; run directly with
//! `cargo run --release -p chronos2-bench --bin bench-matrix-cells -- --shapes 1x128,8x512 --runs 10 --warmup 3`.

use std::io::Write;

use anyhow::{Context, Result};
use chronos2::registry::{self, BackendModel};
use chronos2::BackendKind;
use chronos2_bench::columns;
use chronos2_bench::matrix::{time_forecasts_in_turns, Shape, Stats};
use chronos2_bench::{full_size_config_json, write_random_model};
use chronos2_core::{Forecaster, Precision};
use clap::Parser;
use serde_json::{json, Map, Value};

/// A column stops (its larger shapes are marked skipped) once a cell's median exceeds this.
const SLOW_CELL_MS: f64 = 5000.0;

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
    /// Only these columns (comma-separated keys, `<route>_<precision>`).
    #[arg(long, value_delimiter = ',')]
    columns: Option<Vec<String>>,
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
    // The registry's columns of this build: those of a backend that is not usable here say why;
    // those of a backend not compiled in are left out (xtask shows them as not built).
    let mut columns = Vec::new();
    for column in columns::columns() {
        let kind = column.route.backend;
        if args.columns.as_ref().is_some_and(|only| !only.contains(&column.key())) || !kind.compiled() {
            continue;
        }
        match kind.usable() {
            Ok(()) => columns.push(column),
            Err(why) => {
                eprintln!("{}: {why}", column.key());
                let cells = args.shapes.iter().map(|s| (s.to_string(), json!({"unsupported": why.to_string()})));
                out.insert(column.key(), Value::Object(cells.collect()));
            }
        }
    }
    // One model per backend and precision, loaded first; the columns of a shape are then timed in
    // turns (a compiled column runs the compiled forward of its backend's model).
    let mut models: Vec<(BackendKind, Precision, Box<dyn BackendModel>)> = Vec::new();
    for c in &columns {
        let (kind, precision) = (c.route.backend, c.route.precision);
        if !models.iter().any(|(k, p, _)| (*k, *p) == (kind, precision)) {
            let model = registry::load(kind, &dir, precision).with_context(|| format!("{}: load", c.key()))?;
            models.push((kind, precision, model));
        }
    }
    let compiled: Vec<Option<Box<dyn Forecaster + '_>>> = models.iter().map(|(_, _, m)| m.compiled()).collect();
    let mut active: Vec<(String, &dyn Forecaster)> = Vec::new();
    for c in &columns {
        let at = models.iter().position(|(k, p, _)| (*k, *p) == (c.route.backend, c.route.precision)).expect("loaded");
        let model: &dyn Forecaster = if c.route.compile {
            compiled[at].as_deref().with_context(|| format!("{}: the backend does not compile its forward", c.key()))?
        } else {
            models[at].2.forecaster()
        };
        active.push((c.key(), model));
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
        let names: Vec<&str> = timed.iter().map(|&i| active[i].0.as_str()).collect();
        eprint!("{shape}: {} in turns ... ", names.join(", "));
        let models: Vec<&dyn Forecaster> = timed.iter().map(|&i| active[i].1).collect();
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
        out.insert(name.clone(), Value::Object(cells));
    }
    writeln!(std::io::stdout().lock(), "{}", Value::Object(out)).context("write stdout")?;
    Ok(())
}

//! Times the Rust columns of the benchmark matrix on a full-size random model and prints them
//! as JSON (`{"<column>": {"<shape>": {median_ms, p10_ms, p90_ms, runs} | null}}`).
//! Driven by `cargo xtask bench-matrix`; run directly with
//! `cargo run --release -p chronos2-bench --bin bench-matrix-cells -- --shapes 1x128,8x512 --runs 10 --warmup 3`.

use std::io::Write;
use std::path::Path;

use chronos2_bench::matrix::{time_forecast, Shape, Stats};
use chronos2_bench::{full_size_config_json, write_random_model};
use chronos2_core::Forecaster;

/// A column stops (its larger shapes are marked skipped) once a cell's median exceeds this.
const SLOW_CELL_MS: f64 = 5000.0;

type Loader = fn(&Path) -> chronos2_core::Result<Box<dyn Forecaster>>;

/// A column: name, backend loader, quantization bits.
fn columns() -> Vec<(&'static str, Loader, Option<u32>)> {
    #[allow(unused_mut)]
    let mut cols: Vec<(&'static str, Loader, Option<u32>)> =
        vec![("cpu_fp32", chronos2_candle_cpu::load, None), ("cpu_int8", chronos2_candle_cpu::load, Some(8))];
    #[cfg(feature = "mlx")]
    {
        cols.push(("mlx_fp32", chronos2_mlx::load, None));
        cols.push(("mlx_int8", chronos2_mlx::load, Some(8)));
        let compiled: Loader = |dir| chronos2_mlx::load_with(dir, chronos2_mlx::MlxOptions { compile: true });
        cols.push(("mlx_int8_compile", compiled, Some(8)));
        cols.push(("mlx_fp32_compile", compiled, None));
    }
    cols
}

fn parse_shape(s: &str) -> Shape {
    let (rows, context) = s.split_once('x').expect("shape like 8x512");
    Shape { rows: rows.parse().expect("rows"), context: context.parse().expect("context") }
}

fn main() {
    let mut shapes = "1x128,8x128,8x512".to_string();
    let (mut runs, mut warmup, mut prediction_length) = (10usize, 3usize, 24usize);
    let mut only: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--shapes" => shapes = value(),
            "--runs" => runs = value().parse().expect("--runs N"),
            "--warmup" => warmup = value().parse().expect("--warmup N"),
            "--prediction-length" => prediction_length = value().parse().expect("--prediction-length H"),
            "--columns" => only = Some(value()),
            other => panic!("unknown flag {other}"),
        }
    }
    let shapes: Vec<Shape> = shapes.split(',').map(parse_shape).collect();
    let dir = std::env::temp_dir().join("chronos2-bench-full-size");
    if !dir.join("model.safetensors").exists() {
        write_random_model(&dir, &full_size_config_json(), 42).expect("write synthetic model");
    }
    let mut out = serde_json::Map::new();
    for (name, load, bits) in columns() {
        if only.as_deref().is_some_and(|o| !o.split(',').any(|c| c == name)) {
            continue;
        }
        let mut model = load(&dir).unwrap_or_else(|e| panic!("{name}: {e}"));
        if let Some(bits) = bits {
            let precision = chronos2_core::Precision::weight_only(bits).expect("8 or 4 bits");
            model.set_precision(precision).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let mut cells = serde_json::Map::new();
        let mut too_slow = false;
        for &shape in &shapes {
            if too_slow {
                eprintln!("{name} {shape} ... skipped (an earlier cell took over {SLOW_CELL_MS} ms)");
                cells.insert(
                    shape.to_string(),
                    serde_json::json!({"skipped": format!("slower than {SLOW_CELL_MS} ms at a smaller shape")}),
                );
                continue;
            }
            eprint!("{name} {shape} ... ");
            let stats: Stats = time_forecast(model.as_ref(), shape, prediction_length, warmup, runs)
                .unwrap_or_else(|e| panic!("{name} {shape}: {e}"));
            eprintln!("{:.1} ms", stats.median_ms);
            too_slow = stats.median_ms > SLOW_CELL_MS;
            cells.insert(
                shape.to_string(),
                serde_json::json!({"median_ms": stats.median_ms, "p10_ms": stats.p10_ms, "p90_ms": stats.p90_ms, "runs": stats.runs}),
            );
        }
        out.insert(name.to_string(), serde_json::Value::Object(cells));
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", serde_json::Value::Object(out)).expect("write stdout");
}

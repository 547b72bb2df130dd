//! `cargo xtask bench-matrix`: the article's latency table on this machine — PyTorch CPU (the
//! reference, measured in the same run through Python) and our backends — as markdown and JSON
//! in `target/bench-matrix/`, plus a crossover profile for the dispatcher.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use chronos2_core::dispatch::{choose, CallShape, Profile, ProfileEntry, RouteKey, Timing};
use chronos2_core::Precision;
use serde_json::{json, Value};

use crate::{cargo, repo_root};

const CORE_SHAPES: &str = "1x128,8x128,8x512";
const EXTENDED_SHAPES: &str = "1x512,32x512,1x2048,8x2048,64x512";
const PREDICTION_LENGTH: usize = 24;

/// Columns: (key in the cells JSON, header, dispatcher route, quantization bits).
const COLUMNS: [(&str, &str, &str, bool, Option<u8>); 6] = [
    ("cpu_fp32", "candle CPU fp32", "cpu", false, None),
    ("cpu_int8", "candle CPU int8", "cpu", false, Some(8)),
    ("mlx_fp32", "MLX fp32", "mlx", false, None),
    ("mlx_int8", "MLX int8", "mlx", false, Some(8)),
    ("mlx_int8_compile", "MLX int8+compile", "mlx", true, Some(8)),
    ("mlx_fp32_compile", "MLX fp32+compile", "mlx", true, None),
];

const USAGE: &str = "usage: cargo xtask bench-matrix [--quick] [--runs N] [--warmup N] [--no-extended]
                              [--no-torch] [--no-mlx] [--write-profile]
  --quick          core rows only, 3 runs after 1 warm-up
  --runs N         timed runs per cell (default 10), after --warmup N (default 3)
  --no-extended    only the article's rows (1x128, 8x128, 8x512)
  --no-torch       skip the PyTorch column (marked \"not measured\")
  --no-mlx         skip the MLX columns
  --write-profile  also install the measured profile for the dispatcher
                   ($CHRONOS2_PROFILE, else ~/.config/chronos2/profile.json)";

struct Args {
    runs: usize,
    warmup: usize,
    shapes: String,
    torch: bool,
    mlx: bool,
    write_profile: bool,
}

fn parse(args: &[String]) -> Result<Args> {
    let mut a = Args {
        runs: 10,
        warmup: 3,
        shapes: format!("{CORE_SHAPES},{EXTENDED_SHAPES}"),
        torch: true,
        mlx: true,
        write_profile: false,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut number = |name: &str| -> Result<usize> {
            it.next()
                .with_context(|| format!("{name} needs a value"))?
                .parse()
                .with_context(|| format!("{name} needs a number"))
        };
        match flag.as_str() {
            "--quick" => {
                a.runs = 3;
                a.warmup = 1;
                a.shapes = CORE_SHAPES.into();
            }
            "--runs" => a.runs = number("--runs")?.max(1),
            "--warmup" => a.warmup = number("--warmup")?,
            "--no-extended" => a.shapes = CORE_SHAPES.into(),
            "--no-torch" => a.torch = false,
            "--no-mlx" => a.mlx = false,
            "--write-profile" => a.write_profile = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown flag {other}\n{USAGE}"),
        }
    }
    Ok(a)
}

fn machine() -> (String, usize) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    (format!("{cpu}, {} {}", std::env::consts::OS, std::env::consts::ARCH), threads)
}

fn mlx_config() -> Option<PathBuf> {
    let path = std::env::var_os("CHRONOS2_MLX_CARGO_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/mlx-prefix/cargo-config.toml"));
    path.is_file().then_some(path)
}

fn torch_cells(a: &Args, out_dir: &Path, threads: usize) -> Result<Value> {
    let out = out_dir.join("torch.json");
    let status = Command::new("python3")
        .current_dir(repo_root())
        .args(["scripts/bench_torch.py", "--threads", &threads.to_string(), "--runs", &a.runs.to_string()])
        .args(["--warmup", &a.warmup.to_string(), "--shapes", &a.shapes, "--json"])
        .arg(&out)
        .stdout(Stdio::inherit())
        .status()
        .context("cannot start python3")?;
    if !status.success() {
        bail!("scripts/bench_torch.py failed ({status}): is chronos-forecasting installed?");
    }
    let text = std::fs::read_to_string(&out)?;
    Ok(serde_json::from_str(&text)?)
}

fn rust_cells(a: &Args, mlx: Option<&Path>) -> Result<Value> {
    let mut cmd = cargo();
    cmd.current_dir(repo_root()).args([
        "run",
        "--release",
        "-q",
        "-p",
        "chronos2-bench",
        "--bin",
        "bench-matrix-cells",
    ]);
    if let Some(config) = mlx {
        cmd.args(["--features", "mlx", "--config"]).arg(config).env("CARGO_TARGET_DIR", repo_root().join("target/mlx"));
    }
    cmd.args(["--", "--shapes", &a.shapes, "--runs", &a.runs.to_string(), "--warmup", &a.warmup.to_string()]);
    cmd.args(["--prediction-length", &PREDICTION_LENGTH.to_string()]);
    let output = cmd.stderr(Stdio::inherit()).output().context("cannot run bench-matrix-cells")?;
    if !output.status.success() {
        bail!("bench-matrix-cells failed ({})", output.status);
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}

fn cell<'a>(cells: &'a Value, column: &str, shape: &str) -> Option<&'a Value> {
    cells.get(column).and_then(|c| c.get(shape)).filter(|v| v.get("median_ms").is_some())
}

fn ms(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(f64::NAN)
}

pub fn run(args: &[String]) -> Result<()> {
    let a = parse(args)?;
    let out_dir = repo_root().join("target/bench-matrix");
    std::fs::create_dir_all(&out_dir)?;
    let (machine, threads) = machine();
    let mlx = if a.mlx { mlx_config() } else { None };
    eprintln!(
        "bench-matrix: {machine}, {threads} threads, {} runs after {} warm-up, shapes {}",
        a.runs, a.warmup, a.shapes
    );
    let torch = if a.torch {
        match torch_cells(&a, &out_dir, threads) {
            Ok(v) => Some(v),
            Err(e) => {
                eprintln!("bench-matrix: PyTorch column not measured: {e:#}");
                None
            }
        }
    } else {
        None
    };
    let rust = rust_cells(&a, mlx.as_deref())?;
    let mlx_note = match (a.mlx, &mlx) {
        (false, _) => "skipped (--no-mlx)",
        (true, None) => "not built: run `eval \"$(scripts/prepare-mlx-linux.sh)\"` first",
        (true, Some(_)) => "",
    };

    let shapes: Vec<&str> = a.shapes.split(',').collect();
    let torch_cell = |shape: &str| torch.as_ref().and_then(|t| t["cells"].get(shape)).filter(|v| v.is_object());
    let date = chrono_free_date();
    let mut md = String::new();
    writeln!(md, "### Forward latency, full-size Chronos-2 (768/12/12/3072, random weights), prediction length {PREDICTION_LENGTH}\n")?;
    writeln!(md, "Measured {date} on {machine}, {threads} threads; median (p10–p90) of {} runs after {} warm-up; ratio = PyTorch CPU median / ours (>1 = faster than PyTorch).\n", a.runs, a.warmup)?;
    let mut header = String::from("| batch x context | PyTorch CPU |");
    let mut rule = String::from("|---|---|");
    for (_, title, ..) in COLUMNS {
        header.push_str(&format!(" {title} |"));
        rule.push_str("---|");
    }
    writeln!(md, "{header}\n{rule}")?;
    let mut rows: Vec<(String, String, f64)> = shapes.iter().map(|s| (s.to_string(), s.to_string(), 1.0)).collect();
    if shapes.contains(&"8x128") {
        rows.insert(
            shapes.iter().position(|s| *s == "8x128").unwrap() + 1,
            ("8x128 per series".into(), "8x128".into(), 8.0),
        );
    }
    for (label, shape, divisor) in &rows {
        let base = torch_cell(shape).map(|v| ms(v, "median_ms") / divisor);
        let fmt = |v: &Value| {
            format!(
                "{:.1} ({:.1}–{:.1})",
                ms(v, "median_ms") / divisor,
                ms(v, "p10_ms") / divisor,
                ms(v, "p90_ms") / divisor
            )
        };
        let mut line = format!("| {label} | {} |", torch_cell(shape).map(fmt).unwrap_or_else(|| "not measured".into()));
        for (key, ..) in COLUMNS {
            let text = match cell(&rust, key, shape) {
                Some(v) => {
                    let ratio =
                        base.map(|b| format!(", {:.2}x", b / (ms(v, "median_ms") / divisor))).unwrap_or_default();
                    format!("{}{ratio}", fmt(v))
                }
                None if key.starts_with("mlx") && !mlx_note.is_empty() => "not built".into(),
                None if rust
                    .get(key)
                    .and_then(|c| c.get(shape.as_str()))
                    .is_some_and(|v| v.get("skipped").is_some()) =>
                {
                    "skipped (> 5 s at a smaller shape)".into()
                }
                None => "n/a".into(),
            };
            line.push_str(&format!(" {text} |"));
        }
        writeln!(md, "{line}")?;
    }
    if !mlx_note.is_empty() {
        writeln!(md, "\nMLX columns: {mlx_note}.")?;
    }
    writeln!(md, "\nFor reference (NOT measured here): the source article's Apple M4 Max figures known to us are PyTorch CPU 81 ms at 1x128 and 411 ms at 8x128; its other cells are not reproduced.")?;

    // Profile: every measured route per shape; the dispatcher's pick per row.
    let mut entries = Vec::new();
    for shape in &shapes {
        let (rows_n, context) =
            shape.split_once('x').map(|(r, c)| (r.parse().unwrap_or(1), c.parse().unwrap_or(1))).unwrap_or((1, 1));
        for bits in [None, Some(8u8)] {
            let timings: Vec<Timing> = COLUMNS
                .iter()
                .filter(|c| c.4 == bits)
                .filter_map(|&(key, _, backend, compiled, _)| {
                    cell(&rust, key, shape)
                        .map(|v| Timing { route: route_key(backend, compiled), median_ms: ms(v, "median_ms") })
                })
                .collect();
            if !timings.is_empty() {
                let shape = CallShape { rows: rows_n, context, prediction_length: PREDICTION_LENGTH };
                let precision = bits.map_or(Some(Precision::Fp32), |b| Precision::weight_only(b.into()));
                let precision = precision.context("a column's quantization bits")?;
                entries.push(ProfileEntry { shape, precision, timings, winner: None, origin: None });
            }
        }
    }
    let profile = Profile { source: format!("bench-matrix {date} on {machine}, {threads} threads"), entries };
    let mut routes: Vec<RouteKey> = Vec::new();
    for c in COLUMNS {
        let route = route_key(c.2, c.3);
        if !routes.contains(&route) {
            routes.push(route);
        }
    }
    writeln!(md, "\nDispatcher (`auto`) with this profile, per row: pick vs fastest measured fp32 cell")?;
    writeln!(md, "\n| batch x context | dispatcher pick | fastest measured |\n|---|---|---|")?;
    for entry in profile.entries.iter().filter(|e| e.precision == Precision::Fp32) {
        let available: Vec<RouteKey> =
            routes.iter().filter(|r| entry.timings.iter().any(|t| &t.route == *r)).cloned().collect();
        let pick = choose(&profile, &available, &entry.shape, entry.precision)?
            .map_or_else(|| "none".to_string(), |d| d.route.to_string());
        let fastest = entry
            .timings
            .iter()
            .min_by(|x, y| x.median_ms.total_cmp(&y.median_ms))
            .map(|t| t.route.to_string())
            .unwrap_or_default();
        writeln!(md, "| {}x{} | {pick} | {fastest} |", entry.shape.rows, entry.shape.context)?;
    }

    std::fs::write(out_dir.join("matrix.md"), &md)?;
    let json = json!({"date": date, "machine": machine, "threads": threads, "runs": a.runs, "warmup": a.warmup,
        "prediction_length": PREDICTION_LENGTH, "torch": torch, "rust": rust, "mlx": mlx_note});
    std::fs::write(out_dir.join("matrix.json"), serde_json::to_string_pretty(&json)?)?;
    std::fs::write(out_dir.join("profile.json"), profile.to_json()?)?;
    if a.write_profile {
        let path = match std::env::var_os("CHRONOS2_PROFILE") {
            Some(p) => PathBuf::from(p),
            None => {
                let base = std::env::var_os("XDG_CONFIG_HOME")
                    .map(PathBuf::from)
                    .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
                    .context("no HOME for the profile")?;
                base.join("chronos2/profile.json")
            }
        };
        std::fs::create_dir_all(path.parent().expect("file in a directory"))?;
        std::fs::write(&path, profile.to_json()?)?;
        eprintln!("bench-matrix: profile written to {}", path.display());
    }
    println!("{md}");
    eprintln!("bench-matrix: wrote {}", out_dir.join("matrix.{md,json}").display());
    Ok(())
}

/// The facade's profile key of a route (`cpu`, `mlx`, `mlx+compile`).
fn route_key(backend: &str, compiled: bool) -> RouteKey {
    RouteKey::new(if compiled { format!("{backend}+compile") } else { backend.to_string() })
}

/// Today's date (UTC) as YYYY-MM-DD, from the system clock.
fn chrono_free_date() -> String {
    let days =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() / 86_400).unwrap_or(0)
            as i64;
    // Civil-from-days (H. Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_flag_limits_rows_and_runs() {
        let a = parse(&["--quick".to_string()]).unwrap();
        assert_eq!((a.runs, a.warmup, a.shapes.as_str()), (3, 1, CORE_SHAPES));
        assert!(parse(&["--bogus".to_string()]).is_err());
    }

    #[test]
    fn date_is_iso() {
        let d = chrono_free_date();
        assert_eq!(d.len(), 10);
        assert!(d.starts_with("20"));
    }
}

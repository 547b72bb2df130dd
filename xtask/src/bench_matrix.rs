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

use crate::backend_builds::{self, Setup};
use crate::{cargo, repo_root};
use chronos2_bench::columns::{columns, Column};

const CORE_SHAPES: &str = "1x128,8x128,8x512";
const EXTENDED_SHAPES: &str = "1x512,32x512,1x2048,8x2048,64x512";
const PREDICTION_LENGTH: usize = 24;

/// `cargo xtask bench-matrix`: latency of PyTorch CPU (fp32 and bf16) vs our backends in every
/// precision, written to target/bench-matrix/matrix.{md,json} and profile.json.
#[derive(Debug, clap::Args)]
#[command(name = "cargo xtask bench-matrix")]
pub struct Args {
    /// Core rows only, 3 runs after 1 warm-up.
    #[arg(long)]
    quick: bool,
    /// Timed runs per cell.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Untimed warm-up runs per cell.
    #[arg(long, default_value_t = 3)]
    warmup: u32,
    /// Only the article's rows (1x128, 8x128, 8x512).
    #[arg(long)]
    no_extended: bool,
    /// Threads for every column: PyTorch's `torch.set_num_threads(N)` and `RAYON_NUM_THREADS=N`
    /// for ours (default: all of this machine's).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    threads: Option<u32>,
    /// Skip the PyTorch columns (marked "not measured").
    #[arg(long)]
    no_torch: bool,
    /// Only the default backend's columns (no optional backend is built).
    #[arg(long)]
    default_backend_only: bool,
    /// Also install the measured profile for the dispatcher ($CHRONOS2_PROFILE, else
    /// ~/.config/chronos2/profile.json).
    #[arg(long)]
    write_profile: bool,
    /// Python with chronos-forecasting 2.3.2 and torch for the PyTorch columns (default:
    /// $CHRONOS2_PYTHON, else python3).
    #[arg(long)]
    python: Option<String>,
}

impl Args {
    fn runs(&self) -> usize {
        if self.quick {
            3
        } else {
            self.runs as usize
        }
    }

    fn warmup(&self) -> usize {
        if self.quick {
            1
        } else {
            self.warmup as usize
        }
    }

    fn python(&self) -> String {
        self.python.clone().or_else(|| std::env::var("CHRONOS2_PYTHON").ok()).unwrap_or_else(|| "python3".into())
    }

    fn shapes(&self) -> String {
        if self.quick || self.no_extended {
            CORE_SHAPES.into()
        } else {
            format!("{CORE_SHAPES},{EXTENDED_SHAPES}")
        }
    }
}

fn machine() -> (String, usize) {
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    (format!("{cpu_model}, {} {}", std::env::consts::OS, std::env::consts::ARCH), threads)
}

/// An optional backend built into the cells' run: its name (the cargo feature) and cargo config.
type Built = (&'static str, Option<PathBuf>);

/// The optional backends built into the cells' run (their features and cargo configs), and a
/// note per optional backend that is not.
fn optional_builds(a: &Args) -> Result<(Vec<Built>, Vec<String>)> {
    let (mut built, mut notes) = (Vec::new(), Vec::new());
    for entry in backend_builds::optional()? {
        if a.default_backend_only {
            notes.push(format!("{} columns: skipped (--default-backend-only)", entry.name));
            continue;
        }
        match (entry.found)() {
            Setup::Builds { config } => built.push((entry.name, config)),
            Setup::NotHere(why) => notes.push(format!("{} columns: {why}", entry.name)),
        }
    }
    Ok((built, notes))
}

fn torch_cells(a: &Args, out_dir: &Path, threads: usize) -> Result<Value> {
    let out = out_dir.join("torch.json");
    let python = a.python();
    let status = Command::new(&python)
        .current_dir(repo_root())
        .args(["scripts/bench_torch.py", "--threads", &threads.to_string(), "--runs", &a.runs().to_string()])
        .args(["--warmup", &a.warmup().to_string(), "--shapes", &a.shapes(), "--dtypes", "fp32,bf16", "--json"])
        .arg(&out)
        .stdout(Stdio::inherit())
        .status()
        .with_context(|| format!("cannot start {python}"))?;
    if !status.success() {
        bail!("scripts/bench_torch.py failed ({status}): is chronos-forecasting installed (CHRONOS2_PYTHON)?");
    }
    let text = std::fs::read_to_string(&out)?;
    Ok(serde_json::from_str(&text)?)
}

fn rust_cells(a: &Args, built: &[Built]) -> Result<Value> {
    let mut cmd = cargo();
    for config in built.iter().filter_map(|(_, c)| c.as_ref()) {
        cmd.arg("--config").arg(config);
    }
    cmd.current_dir(repo_root()).args([
        "run",
        "--release",
        "-q",
        "-p",
        "chronos2-bench",
        "--bin",
        "bench-matrix-cells",
    ]);
    if !built.is_empty() {
        let names: Vec<&str> = built.iter().map(|(n, _)| *n).collect();
        cmd.args(["--features", &names.join(",")])
            .env("CARGO_TARGET_DIR", backend_builds::target_dir(&names.join("-")));
    }
    cmd.args(["--", "--shapes", &a.shapes(), "--runs", &a.runs().to_string(), "--warmup", &a.warmup().to_string()]);
    cmd.args(["--prediction-length", &PREDICTION_LENGTH.to_string()]);
    if let Some(t) = a.threads {
        cmd.env("RAYON_NUM_THREADS", t.to_string());
    }
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

pub fn run(a: &Args) -> Result<()> {
    let out_dir = repo_root().join("target/bench-matrix");
    std::fs::create_dir_all(&out_dir)?;
    let (machine, available_threads) = machine();
    let threads = a.threads.map_or(available_threads, |t| t as usize);
    let (built, notes) = optional_builds(a)?;
    let columns = columns();
    let (runs, warmup, shapes_arg) = (a.runs(), a.warmup(), a.shapes());
    eprintln!("bench-matrix: {machine}, {threads} threads, {runs} runs after {warmup} warm-up, shapes {shapes_arg}");
    let torch = if a.no_torch {
        None
    } else {
        match torch_cells(a, &out_dir, threads) {
            Ok(v) => Some(v),
            Err(e) => {
                eprintln!("bench-matrix: PyTorch columns not measured: {e:#}");
                None
            }
        }
    };
    let rust = rust_cells(a, &built)?;

    let shapes: Vec<&str> = shapes_arg.split(',').collect();
    let torch_cell = |table: &str, shape: &str| {
        torch.as_ref().and_then(|t| t.get(table)).and_then(|c| c.get(shape)).filter(|v| v.is_object()).cloned()
    };
    let date = chrono_free_date();
    let mut md = String::new();
    writeln!(md, "### Forward latency, full-size Chronos-2 (768/12/12/3072, random weights), prediction length {PREDICTION_LENGTH}\n")?;
    writeln!(md, "Measured {date} on {machine}, {threads} threads; median (p10–p90) of {runs} runs after {warmup} warm-up; ratio = PyTorch CPU fp32 median / this cell's (>1 = faster than PyTorch fp32).\n")?;
    let mut header = String::from("| batch x context | PyTorch CPU fp32 | PyTorch CPU bf16 |");
    let mut rule = String::from("|---|---|---|");
    for c in &columns {
        header.push_str(&format!(" {} |", c.header()));
        rule.push_str("---|");
    }
    writeln!(md, "{header}\n{rule}")?;
    let mut rows: Vec<(String, String, f64)> = shapes.iter().map(|s| (s.to_string(), s.to_string(), 1.0)).collect();
    if let Some(at) = shapes.iter().position(|s| *s == "8x128") {
        rows.insert(at + 1, ("8x128 per series".into(), "8x128".into(), 8.0));
    }
    for (label, shape, divisor) in &rows {
        let base = torch_cell("cells", shape).map(|v| ms(&v, "median_ms") / divisor);
        let fmt = |v: &Value| {
            let ratio = base.map(|b| format!(", {:.2}x", b / (ms(v, "median_ms") / divisor))).unwrap_or_default();
            format!(
                "{:.1} ({:.1}–{:.1}){ratio}",
                ms(v, "median_ms") / divisor,
                ms(v, "p10_ms") / divisor,
                ms(v, "p90_ms") / divisor
            )
        };
        let torch_text =
            |table: &str| torch_cell(table, shape).map(|v| fmt(&v)).unwrap_or_else(|| "not measured".into());
        let mut line = format!("| {label} | {} | {} |", torch_text("cells"), torch_text("cells_bf16"));
        for c in &columns {
            let raw = rust.get(c.key()).and_then(|col| col.get(shape.as_str()));
            let text = match cell(&rust, &c.key(), shape) {
                Some(v) => fmt(v),
                None if rust.get(c.key()).is_none() => "not built".into(),
                None if raw.is_some_and(|v| v.get("skipped").is_some()) => "skipped (> 5 s at a smaller shape)".into(),
                None if raw.is_some_and(|v| v.get("unsupported").is_some()) => "unsupported".into(),
                None => "n/a".into(),
            };
            line.push_str(&format!(" {text} |"));
        }
        writeln!(md, "{line}")?;
    }
    for note in &notes {
        writeln!(md, "\n{note}.")?;
    }
    write_ratio_table(&mut md, &shapes, &columns, &torch_cell, &rust)?;
    writeln!(md, "\nFor reference (NOT measured here): the source article's Apple M4 Max figures known to us are PyTorch CPU 81 ms at 1x128 and 411 ms at 8x128; its other cells are not reproduced.")?;

    // Profile: every measured route per shape and precision; the dispatcher's pick per row.
    let mut entries = Vec::new();
    for shape in &shapes {
        let (rows_n, context) =
            shape.split_once('x').map(|(r, c)| (r.parse().unwrap_or(1), c.parse().unwrap_or(1))).unwrap_or((1, 1));
        for precision in Precision::ALL {
            let timings: Vec<Timing> = columns
                .iter()
                .filter(|c| c.route.precision == precision)
                .filter_map(|c| {
                    cell(&rust, &c.key(), shape).map(|v| Timing { route: c.route_key(), median_ms: ms(v, "median_ms") })
                })
                .collect();
            if !timings.is_empty() {
                let shape = CallShape { rows: rows_n, context, prediction_length: PREDICTION_LENGTH };
                entries.push(ProfileEntry { shape, precision, timings, winner: None, origin: None });
            }
        }
    }
    let profile = Profile { source: format!("bench-matrix {date} on {machine}, {threads} threads"), entries };
    let mut routes: Vec<RouteKey> = Vec::new();
    for c in &columns {
        let route = c.route_key();
        if !routes.contains(&route) {
            routes.push(route);
        }
    }
    writeln!(
        md,
        "\nDispatcher (`auto`) with this profile, per row and measured precision: pick vs fastest measured cell"
    )?;
    writeln!(md, "\n| batch x context | precision | dispatcher pick | fastest measured |\n|---|---|---|---|")?;
    for entry in &profile.entries {
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
        writeln!(md, "| {}x{} | {} | {pick} | {fastest} |", entry.shape.rows, entry.shape.context, entry.precision)?;
    }

    std::fs::write(out_dir.join("matrix.md"), &md)?;
    let json = json!({"date": date, "machine": machine, "threads": threads, "runs": runs, "warmup": warmup,
        "prediction_length": PREDICTION_LENGTH, "torch": torch, "rust": rust, "notes": notes});
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

/// The same cells as ratios only (PyTorch CPU fp32 median / cell median): the numbers that
/// compare across machines and runs.
fn write_ratio_table(
    md: &mut String,
    shapes: &[&str],
    columns: &[Column],
    torch_cell: &dyn Fn(&str, &str) -> Option<Value>,
    rust: &Value,
) -> Result<()> {
    writeln!(
        md,
        "\nRatios only (PyTorch CPU fp32 median / cell median; >1 = faster than PyTorch fp32; - = not measured):\n"
    )?;
    let mut header = String::from("| batch x context | PyTorch CPU bf16 |");
    let mut rule = String::from("|---|---|");
    for c in columns {
        header.push_str(&format!(" {} |", c.header()));
        rule.push_str("---|");
    }
    writeln!(md, "{header}\n{rule}")?;
    for shape in shapes {
        let Some(base) = torch_cell("cells", shape).map(|v| ms(&v, "median_ms")) else { continue };
        let ratio =
            |v: Option<&Value>| v.map_or_else(|| "-".to_string(), |v| format!("{:.2}x", base / ms(v, "median_ms")));
        let mut line = format!("| {shape} | {} |", ratio(torch_cell("cells_bf16", shape).as_ref()));
        for c in columns {
            line.push_str(&format!(" {} |", ratio(cell(rust, &c.key(), shape))));
        }
        writeln!(md, "{line}")?;
    }
    Ok(())
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
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(list: &[String]) -> Result<Args, clap::Error> {
        Cli::try_parse_from(std::iter::once("bench-matrix".to_string()).chain(list.iter().cloned())).map(|c| c.args)
    }

    #[test]
    fn quick_flag_limits_rows_and_runs() {
        let a = parse(&["--quick".to_string()]).unwrap();
        assert_eq!((a.runs(), a.warmup(), a.shapes().as_str()), (3, 1, CORE_SHAPES));
        let a = parse(&["--runs".to_string(), "4".to_string(), "--no-torch".to_string()]).unwrap();
        assert_eq!((a.runs(), a.warmup(), a.no_torch), (4, 3, true));
        assert!(parse(&["--runs".to_string(), "0".to_string()]).is_err());
        assert!(parse(&["--bogus".to_string()]).is_err());
        let a = parse(&["--threads".to_string(), "16".to_string()]).unwrap();
        assert_eq!(a.threads, Some(16));
        assert!(parse(&["--threads".to_string(), "0".to_string()]).is_err());
    }

    #[test]
    fn date_is_iso() {
        let d = chrono_free_date();
        assert_eq!(d.len(), 10);
        assert!(d.starts_with("20"));
    }
}

//! `cargo xtask bench-python`: end-to-end `predict_df` of the Python package (`chronos2`,
//! Rust core) against the reference `chronos-forecasting` 2.3.2 (PyTorch + pandas), on the same
//! synthetic table, model and machine, printing where the time goes (prepare, model, output).
//!
//! Cases: 20,000 hourly series of length 200 on the bundled chronos2-mini (prediction length 24),
//! and 500 series of length 512 on a full-size Chronos-2 with random weights from a fixed seed
//! (written once to `target/bench-python/full-size`). `--quick` runs 2,000 x 200 and 50 x 512.
//!
//! Interpreters: `--python` (ours; default `target/py-venv/bin/python`, the virtualenv that
//! `crates/chronos2-py/ci.sh` creates) and `--ref-python` (default `$CHRONOS2_REF_PYTHON`, else
//! `python3`); when the reference is not importable there, its column reads "not measured".

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::repo_root;

const SCRIPT: &str = "crates/chronos2-py/bench/bench_predict_df.py";

struct Case {
    name: &'static str,
    series: usize,
    length: usize,
    full_size: bool,
}

/// Flags of `cargo xtask bench-python`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Python with our package installed (default: target/py-venv/bin/python, the virtualenv that
    /// crates/chronos2-py/ci.sh creates).
    #[arg(long, value_name = "PY")]
    python: Option<PathBuf>,
    /// Python with chronos-forecasting 2.3.2 installed.
    #[arg(long, value_name = "PY", env = "CHRONOS2_REF_PYTHON", default_value = "python3")]
    ref_python: PathBuf,
    /// 2,000 x 200 and 50 x 512 instead of 20,000 x 200 and 500 x 512.
    #[arg(long)]
    quick: bool,
    /// Timed runs per case and side.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    runs: u64,
}

fn importable(python: &Path, module: &str) -> bool {
    Command::new(python).args(["-c", &format!("import {module}")]).output().is_ok_and(|o| o.status.success())
}

fn full_size_model(dir: &Path) -> Result<()> {
    if dir.join("model.safetensors").is_file() {
        return Ok(());
    }
    println!("writing a full-size random model to {}", dir.display());
    chronos2_bench::write_random_model(dir, &chronos2_bench::full_size_config_json(), 42)
        .with_context(|| format!("cannot write {}", dir.display()))
}

fn measure(python: &Path, side: &str, model: &Path, case: &Case, runs: usize, out: &Path) -> Result<Value> {
    let json = out.join(format!("{}-{side}.json", case.name));
    let status = Command::new(python)
        .current_dir(repo_root())
        .args([SCRIPT, "--impl", side, "--model"])
        .arg(model)
        .args(["--series", &case.series.to_string(), "--length", &case.length.to_string()])
        .args(["--prediction-length", "24", "--runs", &runs.to_string(), "--json"])
        .arg(&json)
        .status()
        .with_context(|| format!("cannot start {}", python.display()))?;
    if !status.success() {
        bail!("{SCRIPT} --impl {side} failed ({status})");
    }
    Ok(serde_json::from_str(&std::fs::read_to_string(&json)?)?)
}

fn secs(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_f64).map_or("-".into(), |s| format!("{s:.2}"))
}

pub fn run(a: &Args) -> Result<()> {
    let python = a.python.clone().unwrap_or_else(|| repo_root().join("target/py-venv/bin/python"));
    let runs = a.runs as usize;
    let root = repo_root();
    if !importable(&python, "chronos2") {
        bail!(
            "{} cannot import chronos2: build it first (crates/chronos2-py/ci.sh, or `maturin develop --release` \
             in crates/chronos2-py) or pass --python",
            python.display()
        );
    }
    let reference = importable(&a.ref_python, "chronos");
    let out = root.join("target/bench-python");
    std::fs::create_dir_all(&out)?;
    let full = out.join("full-size");
    full_size_model(&full)?;
    let mini = root.join("models/chronos2-mini");
    let (small, large) = if a.quick { (2_000, 50) } else { (20_000, 500) };
    let cases = [
        Case { name: "mini", series: small, length: 200, full_size: false },
        Case { name: "full-size", series: large, length: 512, full_size: true },
    ];
    println!("| case | implementation | total s | prepare s | model s | output s | speed-up |");
    println!("|---|---|---|---|---|---|---|");
    for case in &cases {
        let model = if case.full_size { &full } else { &mini };
        let label = format!("{} x {} ({})", case.series, case.length, case.name);
        let ours = measure(&python, "ours", model, case, runs, &out)?;
        let theirs = if reference { Some(measure(&a.ref_python, "reference", model, case, runs, &out)?) } else { None };
        let ratio = theirs
            .as_ref()
            .and_then(|t| Some(t["total_s"].as_f64()? / ours["total_s"].as_f64()?))
            .map_or("-".into(), |r| format!("{r:.2}x"));
        let row = |name: &str, v: &Value, r: &str| {
            println!(
                "| {label} | {name} | {} | {} | {} | {} | {r} |",
                secs(v, "total_s"),
                secs(v, "prepare_s"),
                secs(v, "model_s"),
                secs(v, "output_s")
            )
        };
        row("chronos2 (Python, Rust core)", &ours, &ratio);
        match &theirs {
            Some(t) => row("chronos-forecasting 2.3.2", t, "1.00x"),
            None => println!(
                "| {label} | chronos-forecasting 2.3.2 | not measured (not importable by {}) | | | | |",
                a.ref_python.display()
            ),
        }
    }
    println!("speed-up = reference total / ours total (> 1: ours faster); same table, model and machine per case");
    Ok(())
}

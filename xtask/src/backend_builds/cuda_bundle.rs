//! `cargo xtask gpu-bundle`: builds here (no GPU, no CUDA needed) everything a GPU machine
//! runs for the CUDA backend, into one folder: the `chronos2-cuda` test binaries and
//! `bench-matrix-cells` with the `cuda` feature (and with `--cli` the CLI; stripped, gzipped), the `chronos` package of
//! chronos-forecasting 2.3.2 and `scripts/bench_torch.py`. `scripts/gpu-run.sh` runs them there.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use clap::Parser;

use crate::{cargo, repo_root, run};

/// The chronos-forecasting release the PyTorch side runs.
const CHRONOS_FORECASTING: &str = "chronos-forecasting==2.3.2";

/// What travels to the device (the repository's files, about 40 MiB, and this folder) must stay
/// below 64 MiB.
const MAX_BUNDLE_BYTES: u64 = 20 << 20;

#[derive(Debug, Parser)]
pub struct Args {
    /// Output folder (git-ignored; name it in the device call's `carry`).
    #[arg(long, default_value = ".carry-cuda")]
    out: PathBuf,
    /// Also the CLI with cuda. It embeds chronos2-mini (28 MB, incompressible), so with the
    /// repository's ~40 MB it does not fit a device call's 64 MB: off by default (the bench
    /// binary loads models through the same registry entry).
    #[arg(long)]
    cli: bool,
}

/// Test executables of `cargo test -p chronos2-cuda --no-run` (from cargo's JSON messages).
fn test_binaries() -> Result<Vec<(String, PathBuf)>> {
    let output = cargo()
        .current_dir(repo_root())
        .args(["test", "-p", "chronos2-cuda", "--no-run", "--message-format=json-render-diagnostics"])
        .stderr(Stdio::inherit())
        .output()
        .context("cargo test --no-run")?;
    if !output.status.success() {
        bail!("cargo test -p chronos2-cuda --no-run failed");
    }
    let mut out = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let Some(exe) = msg["executable"].as_str() else { continue };
        if msg["profile"]["test"].as_bool() == Some(true) && msg["target"]["kind"][0] == "test" {
            out.push((msg["target"]["name"].as_str().unwrap_or("test").to_string(), PathBuf::from(exe)));
        }
    }
    if out.is_empty() {
        bail!("cargo built no chronos2-cuda test binary");
    }
    Ok(out)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join("target"))
}

fn copy_stripped(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to).with_context(|| format!("copy {} to {}", from.display(), to.display()))?;
    run(Command::new("strip").arg(to))
}

/// The pure-Python `chronos` package of chronos-forecasting, unpacked under `dest/chronos`.
fn chronos_package(dest: &Path) -> Result<()> {
    if dest.join("chronos/chronos2/model.py").is_file() {
        return Ok(());
    }
    let wheels = std::env::temp_dir().join("chronos2-gpu-bundle-wheel");
    run(Command::new("python3")
        .args(["-m", "pip", "download", "--no-deps", "-q", "-d"])
        .arg(&wheels)
        .arg(CHRONOS_FORECASTING))
    .context("pip download chronos-forecasting (needs network here)")?;
    let wheel = std::fs::read_dir(&wheels)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .context("no chronos-forecasting wheel downloaded")?;
    run(Command::new("python3").args(["-m", "zipfile", "-e"]).arg(&wheel).arg(dest))
}

fn folder_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() { folder_bytes(&entry.path())? } else { meta.len() };
    }
    Ok(total)
}

pub fn bundle(args: &Args) -> Result<()> {
    let out = repo_root().join(&args.out);
    let bin = out.join("bin");
    if bin.exists() {
        std::fs::remove_dir_all(&bin)?;
    }
    std::fs::create_dir_all(&bin)?;
    for (name, exe) in test_binaries()? {
        copy_stripped(&exe, &bin.join(format!("test-{name}")))?;
    }
    run(cargo().args([
        "build",
        "--release",
        "-p",
        "chronos2-bench",
        "--features",
        "cuda",
        "--bin",
        "bench-matrix-cells",
    ]))?;
    copy_stripped(&target_dir().join("release/bench-matrix-cells"), &bin.join("bench-matrix-cells"))?;
    if args.cli {
        run(cargo().args(["build", "--release", "-p", "chronos2-cli", "--features", "cuda"]))?;
        copy_stripped(&target_dir().join("release/chronos2"), &bin.join("chronos2"))?;
    }
    chronos_package(&out.join("python"))?;
    std::fs::copy(repo_root().join("scripts/bench_torch.py"), out.join("bench_torch.py"))?;
    // gzip -9 (a third of the size): scripts/gpu-run.sh unpacks them there.
    for entry in std::fs::read_dir(&bin)? {
        run(Command::new("gzip").arg("-9").arg(entry?.path()))?;
    }
    let bytes = folder_bytes(&out)?;
    if bytes > MAX_BUNDLE_BYTES {
        bail!(
            "{} is {} MiB, above the {} MiB budget of the device call",
            out.display(),
            bytes >> 20,
            MAX_BUNDLE_BYTES >> 20
        );
    }
    println!(
        "{}: {:.1} MiB; on the GPU machine run `scripts/gpu-run.sh {}`",
        out.display(),
        bytes as f64 / (1 << 20) as f64,
        args.out.display()
    );
    Ok(())
}

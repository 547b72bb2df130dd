//! Build entry of the MLX backend: on Linux, MLX's CPU backend prepared by
//! scripts/prepare-mlx-linux.sh (a cargo config file that builds `chronos2-mlx` against the
//! prebuilt MLX CPU library); on Apple silicon, the stock `mlx-rs` crates (no preparation).

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use super::{Entry, Setup};
use crate::repo_root;

pub const ENTRY: Entry = Entry { name: "mlx", package: "chronos2-mlx", prepare, found };

const APPLE_SILICON: bool = cfg!(all(target_os = "macos", target_arch = "aarch64"));

/// The cargo config an MLX build needs here: none on Apple silicon (stock crates), on Linux the
/// one written by the prepare script (run first; idempotent).
fn prepare() -> Result<Setup> {
    if APPLE_SILICON {
        Ok(Setup::Builds { config: None })
    } else if cfg!(target_os = "linux") {
        Ok(Setup::Builds { config: Some(run_prepare_script()?) })
    } else {
        Ok(Setup::NotHere(not_here()))
    }
}

/// The MLX build as it is: the stock crates on Apple silicon, on Linux the cargo config of an
/// earlier `scripts/prepare-mlx-linux.sh` (`$CHRONOS2_MLX_CARGO_CONFIG`, else its default place).
fn found() -> Setup {
    if APPLE_SILICON {
        return Setup::Builds { config: None };
    }
    let path = std::env::var_os("CHRONOS2_MLX_CARGO_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/mlx-prefix/cargo-config.toml"));
    if path.is_file() {
        Setup::Builds { config: Some(path) }
    } else {
        Setup::NotHere("not built: run `eval \"$(scripts/prepare-mlx-linux.sh)\"` first".into())
    }
}

fn not_here() -> String {
    format!(
        "MLX builds on Apple silicon (stock mlx-rs) and on Linux (scripts/prepare-mlx-linux.sh), not on {} {}",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

/// Runs the prepare script (idempotent) and returns `CHRONOS2_MLX_CARGO_CONFIG`.
fn run_prepare_script() -> Result<PathBuf> {
    let output = Command::new("bash")
        .arg(repo_root().join("scripts/prepare-mlx-linux.sh"))
        .current_dir(repo_root())
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run scripts/prepare-mlx-linux.sh")?;
    if !output.status.success() {
        bail!("scripts/prepare-mlx-linux.sh failed ({})", output.status);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let config = stdout
        .lines()
        .find_map(|l| l.strip_prefix("export CHRONOS2_MLX_CARGO_CONFIG="))
        .map(|v| PathBuf::from(v.trim().trim_matches('"')))
        .context("prepare-mlx-linux.sh printed no CHRONOS2_MLX_CARGO_CONFIG")?;
    Ok(config)
}

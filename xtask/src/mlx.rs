//! Preparing the MLX build on Linux (scripts/prepare-mlx-linux.sh): returns the cargo config
//! file that builds `chronos2-mlx` against the prebuilt MLX CPU library.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::repo_root;

/// Runs the prepare script (idempotent) and returns `CHRONOS2_MLX_CARGO_CONFIG`.
pub fn prepare() -> Result<PathBuf> {
    if !cfg!(target_os = "linux") {
        bail!("scripts/prepare-mlx-linux.sh is for Linux; on macOS MLX builds with stock mlx-rs");
    }
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

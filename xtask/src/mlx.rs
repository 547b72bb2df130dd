//! Where the MLX build comes from: on Linux, MLX's CPU backend prepared by
//! scripts/prepare-mlx-linux.sh (a cargo config file that builds `chronos2-mlx` against the
//! prebuilt MLX CPU library); on Apple silicon, the stock `mlx-rs` crates (no preparation).

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::repo_root;

/// The cargo config file an MLX build needs here: `Some` on Linux (after preparing MLX), `None`
/// on Apple silicon (stock crates); an error where MLX does not build.
pub fn cargo_config() -> Result<Option<PathBuf>> {
    if cfg!(target_os = "linux") {
        prepare().map(Some)
    } else if cfg!(all(target_os = "macos", target_arch = "aarch64")) {
        Ok(None)
    } else {
        bail!(
            "MLX builds on Apple silicon (stock mlx-rs) and on Linux (scripts/prepare-mlx-linux.sh), not on {} {}; \
             pass --no-mlx",
            std::env::consts::OS,
            std::env::consts::ARCH
        )
    }
}

/// Runs the prepare script (idempotent) and returns `CHRONOS2_MLX_CARGO_CONFIG`.
fn prepare() -> Result<PathBuf> {
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

//! Project tasks: `cargo xtask <task>`.
//!
//! - `test`      run every test, MLX included (the README's test command).
//! - `build-cli` build the `chronos2` binary, with `--mlx` the MLX backend too.
//! - `fixtures`  regenerate the reference fixtures with Python `chronos-forecasting`.
//! - `bench`     run the criterion forward bench and the PyTorch CPU baseline side by side.
//! - `bench-matrix` latency table vs PyTorch CPU and the dispatcher's crossover profile.
//! - `accuracy`  fp32 / int8 / int4 forecast accuracy on held-out real series (docs/accuracy.md).

mod accuracy;
mod bench_matrix;
mod finetune_eval;
mod mlx;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  test       [--no-mlx] run every test: the workspace, then the MLX backend (prepared
             with scripts/prepare-mlx-linux.sh on Linux) and the CLI tests on MLX (what CI runs)
  build-cli  [--mlx] build target/release/chronos2 (with the MLX backend; on Linux MLX is
             prepared first: apt packages, the mlx-cpu wheel, mlx-c)
  fixtures   regenerate tests/fixtures with the Python reference
             (needs: pip install chronos-forecasting==2.3.2 pandas pyarrow)
  bench      criterion forward bench (candle CPU) + PyTorch CPU baseline in the same run
  bench-matrix [--quick] [--write-profile] ...: latency table of PyTorch CPU vs our backends
             (target/bench-matrix/matrix.{md,json}, profile.json); --help for flags
  accuracy   [--quick] [--output docs/accuracy.md]: fp32 / int8 / int4 accuracy of
             models/chronos2-mini on eval/real-series (markdown report)
  finetune-eval [--steps N] [--modes lora,head,full]: fine-tune chronos2-mini on the history
             of eval/real-series, WQL / MASE on the held-out truth vs zero-shot
";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(task) = args.first() else {
        print!("{USAGE}");
        bail!("no task given");
    };
    match task.as_str() {
        "test" => test(&args[1..]),
        "build-cli" => build_cli(&args[1..]),
        "fixtures" => run(Command::new("python3").arg("scripts/generate_fixtures.py")),
        "bench" => bench(),
        "accuracy" => accuracy::run(&args[1..]),
        "finetune-eval" => finetune_eval::run(&args[1..]),
        "bench-matrix" => bench_matrix::run(&args[1..]),
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => {
            print!("{USAGE}");
            bail!("unknown task {other:?}")
        }
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the repo").to_path_buf()
}

fn run(command: &mut Command) -> Result<()> {
    command.current_dir(repo_root());
    let status = command.status().with_context(|| format!("cannot start {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed with {status}");
    }
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Every test: the workspace (CPU backend, pipeline, CLI, xtask), then — unless `--no-mlx` —
/// the MLX backend's tests and the CLI tests again with `CHRONOS2_TEST_BACKEND=mlx`.
fn test(args: &[String]) -> Result<()> {
    run(cargo().args(["test", "--workspace"]))?;
    if args.iter().any(|a| a == "--no-mlx") {
        println!("xtask test: MLX tests skipped (--no-mlx)");
        return Ok(());
    }
    let config = mlx::prepare()?;
    let mlx_cargo = || {
        let mut c = cargo();
        c.env("CARGO_TARGET_DIR", repo_root().join("target/mlx"));
        c
    };
    run(mlx_cargo().args(["test", "-p", "chronos2-mlx", "--features", "mlx", "--config"]).arg(&config))?;
    run(mlx_cargo()
        .args(["test", "-p", "chronos2", "--features", "mlx", "--config"])
        .arg(&config)
        .env("CHRONOS2_TEST_BACKEND", "mlx"))
}

/// `build-cli [--mlx]`: `target/release/chronos2`, with the MLX backend when asked.
fn build_cli(args: &[String]) -> Result<()> {
    if !args.iter().any(|a| a == "--mlx") {
        return run(cargo().args(["build", "--release", "-p", "chronos2"]));
    }
    let mut build = cargo();
    build.args(["build", "--release", "-p", "chronos2", "--features", "mlx"]);
    if cfg!(target_os = "linux") {
        build.arg("--config").arg(mlx::prepare()?);
    }
    run(&mut build)?;
    println!("built {} with backends cpu, mlx", repo_root().join("target/release/chronos2").display());
    Ok(())
}

fn bench() -> Result<()> {
    run(cargo().args(["bench", "-p", "chronos2-bench", "--bench", "forward"]))?;
    run(Command::new("python3").args(["scripts/bench_torch.py", "--threads", "2"]))
        .context("PyTorch baseline (needs chronos-forecasting installed)")
}

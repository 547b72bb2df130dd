//! Project tasks: `cargo xtask <task>` (`cargo xtask --help` lists them).

mod accuracy;
mod bench_matrix;
mod bench_python;
mod finetune_eval;
mod mlx;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "cargo xtask", about = "Project tasks of chronos2-rs")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand, Debug)]
enum Task {
    /// Run every test: the workspace, then the MLX backend's tests and the CLI tests on MLX (what
    /// CI runs). On Linux MLX is prepared first (scripts/prepare-mlx-linux.sh); on Apple silicon
    /// it builds from the stock mlx-rs crates.
    Test {
        /// Only the workspace tests, without MLX.
        #[arg(long)]
        no_mlx: bool,
    },
    /// Build target/release/chronos2.
    BuildCli {
        /// With the MLX backend (on Linux MLX is prepared first: apt packages, the mlx-cpu wheel,
        /// mlx-c).
        #[arg(long)]
        mlx: bool,
    },
    /// Regenerate tests/fixtures with the Python reference
    /// (needs: pip install chronos-forecasting==2.3.2 pandas pyarrow).
    Fixtures,
    /// Criterion forward bench (candle CPU) and the PyTorch CPU baseline in the same run.
    Bench,
    /// Latency of PyTorch CPU (fp32 and bf16) vs our backends in every precision
    /// (target/bench-matrix/matrix.{md,json}, profile.json).
    BenchMatrix(bench_matrix::Args),
    /// End-to-end predict_df of the Python package vs chronos-forecasting (20,000 series of
    /// chronos2-mini, and the full-size model), with where the time goes.
    BenchPython(bench_python::Args),
    /// Fine-tune chronos2-mini on the history of eval/real-series per mode, WQL / MASE on the
    /// held-out truth vs zero-shot.
    FinetuneEval(finetune_eval::Args),
    /// fp32 / int8 / int4 accuracy of models/chronos2-mini on eval/real-series (markdown report).
    Accuracy(accuracy::Args),
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Test { no_mlx } => test(no_mlx),
        Task::BuildCli { mlx } => build_cli(mlx),
        Task::Fixtures => run(Command::new("python3").arg("scripts/generate_fixtures.py")),
        Task::Bench => bench(),
        Task::BenchMatrix(args) => bench_matrix::run(&args),
        Task::BenchPython(args) => bench_python::run(&args),
        Task::Accuracy(args) => accuracy::run(&args),
        Task::FinetuneEval(args) => finetune_eval::run(&args),
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

/// Every test: the workspace (CPU backend, pipeline, CLI, xtask), then — unless `no_mlx` — the
/// MLX backend's tests and the CLI tests again with `CHRONOS2_TEST_BACKEND=mlx`.
fn test(no_mlx: bool) -> Result<()> {
    run(cargo().args(["test", "--workspace"]))?;
    if no_mlx {
        println!("xtask test: MLX tests skipped (--no-mlx)");
        return Ok(());
    }
    let config = mlx::cargo_config()?;
    let mlx_cargo = || {
        let mut c = cargo();
        c.env("CARGO_TARGET_DIR", repo_root().join("target/mlx"));
        if let Some(config) = &config {
            c.arg("--config").arg(config);
        }
        c
    };
    // `--config` is a global option of cargo, so it comes before the subcommand.
    run(mlx_cargo().args(["test", "-p", "chronos2-mlx", "--features", "mlx"]))?;
    run(mlx_cargo()
        .args(["test", "-p", "chronos2", "-p", "chronos2-cli", "--features", "chronos2/mlx,chronos2-cli/mlx"])
        .env("CHRONOS2_TEST_BACKEND", "mlx"))
}

/// `build-cli [--mlx]`: `target/release/chronos2`, with the MLX backend when asked.
fn build_cli(mlx: bool) -> Result<()> {
    let mut build = cargo();
    if mlx {
        if let Some(config) = mlx::cargo_config()? {
            build.arg("--config").arg(config);
        }
        build.args(["build", "--release", "-p", "chronos2-cli", "--features", "mlx"]);
    } else {
        build.args(["build", "--release", "-p", "chronos2-cli"]);
    }
    run(&mut build)?;
    let backends = if mlx { "cpu, mlx" } else { "cpu" };
    println!("built {} with backends {backends}", repo_root().join("target/release/chronos2").display());
    Ok(())
}

fn bench() -> Result<()> {
    run(cargo().args(["bench", "-p", "chronos2-bench", "--bench", "forward"]))?;
    run(Command::new("python3").args(["scripts/bench_torch.py", "--threads", "2"]))
        .context("PyTorch baseline (needs chronos-forecasting installed)")
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_is_consistent_and_parses_task_flags() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["xtask", "bench-matrix", "--quick", "--no-torch"]).unwrap();
        assert!(matches!(cli.task, Task::BenchMatrix(_)));
        let help = Cli::try_parse_from(["xtask", "bench-matrix", "--help"]).err().unwrap();
        assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp);
        let cli = Cli::try_parse_from(["xtask", "test", "--no-mlx"]).unwrap();
        assert!(matches!(cli.task, Task::Test { no_mlx: true }));
        assert!(Cli::try_parse_from(["xtask", "test", "--bogus"]).is_err());
        assert!(Cli::try_parse_from(["xtask", "nope"]).is_err());
    }

    #[test]
    fn finetune_eval_refuses_a_learning_rate_that_is_not_positive() {
        for lr in ["0", "-1e-5"] {
            let flag = format!("--learning-rate={lr}");
            let cli = Cli::try_parse_from(["xtask", "finetune-eval", "--validate", flag.as_str()]).unwrap();
            let Task::FinetuneEval(args) = cli.task else { panic!("not finetune-eval") };
            let e = finetune_eval::run(&args).unwrap_err().to_string();
            assert_eq!(e, format!("--learning-rate must be positive (got {})", lr.parse::<f32>().unwrap()));
        }
    }
}

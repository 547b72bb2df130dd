//! Project tasks: `cargo xtask <task>` (`cargo xtask --help` lists them).

mod accuracy;
mod backend_builds;
mod bench_matrix;
mod bench_python;
mod finetune_eval;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use backend_builds::Setup;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "cargo xtask", about = "Project tasks of chronos2-rs")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand, Debug)]
enum Task {
    /// Run every test: the workspace (default backend), then for each optional backend of the
    /// registry that builds here its own tests and the facade and CLI tests on it (what CI runs).
    /// A backend's build is prepared first where it needs it (xtask/src/backend_builds; e.g. on
    /// Linux scripts/prepare-mlx-linux.sh); one that does not build here is reported as skipped.
    Test {
        /// Only the workspace tests, on the default backend.
        #[arg(long)]
        default_backend_only: bool,
    },
    /// Lints (`clippy -D warnings`): the workspace, then for each optional backend that builds
    /// here its crate and the facade, CLI and bench with its feature (what CI runs).
    Clippy,
    /// Build target/release/chronos2.
    BuildCli {
        /// Also compile in these optional backends (comma-separated; prepared first where needed).
        #[arg(long, value_name = "NAMES", value_delimiter = ',')]
        backend: Vec<String>,
        #[command(flatten)]
        switches: backend_builds::BackendSwitches,
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
    /// Build what a GPU machine runs for the CUDA backend (test binaries, CLI, bench, the PyTorch
    /// side) into one folder to carry there; `scripts/gpu-run.sh` runs it.
    GpuBundle(backend_builds::cuda_bundle::Args),
    /// fp32 / int8 / int4 accuracy of models/chronos2-mini on eval/real-series (markdown report).
    Accuracy(accuracy::Args),
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Test { default_backend_only } => test(default_backend_only),
        Task::BuildCli { mut backend, switches } => {
            backend.extend(switches.0);
            backend.sort();
            backend.dedup();
            build_cli(&backend)
        }
        Task::Clippy => clippy(),
        Task::Fixtures => run(Command::new("python3").arg("scripts/generate_fixtures.py")),
        Task::Bench => bench(),
        Task::BenchMatrix(args) => bench_matrix::run(&args),
        Task::BenchPython(args) => bench_python::run(&args),
        Task::Accuracy(args) => accuracy::run(&args),
        Task::GpuBundle(args) => backend_builds::cuda_bundle::bundle(&args),
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

/// Every test: the workspace (default backend, pipeline, CLI, xtask), then — unless
/// `default_only` — each optional backend's tests and the facade and CLI tests again on it
/// (`CHRONOS2_TEST_BACKEND`).
fn test(default_only: bool) -> Result<()> {
    run(cargo().args(["test", "--workspace"]))?;
    if default_only {
        println!("xtask test: optional backends skipped (--default-backend-only)");
        return Ok(());
    }
    for entry in backend_builds::optional()? {
        let name = entry.name;
        let config = match (entry.prepare)()? {
            Setup::Builds { config } => config,
            Setup::NotHere(why) => {
                println!("xtask test: SKIPPED the {name} backend's tests: {why}");
                continue;
            }
        };
        if let Err(why) = (entry.runs)() {
            println!("xtask test: SKIPPED the {name} backend's tests (it builds, but cannot run here): {why}");
            continue;
        }
        let backend_cargo = |subcommand| backend_cargo(entry, config.as_ref(), subcommand);
        run(backend_cargo("test").args(["-p", entry.package, "--features", name]))?;
        let features = format!("chronos2/{name},chronos2-cli/{name}");
        run(backend_cargo("test")
            .args(["-p", "chronos2", "-p", "chronos2-cli", "--features", &features])
            .env("CHRONOS2_TEST_BACKEND", name))?;
    }
    Ok(())
}

/// `cargo <subcommand> --config <config>` for the optional backend of `entry`, in its own target
/// dir where it has one. The config comes after the subcommand: cargo does not pass a global
/// `--config` before it on to an external subcommand such as `clippy` (its build then missed the
/// config's `--cfg`).
fn backend_cargo(entry: &backend_builds::Entry, config: Option<&PathBuf>, subcommand: &str) -> Command {
    let mut c = cargo();
    if let Some(dir) = backend_builds::target_dir_of(entry) {
        c.env("CARGO_TARGET_DIR", dir);
    }
    c.arg(subcommand);
    if let Some(config) = config {
        c.arg("--config").arg(config);
    }
    c
}

/// `clippy`: the workspace, then each optional backend that builds here.
fn clippy() -> Result<()> {
    run(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    for entry in backend_builds::optional()? {
        let name = entry.name;
        let config = match (entry.prepare)()? {
            Setup::Builds { config } => config,
            Setup::NotHere(why) => {
                println!("xtask clippy: SKIPPED the {name} backend: {why}");
                continue;
            }
        };
        let features = format!("{}/{name},chronos2/{name},chronos2-cli/{name},chronos2-bench/{name}", entry.package);
        run(backend_cargo(entry, config.as_ref(), "clippy").args([
            "-p",
            entry.package,
            "-p",
            "chronos2",
            "-p",
            "chronos2-cli",
            "-p",
            "chronos2-bench",
            "--all-targets",
            "--features",
            &features,
            "--",
            "-D",
            "warnings",
        ]))?;
    }
    Ok(())
}

/// `build-cli [--backend NAMES]`: the `chronos2` binary, with these optional backends.
fn build_cli(backends: &[String]) -> Result<()> {
    let mut build = cargo();
    let mut features = Vec::new();
    for name in backends {
        let entry = backend_builds::entry(name.trim())?;
        match (entry.prepare)()? {
            Setup::Builds { config: Some(config) } => {
                build.arg("--config").arg(config);
            }
            Setup::Builds { config: None } => {}
            Setup::NotHere(why) => bail!("the {} backend does not build here: {why}", entry.name),
        }
        features.push(entry.name);
    }
    build.args(["build", "--release", "-p", "chronos2-cli"]);
    if !features.is_empty() {
        build.args(["--features", &features.join(",")]);
    }
    run(&mut build)?;
    let mut compiled = vec![chronos2::BackendKind::DEFAULT.name()];
    compiled.extend(&features);
    println!("built {} with backends {}", repo_root().join("target/release/chronos2").display(), compiled.join(", "));
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
        let cli = Cli::try_parse_from(["xtask", "test", "--default-backend-only"]).unwrap();
        assert!(matches!(cli.task, Task::Test { default_backend_only: true }));
        assert!(Cli::try_parse_from(["xtask", "test", "--bogus"]).is_err());
        assert!(matches!(Cli::try_parse_from(["xtask", "clippy"]).unwrap().task, Task::Clippy));
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

//! Project tasks: `cargo xtask <task>`.
//!
//! - `test`      run every test of the workspace (the README's test command).
//! - `fixtures`  regenerate the reference fixtures with Python `chronos-forecasting`.
//! - `bench`     run the criterion forward bench and the PyTorch CPU baseline side by side.
//! - `bench-matrix` latency table vs PyTorch CPU and the dispatcher's crossover profile.
//! - `accuracy`  fp32 / int8 / int4 forecast accuracy on held-out real series (docs/accuracy.md).

mod accuracy;
mod bench_matrix;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  test       run every test of the workspace (what CI runs)
  fixtures   regenerate tests/fixtures with the Python reference
             (needs: pip install chronos-forecasting==2.3.2 pandas pyarrow)
  bench      criterion forward bench (candle CPU) + PyTorch CPU baseline in the same run
  bench-matrix [--quick] [--write-profile] ...: latency table of PyTorch CPU vs our backends
             (target/bench-matrix/matrix.{md,json}, profile.json); --help for flags
  accuracy   [--quick] [--output docs/accuracy.md]: fp32 / int8 / int4 accuracy of
             models/chronos2-mini on eval/real-series (markdown report)
";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(task) = args.first() else {
        print!("{USAGE}");
        bail!("no task given");
    };
    match task.as_str() {
        "test" => test(),
        "fixtures" => run(Command::new("python3").arg("scripts/generate_fixtures.py")),
        "bench" => bench(),
        "accuracy" => accuracy::run(&args[1..]),
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

fn test() -> Result<()> {
    run(cargo().args(["test", "--workspace", "--exclude", "xtask"]))
}

fn bench() -> Result<()> {
    run(cargo().args(["bench", "-p", "chronos2-bench", "--bench", "forward"]))?;
    run(Command::new("python3").args(["scripts/bench_torch.py", "--threads", "2"]))
        .context("PyTorch baseline (needs chronos-forecasting installed)")
}

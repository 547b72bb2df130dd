//! The one runner of the CLI tests: the `chronos2` binary run from the repository root, isolated
//! from the user's environment — no `CHRONOS2_PROFILE` and its own `XDG_CONFIG_HOME` (no user
//! profile: `auto` reads the built-in one), its own `XDG_CACHE_HOME` (the bundled model is
//! extracted there), its own `HOME` (nothing read or written in the user's home, the Hugging Face
//! cache included), `HF_HUB_OFFLINE=1` (never the network), and no `CHRONOS2_BACKEND` unless a
//! test asks for the test backend ([`on_test_backend`]). Every run of the binary goes through
//! [`command`], also the ones a test spawns and signals itself.

#![allow(dead_code)] // each test file uses part of it

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// The isolated command (see the module); a test may add to it (arguments, environment, pipes)
/// and run or spawn it.
pub fn command<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Command {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let mut command = Command::new(env!("CARGO_BIN_EXE_chronos2"));
    command
        .args(args)
        .current_dir(root())
        .env_remove("CHRONOS2_BACKEND")
        .env_remove("CHRONOS2_PROFILE")
        .env("XDG_CONFIG_HOME", tmp.join("chronos2-cli-config"))
        .env("XDG_CACHE_HOME", tmp.join("chronos2-cli-cache"))
        .env("HOME", tmp.join("chronos2-cli-home"))
        .env("HF_HUB_OFFLINE", "1");
    command
}

/// `command` on the backend under test: `cargo xtask test` runs the CLI tests again on each
/// optional backend with `CHRONOS2_TEST_BACKEND` set.
pub fn on_test_backend(mut command: Command) -> Command {
    if let Ok(backend) = std::env::var("CHRONOS2_TEST_BACKEND") {
        command.env("CHRONOS2_BACKEND", backend);
    }
    command
}

/// Runs the isolated command (on the default backend).
pub fn run(args: &[&str]) -> Output {
    command(args).output().expect("run chronos2")
}

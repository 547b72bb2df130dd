//! How xtask builds the optional backends of the registry (every backend but the default, which
//! is always compiled in): the cargo feature of a backend is its name, and its entry here (a file
//! of this module, listed in [`ENTRIES`]) says whether it builds on this machine and with which
//! cargo configuration. `test`, `build-cli` and `bench-matrix` loop over these and name none.

mod cuda;
pub mod cuda_bundle;
mod mlx;

use std::path::PathBuf;

use anyhow::{bail, Result};
use chronos2::BackendKind;

/// How an optional backend builds here.
pub enum Setup {
    /// It builds with this cargo config file (`--config`), or with none.
    Builds { config: Option<PathBuf> },
    /// It does not build on this machine, and why.
    NotHere(String),
}

/// An optional backend's build entry.
pub struct Entry {
    pub name: &'static str,
    /// The backend's crate (its own tests run with the feature `name`).
    pub package: &'static str,
    /// Prepares the build (may install or build prerequisites); for `test` and `build-cli`.
    pub prepare: fn() -> Result<Setup>,
    /// The build as it is, without preparing anything; for `bench-matrix`.
    pub found: fn() -> Setup,
    /// Whether a build of it can run its tests here (`Err`: why not; `test` then skips them).
    pub runs: fn() -> Result<(), String>,
    /// Whether it builds in its own target directory ([`target_dir`]) rather than the default
    /// one (a backend that only adds pure-Rust crates shares the default one's dependencies).
    pub own_target: bool,
}

/// Every optional backend's entry.
const ENTRIES: &[Entry] = &[mlx::ENTRY, cuda::ENTRY];

/// The optional backends of the registry (all but the default), with their entries.
pub fn optional() -> Result<Vec<&'static Entry>> {
    BackendKind::ALL
        .into_iter()
        .filter(|k| *k != BackendKind::DEFAULT)
        .map(|k| match ENTRIES.iter().find(|e| e.name == k.name()) {
            Some(entry) => Ok(entry),
            None => bail!("backend '{k}' has no build entry in xtask/src/backend_builds"),
        })
        .collect()
}

/// The entry of the backend called `name`.
pub fn entry(name: &str) -> Result<&'static Entry> {
    match optional()?.into_iter().find(|e| e.name == name) {
        Some(entry) => Ok(entry),
        None => {
            let names: Vec<&str> = optional()?.iter().map(|e| e.name).collect();
            bail!("'{name}' is not an optional backend (optional backends: {})", names.join(", "))
        }
    }
}

/// The target directory of a build with the backend `name` (its own, so that switching
/// features does not rebuild the default one).
pub fn target_dir(name: &str) -> PathBuf {
    crate::repo_root().join("target").join(name)
}

/// The target directory of a build with the backend of `entry`: its own, or the default one
/// (`None`) for an entry that shares it.
pub fn target_dir_of(entry: &Entry) -> Option<PathBuf> {
    entry.own_target.then(|| target_dir(entry.name))
}

/// One switch per optional backend, `--<name>` (`cargo xtask build-cli --cuda`): the same as
/// naming the backend in `--backend`.
#[derive(Debug, Clone, Default)]
pub struct BackendSwitches(pub Vec<String>);

impl clap::FromArgMatches for BackendSwitches {
    fn from_arg_matches(matches: &clap::ArgMatches) -> std::result::Result<Self, clap::Error> {
        Ok(Self(ENTRIES.iter().filter(|e| matches.get_flag(e.name)).map(|e| e.name.to_string()).collect()))
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> std::result::Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl clap::Args for BackendSwitches {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        ENTRIES.iter().fold(cmd, |cmd, e| {
            cmd.arg(
                clap::Arg::new(e.name)
                    .long(e.name)
                    .action(clap::ArgAction::SetTrue)
                    .help(format!("Also compile in the {} backend (same as --backend {})", e.name, e.name)),
            )
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn every_optional_backend_has_one_entry() {
        let optional = optional().unwrap();
        assert_eq!(optional.len(), BackendKind::ALL.len() - 1);
        assert_eq!(optional.len(), ENTRIES.len());
        assert!(entry("nope").is_err());
    }

    #[test]
    fn every_optional_backend_has_a_build_cli_switch() {
        for e in super::ENTRIES {
            let flag = format!("--{}", e.name);
            let cli = crate::Cli::try_parse_from(["xtask", "build-cli", flag.as_str()]).unwrap();
            let crate::Task::BuildCli { backend, switches } = cli.task else { panic!("not build-cli") };
            assert!(backend.is_empty());
            assert_eq!(switches.0, vec![e.name.to_string()], "{flag}");
        }
        let cli = crate::Cli::try_parse_from(["xtask", "build-cli"]).unwrap();
        let crate::Task::BuildCli { switches, .. } = cli.task else { panic!("not build-cli") };
        assert!(switches.0.is_empty());
    }
}

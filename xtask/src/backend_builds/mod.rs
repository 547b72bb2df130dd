//! How xtask builds the optional backends of the registry (every backend but the default, which
//! is always compiled in): the cargo feature of a backend is its name, and its entry here (a file
//! of this module, listed in [`ENTRIES`]) says whether it builds on this machine and with which
//! cargo configuration. `test`, `build-cli` and `bench-matrix` loop over these and name none.

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
}

/// Every optional backend's entry.
const ENTRIES: &[Entry] = &[mlx::ENTRY];

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_optional_backend_has_one_entry() {
        let optional = optional().unwrap();
        assert_eq!(optional.len(), BackendKind::ALL.len() - 1);
        assert_eq!(optional.len(), ENTRIES.len());
        assert!(entry("nope").is_err());
    }
}

//! The bundled default model (chronos2-mini), embedded in the library and extracted once to a
//! private cache directory so that it can be memory-mapped like any model directory.
//!
//! The cache is trusted only as far as it is checked: the directory must belong to the user and
//! not be writable by others, and every run compares the cached files with the embedded bytes
//! (rewriting any that differ), so a cached model altered in place is never used.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Name of the bundled model.
pub const BUNDLED_MODEL_NAME: &str = "chronos2-mini";

const CONFIG: &[u8] = include_bytes!("../../../models/chronos2-mini/config.json");
const WEIGHTS: &[u8] = include_bytes!("../../../models/chronos2-mini/model.safetensors");

/// Where the bundled model is extracted: `$XDG_CACHE_HOME/chronos2/chronos2-mini`, else
/// `$HOME/.cache/chronos2/chronos2-mini`. Relative values are ignored (as the XDG spec says);
/// with neither set to an absolute path there is no cache directory (never a shared temporary one).
pub fn bundled_model_cache_dir() -> Result<PathBuf> {
    let absolute = |name: &str| std::env::var_os(name).map(PathBuf::from).filter(|p| p.is_absolute());
    let base = absolute("XDG_CACHE_HOME").or_else(|| absolute("HOME").map(|h| h.join(".cache"))).ok_or_else(|| {
        Error::BundledModel {
            path: PathBuf::from("$XDG_CACHE_HOME or $HOME/.cache"),
            message: "neither XDG_CACHE_HOME nor HOME is set to an absolute path (set one, or pass --model <DIR>)"
                .into(),
        }
    })?;
    Ok(base.join("chronos2").join(BUNDLED_MODEL_NAME))
}

/// The directory of the bundled model, extracting it first when missing or different from the
/// embedded bytes (each file is written to a temporary name and renamed).
pub fn bundled_model_dir() -> Result<PathBuf> {
    let dir = bundled_model_cache_dir()?;
    extract_to(&dir)?;
    Ok(dir)
}

fn extract_to(dir: &Path) -> Result<()> {
    let err = |message: String| Error::BundledModel { path: dir.to_path_buf(), message };
    create_private_dir(dir)
        .map_err(|e| err(format!("{e} (set XDG_CACHE_HOME to a directory of your own, or pass --model)")))?;
    for parent in [dir.parent(), Some(dir)].into_iter().flatten() {
        check_private(parent).map_err(err)?;
    }
    let files: [(&str, &[u8]); 2] = [("config.json", CONFIG), ("model.safetensors", WEIGHTS)];
    for (name, bytes) in files {
        let path = dir.join(name);
        if holds(&path, bytes) {
            continue;
        }
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let result = std::fs::write(&tmp, bytes).and_then(|_| std::fs::rename(&tmp, &path));
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(err(format!("{name}: {e} (set XDG_CACHE_HOME to a writable directory, or pass --model)")));
        }
    }
    Ok(())
}

/// True when `path` is a regular file whose content is exactly `bytes`.
fn holds(path: &Path, bytes: &[u8]) -> bool {
    let is_file = std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && m.len() == bytes.len() as u64);
    is_file && std::fs::read(path).is_ok_and(|content| content == bytes)
}

/// Creates `dir` and its missing parents, readable by the user only (0700 on Unix).
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// A cache directory must be a real directory of the user's own that others cannot write to.
#[cfg(unix)]
fn check_private(dir: &Path) -> std::result::Result<(), String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !meta.is_dir() {
        return Err(format!("{} is not a directory (a symbolic link is not accepted)", dir.display()));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    if meta.uid() != uid {
        return Err(format!("{} belongs to user id {}, not to you ({uid})", dir.display(), meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        // Ours, but writable by others: make it private before trusting anything in it.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("{} is writable by others and cannot be made private: {e}", dir.display()))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_dir: &Path) -> std::result::Result<(), String> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_once_and_repairs_changed_files() {
        let dir = std::env::temp_dir().join(format!("chronos2-bundled-{}", std::process::id())).join("m");
        extract_to(&dir).unwrap();
        assert_eq!(std::fs::read(dir.join("config.json")).unwrap(), CONFIG);
        std::fs::write(dir.join("model.safetensors"), b"short").unwrap();
        extract_to(&dir).unwrap();
        assert!(holds(&dir.join("model.safetensors"), WEIGHTS));
        // Same size, one byte changed.
        let mut tampered = WEIGHTS.to_vec();
        *tampered.last_mut().unwrap() ^= 1;
        std::fs::write(dir.join("model.safetensors"), &tampered).unwrap();
        extract_to(&dir).unwrap();
        assert!(holds(&dir.join("model.safetensors"), WEIGHTS));
        std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
    }
}

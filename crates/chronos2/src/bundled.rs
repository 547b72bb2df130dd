//! The bundled default model (chronos2-mini), embedded in the library and extracted once to a
//! cache directory so that it can be memory-mapped like any model directory.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Name of the bundled model.
pub const BUNDLED_MODEL_NAME: &str = "chronos2-mini";

const CONFIG: &[u8] = include_bytes!("../../../models/chronos2-mini/config.json");
const WEIGHTS: &[u8] = include_bytes!("../../../models/chronos2-mini/model.safetensors");

/// Where the bundled model is extracted: `$XDG_CACHE_HOME/chronos2/chronos2-mini`, else
/// `~/.cache/chronos2/chronos2-mini`, else under the system temporary directory.
pub fn bundled_model_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("chronos2").join(BUNDLED_MODEL_NAME)
}

/// The directory of the bundled model, extracting it first when missing or incomplete
/// (checked by file size; each file is written to a temporary name and renamed).
pub fn bundled_model_dir() -> Result<PathBuf> {
    let dir = bundled_model_cache_dir();
    extract_to(&dir)?;
    Ok(dir)
}

fn extract_to(dir: &Path) -> Result<()> {
    let err = |message: String| Error::BundledModel { path: dir.to_path_buf(), message };
    let files: [(&str, &[u8]); 2] = [("config.json", CONFIG), ("model.safetensors", WEIGHTS)];
    if files.iter().all(|(name, bytes)| file_len(&dir.join(name)) == Some(bytes.len() as u64)) {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    for (name, bytes) in files {
        let path = dir.join(name);
        if file_len(&path) == Some(bytes.len() as u64) {
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

fn file_len(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().filter(|m| m.is_file()).map(|m| m.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_once_and_repairs_truncated_files() {
        let dir = std::env::temp_dir().join(format!("chronos2-bundled-{}", std::process::id())).join("m");
        extract_to(&dir).unwrap();
        assert_eq!(std::fs::read(dir.join("config.json")).unwrap(), CONFIG);
        std::fs::write(dir.join("model.safetensors"), b"short").unwrap();
        extract_to(&dir).unwrap();
        assert_eq!(file_len(&dir.join("model.safetensors")), Some(WEIGHTS.len() as u64));
        std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
    }
}

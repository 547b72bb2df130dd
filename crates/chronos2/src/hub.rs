//! Model resolution: a local directory, or a Hugging Face hub id (`amazon/chronos-2`). The
//! network (hf-hub, ureq, TLS) is here, in the facade: the core and the backends never build it.
//!
//! A hub id is looked up in the local Hugging Face cache first (`HF_HOME` / `HF_HUB_CACHE`);
//! when it is not cached and `HF_HUB_OFFLINE` is not set, the files are downloaded.

use std::path::{Path, PathBuf};

use chronos2_core::model_files::{CONFIG_FILE, WEIGHTS_FILE};
use chronos2_core::{Error, Result};

/// Resolves `spec` (a directory path or a hub id) to a directory holding `config.json` and
/// `model.safetensors`.
pub fn resolve_model_dir(spec: &str) -> Result<PathBuf> {
    let path = Path::new(spec);
    // Anything present on disk (a symbolic link included, even a broken one) is a local path,
    // never a hub id.
    if std::fs::symlink_metadata(path).is_ok() {
        let meta = std::fs::metadata(path).map_err(|e| {
            Error::ModelNotFound(format!(
                "{spec}: cannot follow this path ({e}); is it a broken or looping symbolic link?"
            ))
        })?;
        if meta.is_dir() {
            return check_model_dir(path);
        }
        return Err(Error::ModelNotFound(format!(
            "{spec} is a file; pass the directory holding {CONFIG_FILE} and {WEIGHTS_FILE}"
        )));
    }
    if !looks_like_hub_id(spec) {
        return Err(Error::ModelNotFound(format!("{spec}: no such directory")));
    }
    resolve_hub_id(spec, hf_hub::Cache::from_env(), offline())
}

/// Checks that `dir` holds a config and weights; says which file is missing.
pub fn check_model_dir(dir: &Path) -> Result<PathBuf> {
    for file in [CONFIG_FILE, WEIGHTS_FILE] {
        if !dir.join(file).is_file() {
            return Err(Error::ModelNotFound(format!(
                "{} has no {file} (a Chronos-2 model directory holds {CONFIG_FILE} and {WEIGHTS_FILE})",
                dir.display()
            )));
        }
    }
    Ok(dir.to_path_buf())
}

fn looks_like_hub_id(spec: &str) -> bool {
    let parts: Vec<&str> = spec.split('/').collect();
    parts.len() == 2
        && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
}

fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").map(|v| !v.is_empty() && v != "0" && v.to_lowercase() != "false").unwrap_or(false)
}

fn resolve_hub_id(id: &str, cache: hf_hub::Cache, offline: bool) -> Result<PathBuf> {
    let cached = cache.model(id.to_string());
    if let (Some(config), Some(_)) = (cached.get(CONFIG_FILE), cached.get(WEIGHTS_FILE)) {
        return Ok(parent_dir(&config));
    }
    let how_to = format!(
        "download it on a machine with access (`huggingface-cli download {id}`) and copy the cache \
         ({}) here, or pass --model <DIR> with a directory holding {CONFIG_FILE} and {WEIGHTS_FILE}",
        cache.path().display()
    );
    if offline {
        return Err(Error::ModelNotFound(format!(
            "{id} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set: {how_to}"
        )));
    }
    let api = hf_hub::api::sync::ApiBuilder::from_cache(cache)
        .with_progress(false)
        .build()
        .map_err(|e| Error::ModelNotFound(format!("{id}: cannot reach the Hugging Face hub ({e}): {how_to}")))?;
    let repo = api.model(id.to_string());
    let mut config = None;
    for file in [CONFIG_FILE, WEIGHTS_FILE] {
        let path = repo.get(file).map_err(|e| {
            Error::ModelNotFound(format!("{id}: cannot download {file} from the Hugging Face hub ({e}): {how_to}"))
        })?;
        config.get_or_insert(path);
    }
    Ok(parent_dir(&config.expect("loop ran")))
}

fn parent_dir(file: &Path) -> PathBuf {
    file.parent().map(Path::to_path_buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_directory_resolves() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/chronos2-mini");
        assert!(resolve_model_dir(dir).unwrap().join(CONFIG_FILE).is_file());
    }

    #[test]
    fn directory_without_weights_names_the_missing_file() {
        let dir = std::env::temp_dir().join(format!("chronos2-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(CONFIG_FILE), "{}").unwrap();
        let err = resolve_model_dir(dir.to_str().unwrap()).unwrap_err().to_string();
        assert!(err.contains(WEIGHTS_FILE), "{err}");
    }

    fn fake_cache(name: &str, with_weights: bool) -> (hf_hub::Cache, PathBuf) {
        let root = std::env::temp_dir().join(format!("chronos2-hfcache-{name}-{}", std::process::id()));
        let repo = root.join("models--acme--tiny-chronos");
        let snapshot = repo.join("snapshots/0123abcd");
        std::fs::create_dir_all(&snapshot).unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), "0123abcd").unwrap();
        std::fs::write(snapshot.join(CONFIG_FILE), "{}").unwrap();
        if with_weights {
            std::fs::write(snapshot.join(WEIGHTS_FILE), "").unwrap();
        }
        (hf_hub::Cache::new(root), snapshot)
    }

    #[test]
    fn hub_id_resolves_from_local_cache_offline() {
        let (cache, snapshot) = fake_cache("hit", true);
        assert_eq!(resolve_hub_id("acme/tiny-chronos", cache, true).unwrap(), snapshot);
    }

    #[test]
    fn hub_id_missing_offline_says_how_to_get_weights() {
        let (cache, _) = fake_cache("miss", false);
        let err = resolve_hub_id("acme/tiny-chronos", cache, true).unwrap_err().to_string();
        assert!(err.contains("HF_HUB_OFFLINE") && err.contains("huggingface-cli download acme/tiny-chronos"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn symlink_loop_is_named_not_downloaded() {
        let dir = std::env::temp_dir().join(format!("chronos2-loop-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a"), dir.join("b"));
        let _ = (std::fs::remove_file(&a), std::fs::remove_file(&b));
        std::os::unix::fs::symlink(&b, &a).unwrap();
        std::os::unix::fs::symlink(&a, &b).unwrap();
        let err = resolve_model_dir(a.to_str().unwrap()).unwrap_err().to_string();
        assert!(err.contains("cannot follow") && !err.contains("no such directory"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unknown_path_is_a_clear_error() {
        let err = resolve_model_dir("/no/such/model/dir").unwrap_err().to_string();
        assert!(err.contains("no such directory"), "{err}");
    }
}

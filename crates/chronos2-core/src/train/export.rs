//! What fine-tuning writes, and adapters read back.
//!
//! - full: `config.json` (with `context_length` and `max_output_patches` raised as `fit` does)
//!   and `model.safetensors` with every base tensor, trained values in place;
//! - lora / qlora: a PEFT adapter, `adapter_config.json` + `adapter_model.safetensors` with keys
//!   `base_model.model.{module}.lora_{A|B}.weight` (the layout of peft's `save_pretrained`);
//!   or, with `--format npz`, MLX style: `adapters.npz` + an mlx-lm `adapter_config.json`
//!   ([`Adapter::write_npz`]);
//! - head: `head.safetensors` (the `output_patch_embedding.*` tensors) + `head_config.json`
//!   naming the base model.
//!
//! Outputs are staged in a temporary sibling directory and renamed at the end
//! ([`write_staged`]); on error nothing is left behind.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use safetensors::{Dtype, SafeTensors};
use serde_json::{json, Value};

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::model_files::{CONFIG_FILE, WEIGHTS_FILE};
use crate::weights::{InMemoryModel, ModelSource};

pub use super::adapter::Adapter;
use super::mode::LoraConfig;

pub const ADAPTER_CONFIG_FILE: &str = "adapter_config.json";
pub const ADAPTER_WEIGHTS_FILE: &str = "adapter_model.safetensors";
pub const HEAD_CONFIG_FILE: &str = "head_config.json";
pub const HEAD_WEIGHTS_FILE: &str = "head.safetensors";

/// A named host tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_path_buf(), source }
}

fn write_io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::Write { path: path.to_path_buf(), message: e.to_string() }
}

pub(super) fn weights_error(path: &Path, message: impl std::fmt::Display) -> Error {
    Error::Weights { path: path.to_path_buf(), message: message.to_string() }
}

/// Writes f32 tensors as safetensors (`{"format": "pt"}` metadata, as PyTorch writes).
pub fn write_safetensors(path: &Path, tensors: &[NamedTensor]) -> Result<()> {
    let bytes: Vec<Vec<u8>> = tensors.iter().map(|t| t.data.iter().flat_map(|v| v.to_le_bytes()).collect()).collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, b)| {
            safetensors::tensor::TensorView::new(Dtype::F32, t.shape.clone(), b)
                .map(|v| (t.name.clone(), v))
                .map_err(|e| weights_error(path, e))
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata = Some(HashMap::from([("format".to_string(), "pt".to_string())]));
    safetensors::serialize_to_file(views, &metadata, path).map_err(|e| weights_error(path, e))
}

/// Reads every tensor of a safetensors file as f32 (F32, F16, BF16).
pub fn read_safetensors(path: &Path) -> Result<Vec<NamedTensor>> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let st =
        SafeTensors::deserialize(&bytes).map_err(|e| weights_error(path, format!("not a safetensors file: {e}")))?;
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        let b = view.data();
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            Dtype::F16 => b.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            Dtype::BF16 => b.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            other => return Err(weights_error(path, format!("tensor `{name}` has unsupported dtype {other:?}"))),
        };
        out.push(NamedTensor { name, shape: view.shape().to_vec(), data });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

pub(super) fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    serde_json::from_str(&text).map_err(|e| Error::Config { path: path.to_path_buf(), message: e.to_string() })
}

pub(super) fn write_json(path: &Path, value: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("JSON value serialises");
    std::fs::write(path, text + "\n").map_err(write_io(path))
}

/// The parent directory of an output path (`.` for a bare name) and the output's file name.
fn parent_and_name(out: &Path) -> Result<(&Path, String)> {
    let name = out.file_name().ok_or_else(|| Error::InvalidInput(format!("output {} has no name", out.display())))?;
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    Ok((parent, name.to_string_lossy().into_owned()))
}

/// Checks, before any work, that the output directory `out` can be created: its parent is an
/// existing directory where this process can create entries (a probe file is created and
/// removed). `out` itself may exist (the caller decides whether it may be written over).
pub fn check_output_dir(out: &Path) -> Result<()> {
    let (parent, name) = parent_and_name(out)?;
    let write_error = |message: String| Error::Write { path: out.to_path_buf(), message };
    match std::fs::metadata(parent) {
        Err(_) => return Err(write_error(format!("directory {} does not exist", parent.display()))),
        Ok(m) if !m.is_dir() => {
            return Err(write_error(format!("{} is a file, not a directory", parent.display())));
        }
        Ok(_) => {}
    }
    if out.exists() && !out.is_dir() {
        return Err(write_error("it exists and is not a directory".into()));
    }
    let probe = parent.join(format!(".{name}.probe-{}", std::process::id()));
    let created = std::fs::OpenOptions::new().write(true).create_new(true).open(&probe);
    match created {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(write_error(format!("cannot create entries in {} ({e})", parent.display()))),
    }
}

/// Removes `.{name}.partial-{pid}` siblings of `out` left by processes that are gone (killed
/// before they could clean up).
fn remove_stale_staging(parent: &Path, name: &str) {
    let prefix = format!(".{name}.partial-");
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)).and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && crate::cleanup::process_gone(pid) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Runs `write` on a fresh temporary sibling of `out` and renames it to `out`; on error, or when
/// the process is stopped by a signal whose handler runs [`crate::cleanup::remove_all`], the
/// temporary directory is removed. Stale temporary siblings of dead processes are removed first.
/// Fails if `out` exists.
pub fn write_staged(out: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    if out.exists() {
        return Err(Error::InvalidInput(format!("output {} already exists; choose a new directory", out.display())));
    }
    check_output_dir(out)?;
    let (parent, name) = parent_and_name(out)?;
    remove_stale_staging(parent, &name);
    let staging: PathBuf = parent.join(format!(".{name}.partial-{}", std::process::id()));
    let _pending = crate::cleanup::Pending::new(&staging);
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir(&staging).map_err(write_io(&staging))?;
    let result = write(&staging).and_then(|()| std::fs::rename(&staging, out).map_err(write_io(out)));
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}

/// The files a checkpoint directory may hold: a full model, a PEFT adapter, a head, an MLX-style
/// LoRA. [`write_staged_over`] replaces them all.
const CHECKPOINT_FILES: [&str; 7] = [
    CONFIG_FILE,
    WEIGHTS_FILE,
    ADAPTER_CONFIG_FILE,
    ADAPTER_WEIGHTS_FILE,
    HEAD_CONFIG_FILE,
    HEAD_WEIGHTS_FILE,
    crate::train::adapter::NPZ_ADAPTER_FILE,
];

/// Like [`write_staged`], but an existing directory `out` is written over, as the reference's
/// `save_pretrained` does: once everything is written (staged), the checkpoint files `out` held
/// are removed and the new ones moved in; its other files stay. On error `out` is unchanged
/// when staging failed.
pub fn write_staged_over(out: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    if !out.exists() {
        return write_staged(out, write);
    }
    if !out.is_dir() {
        return Err(Error::InvalidInput(format!("output {} exists and is not a directory", out.display())));
    }
    let (parent, name) = parent_and_name(out)?;
    let staging: PathBuf = parent.join(format!(".{name}.partial-{}", std::process::id()));
    let _pending = crate::cleanup::Pending::new(&staging);
    write_staged(&staging, write)?;
    let result = (|| {
        for file in CHECKPOINT_FILES {
            let old = out.join(file);
            if old.is_file() {
                std::fs::remove_file(&old).map_err(write_io(&old))?;
            }
        }
        for entry in std::fs::read_dir(&staging).map_err(io(&staging))? {
            let entry = entry.map_err(io(&staging))?;
            let target = out.join(entry.file_name());
            std::fs::rename(entry.path(), &target).map_err(write_io(&target))?;
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&staging);
    result
}

/// Full model: the base's tensors with `trained` in place (`shared.weight` as trained is its
/// [REG] row, `reg_token_id`), and its config with `context_length` / `max_output_patches`
/// raised to at least `context_length` / `ceil(prediction_length / patch)`.
pub fn write_full_model(
    dir: &Path,
    base_dir: &Path,
    trained: &[NamedTensor],
    context_length: usize,
    prediction_length: usize,
) -> Result<()> {
    let mut config = read_json(&base_dir.join(CONFIG_FILE))?;
    let cc = config
        .get_mut("chronos_config")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| Error::Config { path: base_dir.join(CONFIG_FILE), message: "no chronos_config".into() })?;
    let patch = cc.get("output_patch_size").and_then(Value::as_u64).unwrap_or(16) as usize;
    let raise = |cc: &mut serde_json::Map<String, Value>, key: &str, v: usize| {
        let old = cc.get(key).and_then(Value::as_u64).unwrap_or(0) as usize;
        cc.insert(key.into(), json!(old.max(v)));
    };
    raise(cc, "context_length", context_length);
    raise(cc, "max_output_patches", prediction_length.div_ceil(patch));
    let reg_token_id = config.get("reg_token_id").and_then(Value::as_u64).unwrap_or(1) as usize;
    let mut tensors = read_safetensors(&base_dir.join(WEIGHTS_FILE))?;
    let trained: BTreeMap<&str, &NamedTensor> = trained.iter().map(|t| (t.name.as_str(), t)).collect();
    for t in &mut tensors {
        let Some(new) = trained.get(t.name.as_str()) else { continue };
        if t.name == "shared.weight" && new.data.len() * 2 == t.data.len() {
            let d = new.data.len();
            t.data[reg_token_id * d..(reg_token_id + 1) * d].copy_from_slice(&new.data);
        } else if new.data.len() == t.data.len() {
            t.data.clone_from(&new.data);
        } else {
            return Err(Error::InvalidInput(format!(
                "trained `{}` has {} values, the base {}",
                t.name,
                new.data.len(),
                t.data.len()
            )));
        }
    }
    write_json(&dir.join(CONFIG_FILE), &config)?;
    write_safetensors(&dir.join(WEIGHTS_FILE), &tensors)
}

/// A PEFT LoRA adapter as peft's `save_pretrained` writes it.
pub fn write_peft_adapter(dir: &Path, lora: &LoraConfig, base_model: &str, tensors: &[NamedTensor]) -> Result<()> {
    let config = json!({
        "auto_mapping": {"base_model_class": "Chronos2Model", "parent_library": "chronos.chronos2.model"},
        "base_model_name_or_path": base_model,
        "bias": "none",
        "fan_in_fan_out": false,
        "inference_mode": true,
        "init_lora_weights": true,
        "lora_alpha": lora.alpha,
        "lora_dropout": 0.0,
        "modules_to_save": null,
        "peft_type": "LORA",
        "r": lora.rank,
        "target_modules": lora.targets,
        "task_type": null,
        "use_dora": false,
        "use_rslora": false,
    });
    write_json(&dir.join(ADAPTER_CONFIG_FILE), &config)?;
    write_safetensors(&dir.join(ADAPTER_WEIGHTS_FILE), tensors)
}

/// A LoRA adapter MLX style ([`Adapter::write_npz`]) from tensors under PEFT keys.
pub fn write_npz_adapter(dir: &Path, lora: &LoraConfig, base_model: &str, tensors: &[NamedTensor]) -> Result<()> {
    let adapter = Adapter::lora_from_peft_tensors(tensors.to_vec(), lora.scaling(), Some(base_model.to_string()))
        .map_err(Error::InvalidInput)?;
    adapter.write_npz(dir, lora)
}

/// A trained head: its tensors and a config naming the base.
pub fn write_head(dir: &Path, base_model: &str, tensors: &[NamedTensor]) -> Result<()> {
    let config = json!({"base_model_name_or_path": base_model, "mode": "head", "modules": ["output_patch_embedding"]});
    write_json(&dir.join(HEAD_CONFIG_FILE), &config)?;
    write_safetensors(&dir.join(HEAD_WEIGHTS_FILE), tensors)
}

/// The model at `base_dir` with `adapter` merged in, in memory: its `config.json` and tensors.
pub fn fused_model(base_dir: &Path, adapter: &Adapter) -> Result<(Value, Vec<NamedTensor>)> {
    let config = read_json(&base_dir.join(CONFIG_FILE))?;
    let mut tensors = read_safetensors(&base_dir.join(WEIGHTS_FILE))?;
    adapter.apply(&mut tensors)?;
    Ok((config, tensors))
}

/// The model `base` with `adapter` merged in, held in memory: nothing is written to disk. Its
/// tensors are those [`write_fused`] writes, so it forecasts exactly as the written copy.
pub fn fused_source(base: &ModelSource, adapter: &Adapter) -> Result<ModelSource> {
    let (config, mut tensors) = match base {
        ModelSource::Dir(dir) => {
            (ModelConfig::from_file(&dir.join(CONFIG_FILE))?, read_safetensors(&dir.join(WEIGHTS_FILE))?)
        }
        ModelSource::Memory(model) => (model.config.clone(), model.tensors.clone()),
    };
    adapter.apply(&mut tensors)?;
    Ok(ModelSource::Memory(Arc::new(InMemoryModel { origin: base.path().to_path_buf(), config, tensors })))
}

/// Writes a model (`config.json` + `model.safetensors`) to `dir`.
pub fn write_model(dir: &Path, config: &Value, tensors: &[NamedTensor]) -> Result<()> {
    write_json(&dir.join(CONFIG_FILE), config)?;
    write_safetensors(&dir.join(WEIGHTS_FILE), tensors)
}

/// Writes `base_dir` with `adapter` merged in (`config.json` + `model.safetensors`) to `dir`.
pub fn write_fused(dir: &Path, base_dir: &Path, adapter: &Adapter) -> Result<()> {
    let (config, tensors) = fused_model(base_dir, adapter)?;
    write_model(dir, &config, &tensors)
}

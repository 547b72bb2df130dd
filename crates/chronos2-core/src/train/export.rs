//! What fine-tuning writes, and adapters read back.
//!
//! - full: `config.json` (with `context_length` and `max_output_patches` raised as `fit` does)
//!   and `model.safetensors` with every base tensor, trained values in place;
//! - lora / qlora: a PEFT adapter, `adapter_config.json` + `adapter_model.safetensors` with keys
//!   `base_model.model.{module}.lora_{A|B}.weight` (the layout of peft's `save_pretrained`);
//! - head: `head.safetensors` (the `output_patch_embedding.*` tensors) + `head_config.json`
//!   naming the base model.
//!
//! Outputs are staged in a temporary sibling directory and renamed at the end
//! ([`write_staged`]); on error nothing is left behind.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::hub::{CONFIG_FILE, WEIGHTS_FILE};

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

fn weights_error(path: &Path, message: impl std::fmt::Display) -> Error {
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

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    serde_json::from_str(&text).map_err(|e| Error::Config { path: path.to_path_buf(), message: e.to_string() })
}

fn write_json(path: &Path, value: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("JSON value serialises");
    std::fs::write(path, text + "\n").map_err(io(path))
}

/// Runs `write` on a fresh temporary sibling of `out` and renames it to `out`; on error the
/// temporary directory is removed. Fails if `out` exists.
pub fn write_staged(out: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    if out.exists() {
        return Err(Error::InvalidInput(format!("output {} already exists; choose a new directory", out.display())));
    }
    let name = out.file_name().ok_or_else(|| Error::InvalidInput(format!("output {} has no name", out.display())))?;
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(Error::InvalidInput(format!(
            "output {}: directory {} does not exist",
            out.display(),
            parent.display()
        )));
    }
    let staging: PathBuf = parent.join(format!(".{}.partial-{}", name.to_string_lossy(), std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir(&staging).map_err(io(&staging))?;
    let result = write(&staging).and_then(|()| std::fs::rename(&staging, out).map_err(io(out)));
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
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

/// A trained head: its tensors and a config naming the base.
pub fn write_head(dir: &Path, base_model: &str, tensors: &[NamedTensor]) -> Result<()> {
    let config = json!({"base_model_name_or_path": base_model, "mode": "head", "modules": ["output_patch_embedding"]});
    write_json(&dir.join(HEAD_CONFIG_FILE), &config)?;
    write_safetensors(&dir.join(HEAD_WEIGHTS_FILE), tensors)
}

/// An adapter read back: LoRA pairs, or replacement tensors (a head).
#[derive(Debug, Clone, PartialEq)]
pub enum Adapter {
    /// Per module: `A (r, in)`, `B (out, r)`, and the scaling `alpha / r`.
    Lora { pairs: BTreeMap<String, (NamedTensor, NamedTensor)>, scaling: f32, base: Option<String> },
    /// Tensors that replace the base's (a trained head).
    Replace { tensors: Vec<NamedTensor>, base: Option<String> },
}

impl Adapter {
    /// Reads a PEFT adapter directory (ours, peft's, the upstream `dummy-chronos2-lora`) or a
    /// head directory.
    pub fn load(path: &Path) -> Result<Self> {
        if path.join(ADAPTER_CONFIG_FILE).is_file() {
            return Self::load_peft(path);
        }
        if path.join(HEAD_CONFIG_FILE).is_file() {
            let config = read_json(&path.join(HEAD_CONFIG_FILE))?;
            let base = config.get("base_model_name_or_path").and_then(Value::as_str).map(String::from);
            return Ok(Adapter::Replace { tensors: read_safetensors(&path.join(HEAD_WEIGHTS_FILE))?, base });
        }
        Err(Error::InvalidInput(format!(
            "{} is not an adapter: expected {ADAPTER_CONFIG_FILE} + {ADAPTER_WEIGHTS_FILE} (PEFT LoRA) or \
             {HEAD_CONFIG_FILE} + {HEAD_WEIGHTS_FILE} (head)",
            path.display()
        )))
    }

    fn load_peft(dir: &Path) -> Result<Self> {
        let config_path = dir.join(ADAPTER_CONFIG_FILE);
        let config = read_json(&config_path)?;
        let bad = |m: &str| Error::Config { path: config_path.clone(), message: m.to_string() };
        if config.get("peft_type").and_then(Value::as_str) != Some("LORA") {
            return Err(bad("peft_type is not LORA"));
        }
        let r = config.get("r").and_then(Value::as_f64).ok_or_else(|| bad("no `r`"))? as f32;
        let alpha = config.get("lora_alpha").and_then(Value::as_f64).ok_or_else(|| bad("no `lora_alpha`"))? as f32;
        if config.get("use_rslora").and_then(Value::as_bool) == Some(true)
            || config.get("use_dora").and_then(Value::as_bool) == Some(true)
        {
            return Err(bad("rsLoRA and DoRA adapters are not supported"));
        }
        let base = config.get("base_model_name_or_path").and_then(Value::as_str).map(String::from);
        let weights_path = dir.join(ADAPTER_WEIGHTS_FILE);
        let mut a = BTreeMap::new();
        let mut b = BTreeMap::new();
        for t in read_safetensors(&weights_path)? {
            let parsed = t
                .name
                .strip_prefix("base_model.model.")
                .and_then(|n| n.strip_suffix(".weight"))
                .and_then(|n| n.rsplit_once(".lora_"));
            match parsed {
                Some((module, "A")) => a.insert(module.to_string(), t),
                Some((module, "B")) => b.insert(module.to_string(), t),
                _ => return Err(weights_error(&weights_path, format!("unexpected adapter tensor `{}`", t.name))),
            };
        }
        let mut pairs = BTreeMap::new();
        for (module, ta) in a {
            let tb = b
                .remove(&module)
                .ok_or_else(|| weights_error(&weights_path, format!("`{module}` has lora_A but no lora_B")))?;
            pairs.insert(module, (ta, tb));
        }
        if let Some(module) = b.keys().next() {
            return Err(weights_error(&weights_path, format!("`{module}` has lora_B but no lora_A")));
        }
        Ok(Adapter::Lora { pairs, scaling: alpha / r, base })
    }

    /// Applies the adapter to base tensors: `W += scaling * B A` per LoRA module, or replaces
    /// tensors. Fails if a module or tensor is missing from the base or has another shape.
    pub fn apply(&self, base: &mut [NamedTensor]) -> Result<()> {
        let mut index: HashMap<String, usize> = base.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
        let mismatch = |m: String| Error::InvalidInput(format!("the adapter does not fit the model: {m}"));
        match self {
            Adapter::Lora { pairs, scaling, .. } => {
                for (module, (a, b)) in pairs {
                    let key = format!("{module}.weight");
                    let i = *index.get(&key).ok_or_else(|| mismatch(format!("the model has no linear `{module}`")))?;
                    let w = &mut base[i];
                    let (out_dim, in_dim) = (w.shape[0], *w.shape.get(1).unwrap_or(&0));
                    let r = a.shape[0];
                    if a.shape != [r, in_dim] || b.shape != [out_dim, r] {
                        return Err(mismatch(format!(
                            "`{module}` is {out_dim}x{in_dim}, its LoRA A {:?} and B {:?}",
                            a.shape, b.shape
                        )));
                    }
                    for o in 0..out_dim {
                        for k in 0..in_dim {
                            let delta: f32 = (0..r).map(|j| b.data[o * r + j] * a.data[j * in_dim + k]).sum();
                            w.data[o * in_dim + k] += scaling * delta;
                        }
                    }
                }
            }
            Adapter::Replace { tensors, .. } => {
                for t in tensors {
                    let i = index
                        .remove(&t.name)
                        .ok_or_else(|| mismatch(format!("the model has no tensor `{}`", t.name)))?;
                    if base[i].shape != t.shape {
                        return Err(mismatch(format!(
                            "`{}` is {:?} in the model, {:?} in the adapter",
                            t.name, base[i].shape, t.shape
                        )));
                    }
                    base[i].data.clone_from(&t.data);
                }
            }
        }
        Ok(())
    }
}

/// Writes `base_dir` with `adapter` merged in (`config.json` + `model.safetensors`) to `dir`.
pub fn write_fused(dir: &Path, base_dir: &Path, adapter: &Adapter) -> Result<()> {
    let mut tensors = read_safetensors(&base_dir.join(WEIGHTS_FILE))?;
    adapter.apply(&mut tensors)?;
    write_json(&dir.join(CONFIG_FILE), &read_json(&base_dir.join(CONFIG_FILE))?)?;
    write_safetensors(&dir.join(WEIGHTS_FILE), &tensors)
}

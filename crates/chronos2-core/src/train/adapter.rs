//! Adapters read back: PEFT LoRA directories (ours, peft's, the upstream `dummy-chronos2-lora`),
//! MLX-style LoRA (`adapters.npz`, mlx-lm's `lora_a` / `lora_b` layout) and trained heads; fused
//! into base tensors ([`Adapter::apply`]) or applied at run time
//! ([`crate::model::Chronos2Model::add_adapter`]).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_json::{json, Value};

use crate::error::{Error, Result};

use super::export::{
    read_json, read_safetensors, weights_error, write_json, NamedTensor, ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE,
    HEAD_CONFIG_FILE, HEAD_WEIGHTS_FILE,
};
use super::mode::LoraConfig;
use super::npz::{read_npz, write_npz};

/// The weights file of an MLX-style LoRA adapter directory.
pub const NPZ_ADAPTER_FILE: &str = "adapters.npz";

/// Whether `path` is an npz archive (by extension, else by the zip magic).
pub fn is_npz(path: &Path) -> bool {
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("npz")) {
        return true;
    }
    let mut magic = [0u8; 4];
    std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic)).is_ok()
        && magic == *b"PK\x03\x04"
}

/// `lora_alpha / r` of a PEFT config.
fn peft_scaling(config: &Value) -> Option<f32> {
    let r = config.get("r").and_then(Value::as_f64)?;
    let alpha = config.get("lora_alpha").and_then(Value::as_f64)?;
    (r > 0.0).then_some((alpha / r) as f32)
}

/// `(rows, cols)` row-major to `(cols, rows)`.
fn transpose(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols).flat_map(|c| (0..rows).map(move |r| data[r * cols + c])).collect()
}

/// Pairs each module's A with its B.
fn pair_up(
    a: BTreeMap<String, NamedTensor>,
    mut b: BTreeMap<String, NamedTensor>,
) -> std::result::Result<BTreeMap<String, (NamedTensor, NamedTensor)>, String> {
    let mut pairs = BTreeMap::new();
    for (module, ta) in a {
        let tb = b.remove(&module).ok_or_else(|| format!("`{module}` has lora A but no lora B"))?;
        pairs.insert(module, (ta, tb));
    }
    if let Some(module) = b.keys().next() {
        return Err(format!("`{module}` has lora B but no lora A"));
    }
    Ok(pairs)
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
    /// Reads an adapter: a PEFT LoRA directory (ours, peft's, the upstream `dummy-chronos2-lora`),
    /// an MLX-style LoRA (a directory holding `adapters.npz`, or the `.npz` file itself, with
    /// `adapter_config.json` beside it), or a head directory.
    pub fn load(path: &Path) -> Result<Self> {
        if path.is_file() {
            if is_npz(path) {
                let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
                return Self::load_npz(path, dir);
            }
            return Err(Error::InvalidInput(format!(
                "{} is a file but not an .npz adapter; give an adapter directory or an .npz file",
                path.display()
            )));
        }
        if path.join(ADAPTER_WEIGHTS_FILE).is_file() && path.join(ADAPTER_CONFIG_FILE).is_file() {
            return Self::load_peft(path);
        }
        if path.join(NPZ_ADAPTER_FILE).is_file() {
            return Self::load_npz(&path.join(NPZ_ADAPTER_FILE), path);
        }
        if path.join(HEAD_CONFIG_FILE).is_file() {
            let config = read_json(&path.join(HEAD_CONFIG_FILE))?;
            let base = config.get("base_model_name_or_path").and_then(Value::as_str).map(String::from);
            return Ok(Adapter::Replace { tensors: read_safetensors(&path.join(HEAD_WEIGHTS_FILE))?, base });
        }
        Err(Error::InvalidInput(format!(
            "{} is not an adapter: expected {ADAPTER_CONFIG_FILE} + {ADAPTER_WEIGHTS_FILE} (PEFT LoRA), \
             {NPZ_ADAPTER_FILE} + {ADAPTER_CONFIG_FILE} (MLX-style LoRA) or {HEAD_CONFIG_FILE} + \
             {HEAD_WEIGHTS_FILE} (head)",
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
        let scaling = peft_scaling(&config).ok_or_else(|| bad("no `r` or `lora_alpha`"))?;
        if config.get("use_rslora").and_then(Value::as_bool) == Some(true)
            || config.get("use_dora").and_then(Value::as_bool) == Some(true)
        {
            return Err(bad("rsLoRA and DoRA adapters are not supported"));
        }
        let base = config.get("base_model_name_or_path").and_then(Value::as_str).map(String::from);
        let weights_path = dir.join(ADAPTER_WEIGHTS_FILE);
        Self::lora_from_peft_tensors(read_safetensors(&weights_path)?, scaling, base)
            .map_err(|m| weights_error(&weights_path, m))
    }

    /// A LoRA adapter from tensors under PEFT keys (`base_model.model.{module}.lora_{A|B}.weight`),
    /// as the training writes them.
    pub fn lora_from_peft_tensors(
        tensors: Vec<NamedTensor>,
        scaling: f32,
        base: Option<String>,
    ) -> std::result::Result<Self, String> {
        let mut a = BTreeMap::new();
        let mut b = BTreeMap::new();
        for t in tensors {
            let parsed = t
                .name
                .strip_prefix("base_model.model.")
                .and_then(|n| n.strip_suffix(".weight"))
                .and_then(|n| n.rsplit_once(".lora_"));
            match parsed {
                Some((module, "A")) => a.insert(module.to_string(), t),
                Some((module, "B")) => b.insert(module.to_string(), t),
                _ => return Err(format!("unexpected adapter tensor `{}`", t.name)),
            };
        }
        Ok(Adapter::Lora { pairs: pair_up(a, b)?, scaling, base })
    }

    /// An MLX-style LoRA: `{module}.lora_a` `(in, r)` and `{module}.lora_b` `(r, out)` (mlx-lm's
    /// `LoRALinear`, `y = x W^T + scale (x lora_a) lora_b`), the scale from `adapter_config.json`
    /// (mlx-lm's `lora_parameters.scale`, or PEFT's `lora_alpha / r`).
    fn load_npz(file: &Path, dir: &Path) -> Result<Self> {
        let config_path = dir.join(ADAPTER_CONFIG_FILE);
        if !config_path.is_file() {
            return Err(Error::InvalidInput(format!(
                "{}: an npz adapter needs {ADAPTER_CONFIG_FILE} beside it (mlx-lm's `lora_parameters` with \
                 `scale`, or PEFT's `r` and `lora_alpha`) to know the LoRA scale",
                file.display()
            )));
        }
        let config = read_json(&config_path)?;
        let scaling = config
            .get("lora_parameters")
            .and_then(|p| p.get("scale"))
            .and_then(Value::as_f64)
            .map(|s| s as f32)
            .or_else(|| peft_scaling(&config))
            .ok_or_else(|| Error::Config {
                path: config_path.clone(),
                message: "no LoRA scale: expected `lora_parameters.scale` (mlx-lm) or `r` and `lora_alpha` (PEFT)"
                    .into(),
            })?;
        let base = config.get("base_model_name_or_path").and_then(Value::as_str).map(String::from);
        let mut a = BTreeMap::new();
        let mut b = BTreeMap::new();
        for t in read_npz(file)? {
            let Some((module, which)) = t.name.rsplit_once(".lora_") else {
                return Err(weights_error(file, format!("unexpected adapter array `{}`", t.name)));
            };
            let [rows, cols] = t.shape[..] else {
                return Err(weights_error(file, format!("`{}` is not a matrix: shape {:?}", t.name, t.shape)));
            };
            let transposed =
                NamedTensor { name: t.name.clone(), shape: vec![cols, rows], data: transpose(&t.data, rows, cols) };
            match which {
                "a" => a.insert(module.to_string(), transposed),
                "b" => b.insert(module.to_string(), transposed),
                _ => return Err(weights_error(file, format!("unexpected adapter array `{}`", t.name))),
            };
        }
        let pairs = pair_up(a, b).map_err(|m| weights_error(file, m))?;
        Ok(Adapter::Lora { pairs, scaling, base })
    }

    /// The base model the adapter names, if any.
    pub fn base(&self) -> Option<&str> {
        match self {
            Adapter::Lora { base, .. } | Adapter::Replace { base, .. } => base.as_deref(),
        }
    }

    /// Values held by the adapter.
    pub fn num_values(&self) -> usize {
        match self {
            Adapter::Lora { pairs, .. } => pairs.values().map(|(a, b)| a.data.len() + b.data.len()).sum(),
            Adapter::Replace { tensors, .. } => tensors.iter().map(|t| t.data.len()).sum(),
        }
    }

    /// Writes a LoRA adapter MLX style to `dir`: `adapters.npz` (`{module}.lora_a` = `A^T`,
    /// `{module}.lora_b` = `B^T`) and an mlx-lm `adapter_config.json`
    /// (`lora_parameters`: rank, scale, dropout, keys).
    pub fn write_npz(&self, dir: &Path, lora: &LoraConfig) -> Result<()> {
        let Adapter::Lora { pairs, scaling, base } = self else {
            return Err(Error::InvalidInput("only LoRA adapters are written as npz".into()));
        };
        let mut arrays = Vec::with_capacity(2 * pairs.len());
        for (module, (a, b)) in pairs {
            let (r, in_dim, out_dim) = (a.shape[0], a.shape[1], b.shape[0]);
            arrays.push(NamedTensor {
                name: format!("{module}.lora_a"),
                shape: vec![in_dim, r],
                data: transpose(&a.data, r, in_dim),
            });
            arrays.push(NamedTensor {
                name: format!("{module}.lora_b"),
                shape: vec![r, out_dim],
                data: transpose(&b.data, out_dim, r),
            });
        }
        let config = json!({
            "fine_tune_type": "lora",
            "base_model_name_or_path": base,
            "lora_parameters": {"rank": lora.rank, "scale": scaling, "alpha": lora.alpha, "dropout": 0.0, "keys": lora.targets},
        });
        write_json(&dir.join(ADAPTER_CONFIG_FILE), &config)?;
        write_npz(&dir.join(NPZ_ADAPTER_FILE), &arrays)
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

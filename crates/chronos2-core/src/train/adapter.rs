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
use super::peft_config::PeftLoraConfig;

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

/// `lora_alpha / r` of a config holding both as positive numbers (an npz adapter's PEFT-style
/// scale).
fn peft_scaling(config: &Value) -> Option<f32> {
    let r = config.get("r").and_then(Value::as_f64)?;
    let alpha = config.get("lora_alpha").and_then(Value::as_f64)?;
    (r > 0.0).then_some((alpha / r) as f32)
}

/// `(rows, cols)` row-major to `(cols, rows)`.
fn transpose(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols).flat_map(|c| (0..rows).map(move |r| data[r * cols + c])).collect()
}

/// Refuses NaN or infinite adapter values, naming the adapter's file and tensor (they would make
/// every forecast NaN).
fn check_finite(file: &Path, tensors: &[NamedTensor]) -> Result<()> {
    for t in tensors {
        if let Some(i) = t.data.iter().position(|v| !v.is_finite()) {
            let bad = t.data.iter().filter(|v| !v.is_finite()).count();
            return Err(weights_error(
                file,
                format!(
                    "tensor `{}` has {bad} non-finite value(s) (the first, {}, at flat index {i})",
                    t.name, t.data[i]
                ),
            ));
        }
    }
    Ok(())
}

/// One adapted linear layer: `W + scaling * B A`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraPair {
    /// `(r, in)`.
    pub a: NamedTensor,
    /// `(out, r)`.
    pub b: NamedTensor,
    pub scaling: f32,
}

/// Pairs each module's A with its B, with the module's scaling.
fn pair_up(
    a: BTreeMap<String, NamedTensor>,
    mut b: BTreeMap<String, NamedTensor>,
    scaling: impl Fn(&str) -> f32,
) -> std::result::Result<BTreeMap<String, LoraPair>, String> {
    let mut pairs = BTreeMap::new();
    for (module, ta) in a {
        let tb = b.remove(&module).ok_or_else(|| format!("`{module}` has lora A but no lora B"))?;
        let s = scaling(&module);
        pairs.insert(module, LoraPair { a: ta, b: tb, scaling: s });
    }
    if let Some(module) = b.keys().next() {
        return Err(format!("`{module}` has lora B but no lora A"));
    }
    Ok(pairs)
}

/// An adapter read back: LoRA pairs, or replacement tensors (a head).
#[derive(Debug, Clone, PartialEq)]
pub enum Adapter {
    /// Per module: `A (r, in)`, `B (out, r)` and its scaling (`alpha / r` as peft computes it).
    Lora { pairs: BTreeMap<String, LoraPair>, base: Option<String> },
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
        let peft = path.join(ADAPTER_WEIGHTS_FILE).is_file();
        let npz = path.join(NPZ_ADAPTER_FILE).is_file();
        let head = path.join(HEAD_CONFIG_FILE).is_file() || path.join(HEAD_WEIGHTS_FILE).is_file();
        let kinds: Vec<&str> = [(peft, ADAPTER_WEIGHTS_FILE), (npz, NPZ_ADAPTER_FILE), (head, HEAD_WEIGHTS_FILE)]
            .iter()
            .filter(|(present, _)| *present)
            .map(|(_, file)| *file)
            .collect();
        if kinds.len() > 1 {
            return Err(Error::InvalidInput(format!(
                "{} holds more than one adapter ({}): keep one kind per directory",
                path.display(),
                kinds.join(", ")
            )));
        }
        if peft {
            return Self::load_peft(path);
        }
        if npz {
            return Self::load_npz(&path.join(NPZ_ADAPTER_FILE), path);
        }
        if head {
            let config = read_json(&path.join(HEAD_CONFIG_FILE))?;
            let base = config.get("base_model_name_or_path").and_then(Value::as_str).map(String::from);
            let weights = path.join(HEAD_WEIGHTS_FILE);
            let tensors = read_safetensors(&weights)?;
            if tensors.is_empty() {
                return Err(weights_error(&weights, "the head holds no tensors"));
            }
            check_finite(&weights, &tensors)?;
            return Ok(Adapter::Replace { tensors, base });
        }
        Err(Error::InvalidInput(format!(
            "{} is not an adapter: expected {ADAPTER_CONFIG_FILE} + {ADAPTER_WEIGHTS_FILE} (PEFT LoRA), \
             {NPZ_ADAPTER_FILE} + {ADAPTER_CONFIG_FILE} (MLX-style LoRA) or {HEAD_CONFIG_FILE} + \
             {HEAD_WEIGHTS_FILE} (head)",
            path.display()
        )))
    }

    /// A PEFT LoRA directory, read as peft loads it: only the modules the config targets get
    /// their pair (others in the file are ignored, as peft ignores unexpected keys), each with
    /// its rank and scaling from the config; a rank that disagrees with the weights is refused
    /// (peft's size mismatch).
    fn load_peft(dir: &Path) -> Result<Self> {
        let config_path = dir.join(ADAPTER_CONFIG_FILE);
        if !config_path.is_file() {
            return Err(Error::InvalidInput(format!(
                "{}: a PEFT adapter needs {ADAPTER_CONFIG_FILE} beside {ADAPTER_WEIGHTS_FILE}",
                dir.display()
            )));
        }
        let text =
            std::fs::read_to_string(&config_path).map_err(|source| Error::Io { path: config_path.clone(), source })?;
        let config = read_json(&config_path)?;
        let bad = |m: String| Error::Config { path: config_path.clone(), message: m };
        let peft = PeftLoraConfig::parse(&config, &text).map_err(bad)?;
        let base = config.get("base_model_name_or_path").and_then(Value::as_str).map(String::from);
        let weights_path = dir.join(ADAPTER_WEIGHTS_FILE);
        let tensors = read_safetensors(&weights_path)?;
        if tensors.is_empty() {
            return Err(weights_error(&weights_path, "the adapter holds no tensors"));
        }
        check_finite(&weights_path, &tensors)?;
        let Adapter::Lora { pairs, base } =
            Self::lora_from_peft_tensors(tensors, 1.0, base).map_err(|m| weights_error(&weights_path, m))?
        else {
            unreachable!("a LoRA adapter")
        };
        let in_file = pairs.len();
        let mut kept = BTreeMap::new();
        for (module, mut pair) in pairs {
            if !peft.targets(&module) {
                continue;
            }
            let (rank, got) = (peft.rank(&module), pair.a.shape.first().copied().unwrap_or(0));
            if got != rank {
                return Err(weights_error(
                    &weights_path,
                    format!(
                        "`{module}`: {ADAPTER_CONFIG_FILE} gives rank {rank} (`r` or `rank_pattern`) but its lora A \
                         has {got} rows (shape {:?}); peft refuses this size mismatch",
                        pair.a.shape
                    ),
                ));
            }
            pair.scaling = peft.scaling(&module);
            kept.insert(module, pair);
        }
        if kept.is_empty() {
            return Err(Error::Config {
                path: config_path,
                message: format!(
                    "the config's target_modules / exclude_modules / layers_to_transform select none of the {} \
                     modules in {ADAPTER_WEIGHTS_FILE}",
                    in_file
                ),
            });
        }
        Ok(Adapter::Lora { pairs: kept, base })
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
        Ok(Adapter::Lora { pairs: pair_up(a, b, |_| scaling)?, base })
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
        let arrays = read_npz(file)?;
        check_finite(file, &arrays)?;
        for t in arrays {
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
        if a.is_empty() && b.is_empty() {
            return Err(weights_error(file, "the adapter holds no arrays"));
        }
        let pairs = pair_up(a, b, |_| scaling).map_err(|m| weights_error(file, m))?;
        Ok(Adapter::Lora { pairs, base })
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
            Adapter::Lora { pairs, .. } => pairs.values().map(|p| p.a.data.len() + p.b.data.len()).sum(),
            Adapter::Replace { tensors, .. } => tensors.iter().map(|t| t.data.len()).sum(),
        }
    }

    /// Writes a LoRA adapter MLX style to `dir`: `adapters.npz` (`{module}.lora_a` = `A^T`,
    /// `{module}.lora_b` = `B^T`) and an mlx-lm `adapter_config.json`
    /// (`lora_parameters`: rank, scale, dropout, keys).
    pub fn write_npz(&self, dir: &Path, lora: &LoraConfig) -> Result<()> {
        let Adapter::Lora { pairs, base } = self else {
            return Err(Error::InvalidInput("only LoRA adapters are written as npz".into()));
        };
        let scaling = pairs.values().next().map_or(lora.scaling(), |p| p.scaling);
        if pairs.values().any(|p| p.scaling != scaling) {
            return Err(Error::InvalidInput(
                "an adapter with a scaling per module cannot be written as npz (one `scale`)".into(),
            ));
        }
        let mut arrays = Vec::with_capacity(2 * pairs.len());
        for (module, LoraPair { a, b, .. }) in pairs {
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
            Adapter::Lora { pairs, .. } => {
                for (module, LoraPair { a, b, scaling }) in pairs {
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

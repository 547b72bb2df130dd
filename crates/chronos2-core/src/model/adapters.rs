//! Adapters applied at run time, on top of the base weights (which they never copy).
//!
//! A [`RuntimeAdapter`] holds, per adapted linear layer, either a LoRA pair — the forward adds
//! `(x A^T) (s B)^T` (`s = alpha / r`) to the base layer's output, with `A` and `s B` as two
//! small float linears of the backend — or a replacement layer (a trained head). It is built
//! from [`Ops`] alone, so every backend runs it, on float and on quantized bases. A model holds
//! any number of them by name ([`AdapterSet`]) and each forward picks one or none.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use crate::error::{Error, Result};
use crate::ops::Ops;
use crate::train::{Adapter, LoraPair};

use super::layers::ModelLinear;

enum AdapterLayer<O: Ops> {
    /// `down` = `A (r, in)`, `up` = `scaling * B (out, r)`.
    Lora { down: O::Linear, up: O::Linear },
    /// Runs instead of the base layer.
    Replace(O::Linear),
}

/// One adapter on the backend: its layers by module name.
pub struct RuntimeAdapter<O: Ops> {
    layers: HashMap<String, AdapterLayer<O>>,
    params: usize,
    bytes: usize,
}

/// The tensors an adapter gives for one replaced linear.
#[derive(Default)]
struct Replacement<'a> {
    weight: Option<&'a [f32]>,
    shape: Vec<usize>,
    bias: Option<&'a [f32]>,
}

fn mismatch(message: String) -> Error {
    Error::InvalidInput(format!("the adapter does not fit the model: {message}"))
}

impl<O: Ops> RuntimeAdapter<O> {
    /// Uploads `adapter` for a model whose linear layers are `linears`. Fails when a module or
    /// tensor is missing from the model or has another shape, or when a replaced tensor is not a
    /// whole linear layer (weight, and bias where the layer has one).
    pub fn build(ops: &O, adapter: &Adapter, linears: &[&ModelLinear<O>]) -> Result<Self> {
        let by_name: HashMap<&str, &ModelLinear<O>> = linears.iter().map(|l| (l.module.as_str(), *l)).collect();
        let find = |module: &str| {
            by_name.get(module).copied().ok_or_else(|| mismatch(format!("the model has no linear layer `{module}`")))
        };
        let mut layers = HashMap::new();
        match adapter {
            Adapter::Lora { pairs, .. } => {
                for (module, LoraPair { a, b, scaling }) in pairs {
                    let base = ops.linear_footprint(&find(module)?.layer);
                    let (out_dim, in_dim) = (base.out_dim, base.in_dim);
                    let r = a.shape.first().copied().unwrap_or(0);
                    if r == 0 || a.shape != [r, in_dim] || b.shape != [out_dim, r] {
                        return Err(mismatch(format!(
                            "`{module}` is {out_dim}x{in_dim}, its LoRA A {:?} and B {:?}",
                            a.shape, b.shape
                        )));
                    }
                    let scaled_b: Vec<f32> = b.data.iter().map(|v| v * scaling).collect();
                    let down = ops.linear_from_host(&a.data, r, in_dim, None)?;
                    let up = ops.linear_from_host(&scaled_b, out_dim, r, None)?;
                    layers.insert(module.clone(), AdapterLayer::Lora { down, up });
                }
            }
            Adapter::Replace { tensors, .. } => {
                let mut modules: BTreeMap<&str, Replacement> = BTreeMap::new();
                for t in tensors {
                    let parsed = t.name.rsplit_once('.').filter(|(m, _)| by_name.contains_key(m));
                    let Some((module, kind @ ("weight" | "bias"))) = parsed else {
                        return Err(mismatch(format!(
                            "`{}` is not the weight or bias of a linear layer of the model; adapters applied at \
                             run time replace whole linear layers (fuse this one into the base instead: \
                             `chronos2 fuse`)",
                            t.name
                        )));
                    };
                    let entry = modules.entry(module).or_default();
                    if kind == "weight" {
                        entry.weight = Some(&t.data);
                        entry.shape.clone_from(&t.shape);
                    } else {
                        entry.bias = Some(&t.data);
                    }
                }
                for (module, Replacement { weight, shape, bias }) in modules {
                    let base = find(module)?;
                    let fp = ops.linear_footprint(&base.layer);
                    let (out_dim, in_dim) = (fp.out_dim, fp.in_dim);
                    let Some(weight) = weight else {
                        return Err(mismatch(format!("`{module}`: the adapter replaces its bias but not its weight")));
                    };
                    if shape != [out_dim, in_dim] {
                        return Err(mismatch(format!(
                            "`{module}.weight` is {:?} in the model, {shape:?} in the adapter",
                            [out_dim, in_dim]
                        )));
                    }
                    match (base.has_bias, bias) {
                        (true, Some(b)) if b.len() == out_dim => {}
                        (true, Some(b)) => {
                            return Err(mismatch(format!(
                                "`{module}.bias` has {out_dim} values in the model, {} in the adapter",
                                b.len()
                            )))
                        }
                        (true, None) => {
                            return Err(mismatch(format!(
                                "`{module}`: the adapter replaces its weight but not its bias"
                            )))
                        }
                        (false, Some(_)) => return Err(mismatch(format!("`{module}` has no bias in the model"))),
                        (false, None) => {}
                    }
                    let layer = ops.linear_from_host(weight, out_dim, in_dim, bias)?;
                    layers.insert(module.to_string(), AdapterLayer::Replace(layer));
                }
            }
        }
        let (mut params, mut bytes) = (0, 0);
        for layer in layers.values() {
            let held: Vec<&O::Linear> = match layer {
                AdapterLayer::Lora { down, up } => vec![down, up],
                AdapterLayer::Replace(l) => vec![l],
            };
            for l in held {
                let fp = ops.linear_footprint(l);
                params += fp.params;
                bytes += fp.bytes;
            }
        }
        Ok(RuntimeAdapter { layers, params, bytes })
    }

    /// The output of the linear `module` (base layer `base`) on `x` with this adapter.
    pub fn linear(&self, ops: &O, module: &str, base: &O::Linear, x: &O::Tensor) -> Result<O::Tensor> {
        match self.layers.get(module) {
            None => ops.linear(x, base),
            Some(AdapterLayer::Lora { down, up }) => {
                ops.add(&ops.linear(x, base)?, &ops.linear(&ops.linear(x, down)?, up)?)
            }
            Some(AdapterLayer::Replace(layer)) => ops.linear(x, layer),
        }
    }

    /// Parameters held by the adapter's layers.
    pub fn params(&self) -> usize {
        self.params
    }

    /// Bytes held by the adapter's layers.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// The adapters loaded on a model, by name.
pub struct AdapterSet<O: Ops> {
    adapters: RwLock<BTreeMap<String, Arc<RuntimeAdapter<O>>>>,
}

impl<O: Ops> Default for AdapterSet<O> {
    fn default() -> Self {
        AdapterSet { adapters: RwLock::new(BTreeMap::new()) }
    }
}

impl<O: Ops> AdapterSet<O> {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<RuntimeAdapter<O>>>> {
        self.adapters.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds (or replaces) the adapter `name`.
    pub fn insert(&self, name: &str, adapter: RuntimeAdapter<O>) {
        let mut adapters = self.adapters.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        adapters.insert(name.to_string(), Arc::new(adapter));
    }

    /// Removes the adapter `name`; whether it was loaded.
    pub fn remove(&self, name: &str) -> bool {
        let mut adapters = self.adapters.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        adapters.remove(name).is_some()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.read().contains_key(name)
    }

    /// The adapter `name`, or an error naming the loaded ones.
    pub fn get(&self, name: &str) -> Result<Arc<RuntimeAdapter<O>>> {
        let adapters = self.read();
        adapters.get(name).cloned().ok_or_else(|| {
            let loaded: Vec<&str> = adapters.keys().map(String::as_str).collect();
            Error::InvalidInput(format!(
                "no adapter named `{name}` is loaded (loaded: {})",
                if loaded.is_empty() { "none".to_string() } else { loaded.join(", ") }
            ))
        })
    }

    /// Parameters and bytes of every loaded adapter.
    pub fn footprint(&self) -> (usize, usize) {
        self.read().values().fold((0, 0), |(p, b), a| (p + a.params, b + a.bytes))
    }
}

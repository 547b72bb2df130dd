//! A model's weights, read by the Hugging Face key names: a memory-mapped `model.safetensors`
//! or tensors in memory (a base with an adapter fused in, never written to disk).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use safetensors::{Dtype, SafeTensors};

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::model_files::{CONFIG_FILE, WEIGHTS_FILE};
use crate::train::export::NamedTensor;

/// Where a model's config and weights are read from.
#[derive(Debug, Clone)]
pub enum ModelSource {
    /// A directory holding `config.json` and `model.safetensors` (memory-mapped).
    Dir(PathBuf),
    /// A model held in memory.
    Memory(Arc<InMemoryModel>),
}

/// A model's config and f32 tensors in memory.
#[derive(Debug)]
pub struct InMemoryModel {
    /// Names the model in messages: the directory it was derived from.
    pub origin: PathBuf,
    pub config: ModelConfig,
    pub tensors: Vec<NamedTensor>,
}

impl ModelSource {
    /// The directory the model is read from, or for a model in memory the one it was derived from.
    pub fn path(&self) -> &Path {
        match self {
            ModelSource::Dir(dir) => dir,
            ModelSource::Memory(model) => &model.origin,
        }
    }

    /// The model's config and weights.
    pub fn open(&self) -> Result<(ModelConfig, Weights)> {
        match self {
            ModelSource::Dir(dir) => {
                let config = ModelConfig::from_file(&dir.join(CONFIG_FILE))?;
                let weights_path = dir.join(WEIGHTS_FILE);
                if !weights_path.is_file() {
                    return Err(Error::ModelNotFound(format!("{} has no {WEIGHTS_FILE}", dir.display())));
                }
                Ok((config, Weights::open(&weights_path)?))
            }
            ModelSource::Memory(model) => Ok((model.config.clone(), Weights::in_memory(model.clone()))),
        }
    }
}

enum Store {
    Mapped(memmap2::Mmap),
    Memory { model: Arc<InMemoryModel>, index: HashMap<String, usize> },
}

/// A model's tensors: a memory-mapped safetensors file ([`Weights::open`], F32, F16 and BF16
/// stored) or tensors in memory ([`Weights::in_memory`]). Every tensor is read as f32.
///
/// Keys read through [`Weights::get`] are recorded so that [`Weights::check_all_used`] can
/// report keys the model did not expect.
pub struct Weights {
    path: PathBuf,
    store: Store,
    used: Mutex<BTreeSet<String>>,
}

impl Weights {
    /// Memory-maps `path` and checks that it is a safetensors file.
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        // SAFETY: the file is opened read-only and the map is never written through; a
        // checkpoint modified while mapped is a user error that safetensors' header checks
        // and our shape checks catch in the common cases.
        let mmap =
            unsafe { memmap2::Mmap::map(&file) }.map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        let weights =
            Weights { path: path.to_path_buf(), store: Store::Mapped(mmap), used: Mutex::new(BTreeSet::new()) };
        if let Store::Mapped(mmap) = &weights.store {
            weights.tensors(mmap)?;
        }
        Ok(weights)
    }

    /// The tensors of a model in memory (messages name its origin, "fused in memory").
    pub fn in_memory(model: Arc<InMemoryModel>) -> Self {
        let index = model.tensors.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
        let path = model.origin.join("(fused in memory)");
        Weights { path, store: Store::Memory { model, index }, used: Mutex::new(BTreeSet::new()) }
    }

    fn tensors<'a>(&self, mmap: &'a memmap2::Mmap) -> Result<SafeTensors<'a>> {
        SafeTensors::deserialize(mmap).map_err(|e| self.error(format!("not a valid safetensors file: {e}")))
    }

    fn error(&self, message: String) -> Error {
        Error::Weights { path: self.path.clone(), message }
    }

    /// All key names.
    pub fn keys(&self) -> Result<Vec<String>> {
        Ok(match &self.store {
            Store::Mapped(mmap) => self.tensors(mmap)?.names().into_iter().cloned().collect(),
            Store::Memory { model, .. } => model.tensors.iter().map(|t| t.name.clone()).collect(),
        })
    }

    /// Reads tensor `name`, checking that its shape is `shape`, converted to f32.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let missing = || self.error(format!("missing tensor `{name}` (expected shape {shape:?})"));
        let wrong_shape =
            |actual: &[usize]| self.error(format!("tensor `{name}` has shape {actual:?}, expected {shape:?}"));
        let values: Vec<f32> = match &self.store {
            Store::Mapped(mmap) => {
                let tensors = self.tensors(mmap)?;
                let view = tensors.tensor(name).map_err(|_| missing())?;
                if view.shape() != shape {
                    return Err(wrong_shape(view.shape()));
                }
                let bytes = view.data();
                match view.dtype() {
                    Dtype::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
                    Dtype::F16 => {
                        bytes.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect()
                    }
                    Dtype::BF16 => {
                        bytes.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect()
                    }
                    other => return Err(self.error(format!("tensor `{name}` has unsupported dtype {other:?}"))),
                }
            }
            Store::Memory { model, index } => {
                let tensor = &model.tensors[*index.get(name).ok_or_else(missing)?];
                if tensor.shape != shape {
                    return Err(wrong_shape(&tensor.shape));
                }
                tensor.data.clone()
            }
        };
        // A NaN or infinite weight makes every forecast NaN: refuse the checkpoint at load.
        let bad = values.iter().filter(|v| !v.is_finite()).count();
        if bad > 0 {
            let first = values.iter().position(|v| !v.is_finite()).expect("counted");
            return Err(self.error(format!(
                "tensor `{name}` has {bad} non-finite value(s) (NaN or infinite; the first, {}, at flat index {first}): \
                 the checkpoint is corrupt",
                values[first]
            )));
        }
        self.used.lock().expect("weights key set poisoned").insert(name.to_string());
        self.release_pages();
        Ok(values)
    }

    /// Drops the mapped pages already read from resident memory, so that loading peaks at
    /// about one copy of the weights (the backend's) instead of two. Best effort.
    fn release_pages(&self) {
        #[cfg(unix)]
        if let Store::Mapped(mmap) = &self.store {
            // SAFETY: the map is read-only and file-backed: DONTNEED only evicts clean pages,
            // which are read again from the file if touched later.
            unsafe {
                let _ = mmap.unchecked_advise(memmap2::UncheckedAdvice::DontNeed);
            }
        }
    }

    /// Fails if there are tensors that were never read (an unexpected checkpoint layout).
    pub fn check_all_used(&self) -> Result<()> {
        let used = self.used.lock().expect("weights key set poisoned");
        let unexpected: Vec<String> = self.keys()?.into_iter().filter(|k| !used.contains(k)).collect();
        if unexpected.is_empty() {
            Ok(())
        } else {
            Err(self.error(format!("unexpected tensors: {}", unexpected.join(", "))))
        }
    }
}

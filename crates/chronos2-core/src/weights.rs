//! `model.safetensors`, memory-mapped, read by the Hugging Face key names.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};

/// A memory-mapped safetensors file. Every tensor is read as f32 (F32, F16 and BF16 stored).
///
/// Keys read through [`Weights::get`] are recorded so that [`Weights::check_all_used`] can
/// report keys the model did not expect.
pub struct Weights {
    path: PathBuf,
    mmap: memmap2::Mmap,
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
        let weights = Weights { path: path.to_path_buf(), mmap, used: Mutex::new(BTreeSet::new()) };
        weights.tensors()?;
        Ok(weights)
    }

    fn tensors(&self) -> Result<SafeTensors<'_>> {
        SafeTensors::deserialize(&self.mmap).map_err(|e| self.error(format!("not a valid safetensors file: {e}")))
    }

    fn error(&self, message: String) -> Error {
        Error::Weights { path: self.path.clone(), message }
    }

    /// All key names in the file.
    pub fn keys(&self) -> Result<Vec<String>> {
        Ok(self.tensors()?.names().into_iter().cloned().collect())
    }

    /// Reads tensor `name`, checking that its shape is `shape`, converted to f32.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let tensors = self.tensors()?;
        let view = tensors
            .tensor(name)
            .map_err(|_| self.error(format!("missing tensor `{name}` (expected shape {shape:?})")))?;
        if view.shape() != shape {
            return Err(self.error(format!("tensor `{name}` has shape {:?}, expected {shape:?}", view.shape())));
        }
        let bytes = view.data();
        let values: Vec<f32> = match view.dtype() {
            Dtype::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            Dtype::F16 => bytes.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            Dtype::BF16 => bytes.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            other => return Err(self.error(format!("tensor `{name}` has unsupported dtype {other:?}"))),
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
        // SAFETY: the map is read-only and file-backed: DONTNEED only evicts clean pages, which
        // are read again from the file if touched later.
        unsafe {
            let _ = self.mmap.unchecked_advise(memmap2::UncheckedAdvice::DontNeed);
        }
    }

    /// Fails if the file holds tensors that were never read (an unexpected checkpoint layout).
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

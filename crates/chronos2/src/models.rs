//! The models of one model (a directory or a model in memory): at most one per backend of the [`crate::registry`],
//! loaded on first use, each in the precision of the [`crate::Chronos2`] that owns them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chronos2_core::weights::ModelSource;
use chronos2_core::{Forecaster, Precision};

use crate::backend::Route;
use crate::error::{Error, Result};
use crate::registry::{self, compiling_names, BackendKind, BackendModel};

/// A model loaded on one backend, in one precision.
pub struct LoadedModel {
    precision: Precision,
    model: Box<dyn BackendModel>,
}

impl LoadedModel {
    /// The model, run uncompiled (config, footprint).
    pub fn forecaster(&self) -> &dyn Forecaster {
        self.model.forecaster()
    }

    /// Runs `f` on the model, with its forward compiled when `compile`.
    fn run<T>(&self, backend: BackendKind, compile: bool, f: impl FnOnce(&dyn Forecaster) -> Result<T>) -> Result<T> {
        if !compile {
            return f(self.model.forecaster());
        }
        let compiled = self.model.compiled().ok_or_else(|| compile_unsupported(backend))?;
        f(compiled.as_ref())
    }
}

/// The error of `--compile` on a backend that does not compile its forward.
pub(crate) fn compile_unsupported(backend: BackendKind) -> Error {
    Error::CompileUnsupported { backend, compiling: compiling_names() }
}

/// The models of one model directory: at most one per backend, loaded on first use.
pub struct Models {
    source: ModelSource,
    loaded: Mutex<HashMap<BackendKind, Arc<LoadedModel>>>,
}

impl Models {
    pub fn new(source: ModelSource) -> Self {
        Models { source, loaded: Mutex::default() }
    }

    /// The model of `kind` in `precision`, loading it on first use. A backend holds one model:
    /// asking for it in another precision than it was loaded in is an error.
    pub fn model(&self, kind: BackendKind, precision: Precision) -> Result<Arc<LoadedModel>> {
        // Loading under the lock: concurrent first calls load the weights once.
        let mut loaded = self.loaded.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let model = match loaded.get(&kind) {
            Some(model) => model.clone(),
            None => {
                let model = registry::load_source(kind, &self.source, precision)?;
                let model = Arc::new(LoadedModel { precision, model });
                loaded.insert(kind, model.clone());
                model
            }
        };
        if model.precision != precision {
            return Err(Error::PrecisionMismatch { backend: kind, loaded: model.precision, requested: precision });
        }
        Ok(model)
    }

    /// Runs `f` on the model of `route`.
    pub fn run<T>(&self, route: &Route, f: impl FnOnce(&dyn Forecaster) -> Result<T>) -> Result<T> {
        if route.compile && !route.backend.compiles_forward() {
            return Err(compile_unsupported(route.backend));
        }
        self.model(route.backend, route.precision)?.run(route.backend, route.compile, f)
    }

    /// Every model loaded so far.
    pub fn loaded_models(&self) -> Vec<Arc<LoadedModel>> {
        let loaded = self.loaded.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        loaded.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn models(model: &str) -> Models {
        Models::new(ModelSource::Dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(model)))
    }

    #[test]
    fn holds_one_model_per_backend_in_one_precision() {
        // chronos2-mini: its layers are wide enough (multiples of 64) to be quantized.
        let models = models("models/chronos2-mini");
        let first = models.model(BackendKind::DEFAULT, Precision::Int8).unwrap();
        let again = models.model(BackendKind::DEFAULT, Precision::Int8).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "the default backend's model was loaded twice");
        assert!(first.forecaster().footprint().quantized_params > 0);
        let e = models.model(BackendKind::DEFAULT, Precision::Fp32).err().unwrap();
        assert_eq!(e.to_string(), format!("backend '{}' holds its model in int8, not fp32", BackendKind::DEFAULT));
    }

    #[test]
    fn compile_is_refused_for_backends_that_do_not_compile() {
        for kind in BackendKind::ALL.into_iter().filter(|k| !k.compiles_forward()) {
            let route = Route::new(kind, true, Precision::Fp32);
            let e = models("tests/fixtures/models/tiny").run(&route, |_| Ok(())).unwrap_err();
            assert!(matches!(e, Error::CompileUnsupported { backend, .. } if backend == kind), "{e:?}");
        }
    }
}

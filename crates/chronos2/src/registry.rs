//! The backend registry: the one place that knows the backends.
//!
//! Adding a backend means: a [`BackendKind`] variant and its arms in this file (name, whether it
//! is compiled in, its availability probe, loading, running, its training model), a cargo feature of this crate that
//! pulls in the backend's crate, and that crate. Nothing else names a backend: the CLI's
//! `--backend` values, the route keys of profiles, error messages and `chronos2 info` all come
//! from here.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use chronos2_core::train::{TrainModel, TrainSpec};
use chronos2_core::{Forecaster, Precision};

use crate::backend::Route;
use crate::error::{Error, Result};

/// A concrete backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BackendKind {
    /// candle on the CPU (always compiled in).
    Cpu,
    /// Apple MLX (Metal on Apple silicon; its CPU backend on Linux), behind the `mlx` feature.
    Mlx,
}

impl BackendKind {
    /// Every backend, in fallback preference order (the CPU first).
    pub const ALL: [BackendKind; 2] = [BackendKind::Cpu, BackendKind::Mlx];

    /// The name used by `--backend`, `CHRONOS2_BACKEND` and profile route keys.
    pub const fn name(self) -> &'static str {
        match self {
            BackendKind::Cpu => "cpu",
            BackendKind::Mlx => "mlx",
        }
    }

    /// The backend of a name ([`BackendKind::name`]).
    pub fn from_name(name: &str) -> Option<BackendKind> {
        BackendKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether this build contains the backend.
    pub const fn compiled(self) -> bool {
        match self {
            BackendKind::Cpu => true,
            BackendKind::Mlx => cfg!(feature = "mlx"),
        }
    }

    /// Whether the backend can compile its forward (`--compile`, a per-call choice).
    pub const fn compiles_forward(self) -> bool {
        matches!(self, BackendKind::Mlx)
    }

    /// Whether the backend can run on this machine, probed once per process.
    pub fn usable(self) -> std::result::Result<(), Unavailable> {
        static PROBED: OnceLock<Vec<std::result::Result<(), Unavailable>>> = OnceLock::new();
        let probed = PROBED.get_or_init(|| BackendKind::ALL.into_iter().map(BackendKind::probe).collect());
        let index = BackendKind::ALL.iter().position(|k| *k == self).expect("every kind is in ALL");
        probed[index].clone()
    }

    /// The device the backend runs on, for `chronos2 info` (`None` when it has nothing to add).
    pub fn device_description(self) -> Option<String> {
        match self {
            BackendKind::Cpu => Some(chronos2_candle_cpu::kernel_description()),
            #[cfg(feature = "mlx")]
            BackendKind::Mlx => chronos2_mlx::check_available().ok(),
            #[cfg(not(feature = "mlx"))]
            BackendKind::Mlx => None,
        }
    }

    fn probe(self) -> std::result::Result<(), Unavailable> {
        if !self.compiled() {
            return Err(Unavailable::NotCompiled { feature: self.name() });
        }
        match self {
            BackendKind::Cpu => Ok(()),
            #[cfg(feature = "mlx")]
            BackendKind::Mlx => chronos2_mlx::check_available().map(drop).map_err(Unavailable::Probe),
            #[cfg(not(feature = "mlx"))]
            BackendKind::Mlx => Err(Unavailable::NotCompiled { feature: self.name() }),
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a backend cannot run here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    #[error("not compiled in (rebuild with `--features {feature}`)")]
    NotCompiled { feature: &'static str },
    /// The backend's own check failed on this machine.
    #[error("{0}")]
    Probe(String),
}

/// Backends usable in this build and on this machine, CPU first.
pub fn usable_backends() -> Vec<BackendKind> {
    BackendKind::ALL.into_iter().filter(|k| k.usable().is_ok()).collect()
}

/// [`usable_backends`] as a comma-separated list.
pub fn usable_names() -> String {
    usable_backends().iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
}

/// `Ok` when `kind` can run here, else [`Error::BackendUnavailable`] naming the usable ones.
pub fn check_usable(kind: BackendKind) -> Result<()> {
    kind.usable().map_err(|reason| Error::BackendUnavailable { backend: kind, reason, available: usable_names() })
}

/// The model in `model_dir` on `kind`, for fine-tuning what `spec` trains (candle autograd on
/// the CPU, `value_and_grad` on MLX).
pub fn train_model(kind: BackendKind, model_dir: &Path, spec: TrainSpec) -> Result<Box<dyn TrainModel>> {
    check_usable(kind)?;
    Ok(match kind {
        BackendKind::Cpu => Box::new(chronos2_candle_cpu::train::CpuTrainModel::load_dir(model_dir, spec)?),
        #[cfg(feature = "mlx")]
        BackendKind::Mlx => Box::new(chronos2_mlx::train::MlxTrainModel::load_dir(model_dir, spec)?),
        #[cfg(not(feature = "mlx"))]
        BackendKind::Mlx => {
            let reason = Unavailable::NotCompiled { feature: kind.name() };
            return Err(Error::BackendUnavailable { backend: kind, reason, available: usable_names() });
        }
    })
}

/// A model loaded on one backend, in one precision.
pub struct LoadedModel {
    precision: Precision,
    model: BackendModel,
}

enum BackendModel {
    // Boxed: the CPU model holds its weights inline, the MLX one behind an `Arc`.
    Cpu(Box<chronos2_candle_cpu::CpuModel>),
    #[cfg(feature = "mlx")]
    Mlx(chronos2_mlx::MlxModel),
}

impl LoadedModel {
    fn load(kind: BackendKind, model_dir: &Path, precision: Precision) -> Result<LoadedModel> {
        check_usable(kind)?;
        let mut model = match kind {
            BackendKind::Cpu => BackendModel::Cpu(Box::new(chronos2_candle_cpu::load_model_for(model_dir, precision)?)),
            #[cfg(feature = "mlx")]
            BackendKind::Mlx => BackendModel::Mlx(chronos2_mlx::load_model(model_dir)?),
            #[cfg(not(feature = "mlx"))]
            BackendKind::Mlx => {
                let reason = Unavailable::NotCompiled { feature: kind.name() };
                return Err(Error::BackendUnavailable { backend: kind, reason, available: usable_names() });
            }
        };
        model.forecaster_mut().set_precision(precision)?;
        Ok(LoadedModel { precision, model })
    }

    /// The model, run uncompiled (config, footprint).
    pub fn forecaster(&self) -> &dyn Forecaster {
        match &self.model {
            BackendModel::Cpu(m) => m.as_ref(),
            #[cfg(feature = "mlx")]
            BackendModel::Mlx(m) => m,
        }
    }

    /// Runs `f` on the model, with its forward compiled when `compile` (for backends that
    /// [`BackendKind::compiles_forward`]; the registry refuses it for the others).
    fn run<T>(&self, compile: bool, f: impl FnOnce(&dyn Forecaster) -> Result<T>) -> Result<T> {
        match &self.model {
            BackendModel::Cpu(m) => {
                debug_assert!(!compile, "Registry::run refuses compile for the CPU backend");
                f(m.as_ref())
            }
            #[cfg(feature = "mlx")]
            BackendModel::Mlx(m) => f(&m.with_compile(compile)),
        }
    }
}

impl BackendModel {
    fn forecaster_mut(&mut self) -> &mut dyn Forecaster {
        match self {
            BackendModel::Cpu(m) => m.as_mut(),
            #[cfg(feature = "mlx")]
            BackendModel::Mlx(m) => m,
        }
    }
}

/// The models of one model directory: at most one per backend, loaded on first use.
pub struct Registry {
    model_dir: PathBuf,
    loaded: Mutex<HashMap<BackendKind, Arc<LoadedModel>>>,
}

impl Registry {
    pub fn new(model_dir: &Path) -> Self {
        Registry { model_dir: model_dir.to_path_buf(), loaded: Mutex::default() }
    }

    /// The model of `kind` in `precision`, loading it on first use. A backend holds one model:
    /// asking for it in another precision than it was loaded in is an error.
    pub fn model(&self, kind: BackendKind, precision: Precision) -> Result<Arc<LoadedModel>> {
        // Loading under the lock: concurrent first calls load the weights once.
        let mut loaded = self.loaded.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let model = match loaded.get(&kind) {
            Some(model) => model.clone(),
            None => {
                let model = Arc::new(LoadedModel::load(kind, &self.model_dir, precision)?);
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
            return Err(Error::CompileUnsupported { backend: route.backend });
        }
        self.model(route.backend, route.precision)?.run(route.compile, f)
    }

    /// Every model loaded so far.
    pub fn loaded_models(&self) -> Vec<Arc<LoadedModel>> {
        let loaded = self.loaded.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        loaded.values().cloned().collect()
    }

    /// A loaded model, CPU first (for the config and footprint).
    pub fn first_loaded(&self) -> Option<Arc<LoadedModel>> {
        let loaded = self.loaded.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        BackendKind::ALL.iter().find_map(|k| loaded.get(k).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(model: &str) -> Registry {
        Registry::new(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(model))
    }

    fn tiny() -> Registry {
        registry("tests/fixtures/models/tiny")
    }

    #[test]
    fn holds_one_model_per_backend_in_one_precision() {
        // chronos2-mini: its layers are wide enough (multiples of 64) to be quantized.
        let registry = registry("models/chronos2-mini");
        let first = registry.model(BackendKind::Cpu, Precision::Int8).unwrap();
        let again = registry.model(BackendKind::Cpu, Precision::Int8).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "the CPU model was loaded twice");
        assert!(first.forecaster().footprint().quantized_params > 0);
        let e = registry.model(BackendKind::Cpu, Precision::Fp32).err().unwrap();
        assert_eq!(e.to_string(), "backend 'cpu' holds its model in int8, not fp32");
    }

    #[test]
    fn compile_is_refused_for_backends_that_do_not_compile() {
        let route = Route::new(BackendKind::Cpu, true, Precision::Fp32);
        let e = tiny().run(&route, |_| Ok(())).unwrap_err();
        assert!(matches!(e, Error::CompileUnsupported { backend: BackendKind::Cpu }), "{e:?}");
    }

    #[test]
    fn availability_names_every_backend_and_the_cpu_is_usable() {
        assert_eq!(BackendKind::ALL.map(BackendKind::name), ["cpu", "mlx"]);
        assert_eq!(BackendKind::ALL.map(|k| BackendKind::from_name(k.name())), BackendKind::ALL.map(Some));
        assert!(BackendKind::Cpu.usable().is_ok());
        assert_eq!(BackendKind::Mlx.usable().is_ok(), cfg!(feature = "mlx") && BackendKind::Mlx.probe().is_ok());
        assert!(usable_names().starts_with("cpu"));
    }
}

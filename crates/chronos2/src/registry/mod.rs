//! The backend registry: the list of backends, the one place that knows them.
//!
//! Each backend is one value implementing [`Provider`], in its own file of this module (a
//! registry entry), listed once in [`PROVIDERS`]. Everything else derives from the list and
//! never names a backend: the default and fallback order (the list's order), `--backend` values
//! and `CHRONOS2_BACKEND`, the route keys of profiles, error messages, `chronos2 info`, the
//! Python package's mapping, the benchmark columns and `chronos2 calibrate`.
//!
//! Adding a backend: its crate (an `Ops` implementation), a cargo feature of this crate that
//! pulls it in, a file here with its [`Provider`], and one line in [`PROVIDERS`].

mod cpu;
mod cuda;
mod mlx;

use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

use chronos2_core::train::{TrainModel, TrainSpec};
use chronos2_core::weights::ModelSource;
use chronos2_core::{Forecaster, Precision};

use crate::error::{Error, Result};
pub use crate::kind::{BackendKind, Unavailable};

/// Every backend, in default and fallback order: the first is the default (always compiled in
/// and usable), the one `auto` falls back to and the one fine-tuning uses unless asked.
pub const PROVIDERS: &[&dyn Provider] = &[&cpu::Cpu, &mlx::Mlx, &cuda::Cuda];

/// One backend: what the facade needs to know about it.
pub trait Provider: Sync {
    /// The name used by `--backend`, `CHRONOS2_BACKEND`, profile route keys and the cargo
    /// feature that compiles it in.
    fn name(&self) -> &'static str;
    /// A label for tables (benchmark columns): the library and device.
    fn label(&self) -> &'static str;
    /// Whether this build contains the backend.
    fn compiled(&self) -> bool;
    /// Whether the backend can run on this machine (called once per process, only when
    /// [`Provider::compiled`]): `Ok` holds a description of its device for `chronos2 info`.
    fn probe(&self) -> std::result::Result<String, String>;
    /// Whether the backend can compile its forward (`--compile`, a per-call choice).
    fn compiles_forward(&self) -> bool;
    /// The precisions of the linear layers it runs.
    fn precisions(&self) -> &'static [Precision];
    /// Loads the model `source` (a directory or a model in memory), ready to run in `precision`.
    fn load(&self, source: &ModelSource, precision: Precision) -> Result<Box<dyn BackendModel>>;
    /// The model `source`, for fine-tuning what `spec` trains.
    fn train_model(&self, source: &ModelSource, spec: TrainSpec) -> Result<Box<dyn TrainModel>>;
}

/// A model loaded on a backend.
pub trait BackendModel: Send + Sync {
    fn forecaster(&self) -> &dyn Forecaster;
    fn forecaster_mut(&mut self) -> &mut dyn Forecaster;
    /// The model with its forward compiled; `None` for a backend that does not compile it.
    fn compiled(&self) -> Option<Box<dyn Forecaster + '_>>;
}

impl BackendKind {
    /// Every backend, in [`PROVIDERS`] order.
    pub const ALL: [BackendKind; PROVIDERS.len()] = {
        let mut out = [BackendKind(0); PROVIDERS.len()];
        let mut i = 0;
        while i < PROVIDERS.len() {
            out[i] = BackendKind(i);
            i += 1;
        }
        out
    };

    /// The default backend: the first of the list (always compiled in and usable).
    pub const DEFAULT: BackendKind = BackendKind(0);

    pub fn provider(self) -> &'static dyn Provider {
        PROVIDERS[self.0]
    }

    /// The name used by `--backend`, `CHRONOS2_BACKEND` and profile route keys.
    pub fn name(self) -> &'static str {
        self.provider().name()
    }

    /// The backend of a name ([`BackendKind::name`]).
    pub fn from_name(name: &str) -> Option<BackendKind> {
        BackendKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether this build contains the backend.
    pub fn compiled(self) -> bool {
        self.provider().compiled()
    }

    /// Whether the backend can compile its forward (`--compile`, a per-call choice).
    pub fn compiles_forward(self) -> bool {
        self.provider().compiles_forward()
    }

    /// The precisions it runs.
    pub fn precisions(self) -> &'static [Precision] {
        self.provider().precisions()
    }

    /// Whether the backend can run on this machine, probed once per process.
    pub fn usable(self) -> std::result::Result<(), Unavailable> {
        self.probed().map(drop)
    }

    /// The device the backend runs on, for `chronos2 info` (`None` when it is not usable).
    pub fn device_description(self) -> Option<String> {
        self.probed().ok()
    }

    fn probed(self) -> std::result::Result<String, Unavailable> {
        static PROBED: OnceLock<Vec<std::result::Result<String, Unavailable>>> = OnceLock::new();
        let probed = PROBED.get_or_init(|| BackendKind::ALL.into_iter().map(BackendKind::probe).collect());
        probed[self.0].clone()
    }

    fn probe(self) -> std::result::Result<String, Unavailable> {
        let provider = self.provider();
        if !provider.compiled() {
            return Err(Unavailable::NotCompiled { feature: provider.name() });
        }
        provider.probe().map_err(Unavailable::Probe)
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Debug for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BackendKind({})", self.name())
    }
}

/// Backends usable in this build and on this machine, in [`PROVIDERS`] order.
pub fn usable_backends() -> Vec<BackendKind> {
    BackendKind::ALL.into_iter().filter(|k| k.usable().is_ok()).collect()
}

/// [`usable_backends`] as a comma-separated list.
pub fn usable_names() -> String {
    names(&usable_backends())
}

/// Names of `kinds`, comma-separated.
pub fn names(kinds: &[BackendKind]) -> String {
    kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
}

/// The backends that compile their forward (compiled in or not), comma-separated.
pub fn compiling_names() -> String {
    names(&BackendKind::ALL.into_iter().filter(|k| k.compiles_forward()).collect::<Vec<_>>())
}

/// The error of loading on a backend this build does not contain (the
/// registry checks [`BackendKind::usable`] first; an entry returns this rather than panic). Unused
/// when every optional backend is compiled in.
#[cfg_attr(all(feature = "mlx", feature = "cuda"), allow(dead_code))]
fn not_compiled(provider: &dyn Provider) -> Error {
    let backend = BackendKind::from_name(provider.name()).expect("a provider of the list");
    Error::BackendUnavailable {
        backend,
        reason: Unavailable::NotCompiled { feature: provider.name() },
        available: usable_names(),
    }
}

/// `Ok` when `kind` can run here, else [`Error::BackendUnavailable`] naming the usable ones.
pub fn check_usable(kind: BackendKind) -> Result<()> {
    kind.usable().map_err(|reason| Error::BackendUnavailable { backend: kind, reason, available: usable_names() })
}

/// The model in `model_dir` on `kind`, ready to run in `precision`.
pub fn load(kind: BackendKind, model_dir: &Path, precision: Precision) -> Result<Box<dyn BackendModel>> {
    load_source(kind, &ModelSource::Dir(model_dir.to_path_buf()), precision)
}

/// The model `source` (a directory or a model in memory) on `kind`, ready to run in `precision`.
pub fn load_source(kind: BackendKind, source: &ModelSource, precision: Precision) -> Result<Box<dyn BackendModel>> {
    check_usable(kind)?;
    let mut model = kind.provider().load(source, precision)?;
    model.forecaster_mut().set_precision(precision)?;
    Ok(model)
}

/// The model in `model_dir` on `kind`, for fine-tuning what `spec` trains.
pub fn train_model(kind: BackendKind, model_dir: &Path, spec: TrainSpec) -> Result<Box<dyn TrainModel>> {
    train_model_source(kind, &ModelSource::Dir(model_dir.to_path_buf()), spec)
}

/// The model `source` (a directory or a model in memory) on `kind`, for fine-tuning what `spec` trains.
pub fn train_model_source(kind: BackendKind, source: &ModelSource, spec: TrainSpec) -> Result<Box<dyn TrainModel>> {
    check_usable(kind)?;
    kind.provider().train_model(source, spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mini() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/chronos2-mini")
    }

    #[test]
    fn names_are_unique_and_round_trip_and_the_default_is_usable() {
        let names: Vec<&str> = BackendKind::ALL.map(BackendKind::name).to_vec();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        assert_eq!(BackendKind::ALL.map(|k| BackendKind::from_name(k.name())), BackendKind::ALL.map(Some));
        assert!(BackendKind::DEFAULT.compiled());
        assert!(BackendKind::DEFAULT.usable().is_ok());
        assert!(usable_names().starts_with(BackendKind::DEFAULT.name()));
        for kind in BackendKind::ALL {
            assert_eq!(kind.usable().is_ok(), kind.compiled() && kind.provider().probe().is_ok(), "{kind}");
            assert!(kind.precisions().contains(&Precision::Fp32), "{kind}");
        }
    }

    /// Each usable backend runs exactly the precisions its entry lists (loading the others is an
    /// error), compiled where it compiles its forward.
    #[test]
    fn usable_backends_run_the_precisions_they_list() {
        for kind in usable_backends() {
            for precision in Precision::ALL {
                let loaded = load(kind, &mini(), precision);
                assert_eq!(loaded.is_ok(), kind.precisions().contains(&precision), "{kind} {precision}");
                if let Ok(model) = loaded {
                    assert_eq!(model.compiled().is_some(), kind.compiles_forward(), "{kind}");
                }
            }
        }
    }

    #[test]
    fn unusable_backends_are_errors_that_name_the_usable_ones() {
        for kind in BackendKind::ALL.into_iter().filter(|k| k.usable().is_err()) {
            let e = load(kind, &mini(), Precision::Fp32).err().unwrap().to_string();
            assert!(e.contains(&format!("usable backends: {}", usable_names())), "{e}");
        }
    }
}

//! Loaded models per route, and the per-call choice among them ([`Backend::Auto`]).
//!
//! A forced backend is loaded at once. With `auto`, every call asks the dispatcher
//! ([`chronos2_core::dispatch::choose`]) which route is expected to be fastest for its shape,
//! from the crossover profile ([`load_profile`]), and the route's model is loaded on first use.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chronos2_core::dispatch::{choose, CallShape, Decision, Profile, Route};
use chronos2_core::{Forecaster, Precision};

use crate::backend::{load_backend, Backend, BackendKind};
use crate::error::{Error, Result};

/// Environment variable naming a crossover profile file (JSON, from
/// `cargo xtask bench-matrix --write-profile`).
pub const PROFILE_ENV: &str = "CHRONOS2_PROFILE";

/// How each loaded model is prepared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoadOptions {
    /// The numeric mode of the linear layers ([`Forecaster::set_precision`]): fp32 (default),
    /// bf16, weight-only int8 / int4 (group size 64), or w8a8. A backend that cannot run it is an
    /// error, never a silent fallback.
    pub precision: Precision,
    /// Compile the MLX forward (MLX only; an error without it).
    pub compile: bool,
}

/// The profile the dispatcher uses: `$CHRONOS2_PROFILE`, else the user's
/// `~/.config/chronos2/profile.json` (`$XDG_CONFIG_HOME`), else the platform's built-in one.
pub fn load_profile() -> Result<Profile> {
    let path = match std::env::var_os(PROFILE_ENV) {
        Some(p) => Some(PathBuf::from(p)),
        None => user_profile_path().filter(|p| p.is_file()),
    };
    match path {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| Error::Read { path: path.clone(), message: e.to_string() })?;
            Profile::from_json(&text).map_err(|message| Error::Read { path, message })
        }
        None => Ok(Profile::builtin()),
    }
}

/// `$XDG_CONFIG_HOME/chronos2/profile.json` or `~/.config/chronos2/profile.json`.
pub fn user_profile_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("chronos2").join("profile.json"))
}

fn kind_of(route: &Route) -> BackendKind {
    if route.backend == BackendKind::Mlx.name() {
        BackendKind::Mlx
    } else {
        BackendKind::Cpu
    }
}

/// Routes usable in this build and on this machine, CPU first.
pub fn available_routes() -> Vec<Route> {
    let mut routes = Vec::new();
    for kind in [BackendKind::Cpu, BackendKind::Mlx] {
        if kind.usable().is_ok() {
            routes.push(Route::new(kind.name(), false));
            if kind == BackendKind::Mlx && crate::backend::MLX_COMPILE_SUPPORTED {
                routes.push(Route::new(kind.name(), true));
            }
        }
    }
    routes
}

/// The models of one [`crate::Chronos2`], loaded lazily per route.
pub struct Engines {
    model_dir: PathBuf,
    backend: Backend,
    options: LoadOptions,
    profile: Profile,
    available: Vec<Route>,
    loaded: Mutex<HashMap<Route, Arc<dyn Forecaster>>>,
}

impl Engines {
    /// Prepares the engines; a forced backend (and, with `auto`, the CPU one, which also
    /// provides the config) is loaded now so that errors surface here.
    pub fn new(model_dir: &Path, backend: Backend, options: LoadOptions) -> Result<Self> {
        let profile = load_profile()?;
        let available = available_routes();
        if let Backend::Forced(kind) = backend {
            kind.usable().map_err(|why| {
                Error::BackendUnavailable(format!(
                    "backend '{kind}' is not available: {why}. Available backends: {}",
                    crate::backend::usable_names()
                ))
            })?;
            if options.compile && kind != BackendKind::Mlx {
                return Err(Error::InvalidArgument(format!(
                    "--compile applies to the MLX backend only (backend here: {kind})"
                )));
            }
        }
        if options.compile && !available.iter().any(|r| r.compiled) {
            return Err(Error::InvalidArgument(format!(
                "--compile compiles the MLX forward, and MLX compile is not available in this build (available backends: {})",
                crate::backend::usable_names()
            )));
        }
        let engines = Engines {
            model_dir: model_dir.to_path_buf(),
            backend,
            options,
            profile,
            available,
            loaded: Mutex::new(HashMap::new()),
        };
        let first = match backend {
            Backend::Forced(kind) => Route::new(kind.name(), kind == BackendKind::Mlx && options.compile),
            Backend::Auto => Route::new(BackendKind::Cpu.name(), false),
        };
        engines.get(&first)?;
        Ok(engines)
    }

    /// The route for a call of this shape, and why.
    pub fn decide(&self, shape: &CallShape) -> Decision {
        match self.backend {
            Backend::Forced(kind) => {
                let route = Route::new(kind.name(), kind == BackendKind::Mlx && self.options.compile);
                Decision { reason: format!("{route}: forced (--backend / CHRONOS2_BACKEND)"), route }
            }
            Backend::Auto => {
                let available: Vec<Route> = if self.options.compile {
                    self.available
                        .iter()
                        .filter(|r| r.backend != BackendKind::Mlx.name() || r.compiled)
                        .cloned()
                        .collect()
                } else {
                    self.available.clone()
                };
                choose(&self.profile, &available, shape)
            }
        }
    }

    /// The model of `route`, loading it on first use.
    pub fn get(&self, route: &Route) -> Result<Arc<dyn Forecaster>> {
        if let Some(model) = self.loaded.lock().expect("engine map poisoned").get(route) {
            return Ok(model.clone());
        }
        let mut model = load_backend(kind_of(route), &self.model_dir, route.compiled)?;
        model.set_precision(self.options.precision)?;
        let model: Arc<dyn Forecaster> = Arc::from(model);
        self.loaded.lock().expect("engine map poisoned").insert(route.clone(), model.clone());
        Ok(model)
    }

    /// Any loaded model (for the config and footprint).
    pub fn any(&self) -> Arc<dyn Forecaster> {
        self.loaded
            .lock()
            .expect("engine map poisoned")
            .values()
            .next()
            .cloned()
            .expect("one model is loaded at construction")
    }

    pub fn options(&self) -> LoadOptions {
        self.options
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
    }
}

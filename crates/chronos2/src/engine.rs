//! The per-call route choice ([`Backend::Auto`]) over the models of the [registry](crate::registry).
//!
//! A forced backend is loaded at once. With `auto`, every call asks the profile arithmetic
//! ([`chronos2_core::dispatch::choose`]) which usable route is expected to be fastest for its
//! shape and precision, from the crossover profile ([`load_profile`]), and the route's backend is
//! loaded on first use. A call in a precision that the profile measured on no usable route runs on
//! the default backend (the first of the registry), and the decision says why.

use std::path::PathBuf;
use std::sync::Arc;

use chronos2_core::dispatch::{choose, CallShape, Profile};
use chronos2_core::weights::ModelSource;
use chronos2_core::{Forecaster, Precision};

use crate::backend::{Backend, BackendKind, Route};
use crate::error::{Error, ProfileError, Result};
use crate::models::{compile_unsupported, LoadedModel, Models};
use crate::registry::{check_usable, compiling_names, usable_backends, usable_names};

pub use crate::profile::{load_profile, user_profile_path, PROFILE_ENV};

/// How each loaded model is prepared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoadOptions {
    /// The numeric mode of the linear layers ([`Forecaster::set_precision`]): fp32 (default),
    /// bf16, weight-only int8 / int4 (group size 64), or w8a8. A backend that cannot run it is an
    /// error, never a silent fallback.
    pub precision: Precision,
    /// Compile the forward of a backend that compiles it (MLX); an error when no such backend is
    /// usable. With `auto`, MLX routes are then always compiled.
    pub compile: bool,
}

/// The route of a call and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub route: Route,
    pub reason: String,
}

/// The models of one [`crate::Chronos2`] and the choice of a route per call.
pub struct Engines {
    models: Models,
    backend: Backend,
    options: LoadOptions,
    profile: Profile,
    /// The model loaded at construction (the forced backend, or the default one with `auto`).
    primary: Arc<LoadedModel>,
}

impl Engines {
    /// Prepares the engines; a forced backend (and, with `auto`, the default one, which also
    /// provides the config) is loaded now so that errors surface here.
    pub fn new(source: ModelSource, backend: Backend, options: LoadOptions) -> Result<Self> {
        let profile = load_profile()?;
        let first = match backend {
            Backend::Forced(kind) => {
                check_usable(kind)?;
                if options.compile && !kind.compiles_forward() {
                    return Err(compile_unsupported(kind));
                }
                kind
            }
            Backend::Auto => {
                if options.compile && !usable_backends().iter().any(|k| k.compiles_forward()) {
                    return Err(Error::CompileUnavailable { compiling: compiling_names(), available: usable_names() });
                }
                BackendKind::DEFAULT
            }
        };
        let models = Models::new(source);
        let primary = models.model(first, options.precision)?;
        Ok(Engines { models, backend, options, profile, primary })
    }

    /// The routes `auto` chooses among: every usable backend, compiled and not where it compiles
    /// its forward (only compiled with [`LoadOptions::compile`]), in registry order.
    fn auto_routes(&self) -> Vec<Route> {
        let precision = self.options.precision;
        usable_backends()
            .into_iter()
            .flat_map(|k| {
                let compiles = k.compiles_forward();
                [false, true]
                    .into_iter()
                    .filter(move |&c| if c { compiles } else { !(compiles && self.options.compile) })
                    .map(move |c| Route::new(k, c, precision))
            })
            .collect()
    }

    /// The route for a call of this shape, and why.
    pub fn decide(&self, shape: &CallShape) -> Result<Decision> {
        let precision = self.options.precision;
        if let Backend::Forced(kind) = self.backend {
            let route = Route::new(kind, self.options.compile, precision);
            return Ok(Decision { reason: format!("{route}: forced (--backend / CHRONOS2_BACKEND)"), route });
        }
        let routes = self.auto_routes();
        let keys: Vec<_> = routes.iter().map(Route::key).collect();
        if let Some(choice) = choose(&self.profile, &keys, shape, precision)? {
            let route = *routes.iter().find(|r| r.key() == choice.route).ok_or_else(|| Error::Profile {
                path: PathBuf::from(&self.profile.source),
                source: ProfileError::UnknownRoute { key: choice.route.clone(), known: keys_text(&keys) },
            })?;
            return Ok(Decision { route, reason: format!("{}; profile: {}", choice.reason, self.profile.source) });
        }
        let route = Route::new(BackendKind::DEFAULT, false, precision);
        let measured = self.profile.routes_measured_in(precision);
        let measured = if measured.is_empty() {
            "none".to_string()
        } else {
            measured.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        };
        let reason = format!(
            "{route}: the profile ({}) measured no route usable here in {precision} (measured in {precision}: \
             {measured}; usable: {}); a call goes only to a route measured in its precision, else to the default backend",
            self.profile.source,
            keys_text(&keys),
        );
        Ok(Decision { route, reason })
    }

    /// Runs `f` on the model of the route chosen for a call of this shape.
    pub fn run<T>(&self, shape: &CallShape, f: impl FnOnce(&dyn Forecaster) -> Result<T>) -> Result<T> {
        let decision = self.decide(shape)?;
        log::debug!("backend: {}", decision.reason);
        self.models.run(&decision.route, f)
    }

    /// The model loaded at construction (config, footprint).
    pub fn primary(&self) -> &dyn Forecaster {
        self.primary.forecaster()
    }

    /// Every model loaded so far, on any backend.
    pub fn loaded_models(&self) -> Vec<Arc<LoadedModel>> {
        self.models.loaded_models()
    }

    pub fn options(&self) -> LoadOptions {
        self.options
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
    }
}

fn keys_text(keys: &[chronos2_core::dispatch::RouteKey]) -> String {
    keys.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{builtin_profile, parse_profile, APPLE_SILICON_PROFILE, LINUX_X86_PROFILE};

    fn cpu() -> BackendKind {
        BackendKind::from_name("cpu").unwrap()
    }

    fn mlx() -> BackendKind {
        BackendKind::from_name("mlx").unwrap()
    }

    fn shape(rows: usize, context: usize) -> CallShape {
        CallShape { rows, context, prediction_length: 24 }
    }

    fn key(k: &str) -> chronos2_core::dispatch::RouteKey {
        chronos2_core::dispatch::RouteKey::new(k)
    }

    fn all_keys() -> Vec<chronos2_core::dispatch::RouteKey> {
        Route::all_keys()
    }

    fn pick(p: &Profile, keys: &[chronos2_core::dispatch::RouteKey], s: CallShape, precision: Precision) -> String {
        choose(p, keys, &s, precision).unwrap().map(|d| d.route.to_string()).unwrap_or_else(|| "fallback".into())
    }

    #[test]
    fn builtin_profiles_parse_and_name_only_registry_routes() {
        for (name, text) in [LINUX_X86_PROFILE, APPLE_SILICON_PROFILE] {
            let p = parse_profile(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!p.entries.is_empty(), "{name}");
        }
        builtin_profile("test").unwrap();
    }

    #[test]
    fn unknown_route_names_are_errors() {
        let text = r#"{"source": "x", "entries": [{"shape": {"rows": 1, "context": 128, "prediction_length": 24},
            "timings": [{"route": "mxl", "median_ms": 5.0}]}]}"#;
        let e = parse_profile(text).unwrap_err().to_string();
        assert!(e.starts_with("unknown route 'mxl' (routes: cpu, mlx, mlx+compile"), "{e}");
    }

    #[test]
    fn apple_builtin_follows_article_crossover_and_marks_origins() {
        let p = parse_profile(APPLE_SILICON_PROFILE.1).unwrap();
        let fp32 = |r, c| pick(&p, &all_keys(), shape(r, c), Precision::Fp32);
        assert_eq!(fp32(1, 128), "cpu");
        assert_eq!(fp32(2, 512), "mlx+compile");
        assert_eq!(fp32(8, 128), "mlx+compile");
        assert_eq!(fp32(16, 1024), "mlx");
        assert_eq!(fp32(64, 2048), "mlx");
        // Every point says whether it is the article's or interpolated from it.
        let article =
            p.entries.iter().filter(|e| e.origin.as_deref().is_some_and(|o| o.starts_with("article"))).count();
        assert_eq!(article, 3);
        assert!(p.entries.iter().all(|e| e.origin.is_some()));
        // The article measured fp32 only: quantized calls are not routed from it.
        assert_eq!(pick(&p, &all_keys(), shape(8, 512), Precision::Int4), "fallback");
    }

    #[test]
    fn linux_builtin_picks_cpu_without_mlx_and_measured_winners_with_it() {
        let p = parse_profile(LINUX_X86_PROFILE.1).unwrap();
        let cpu_only = [key("cpu")];
        assert_eq!(pick(&p, &cpu_only, shape(64, 512), Precision::Fp32), "cpu");
        assert_eq!(pick(&p, &all_keys(), shape(1, 128), Precision::Fp32), "cpu");
        // At every measured point the pick is the route with the lowest measured median there
        // (MLX wins some fp32 points of the committed profile; the expectation is read from the
        // profile's own timings, not written here).
        let mut mlx_wins = 0;
        for e in &p.entries {
            let fastest = e.timings.iter().min_by(|a, b| a.median_ms.total_cmp(&b.median_ms)).unwrap();
            assert_eq!(pick(&p, &all_keys(), e.shape, e.precision), fastest.route.to_string(), "{:?}", e.shape);
            mlx_wins += usize::from(fastest.route.to_string().starts_with("mlx"));
        }
        assert!(mlx_wins > 0, "the committed profile has MLX winning somewhere");
        assert_eq!(pick(&p, &all_keys(), shape(8, 512), Precision::Int8), "cpu");
        // Every precision was measured; int4 at 8x512 was measured on the CPU only (MLX's int4
        // cells past 8x128 were skipped as too slow), so it goes there from its own timings.
        assert_eq!(pick(&p, &all_keys(), shape(8, 512), Precision::Int4), "cpu");
        // Without the int4 entries no route is chosen from the other precisions' timings.
        let mut fp32_only = p.clone();
        fp32_only.entries.retain(|e| e.precision != Precision::Int4);
        assert_eq!(pick(&fp32_only, &all_keys(), shape(8, 512), Precision::Int4), "fallback");
    }

    fn engines(backend: Backend, options: LoadOptions) -> Result<Engines> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/models/tiny");
        Engines::new(ModelSource::Dir(dir), backend, options)
    }

    /// With the built-in profile less its int4 entries, `auto` sends an int4 call (measured
    /// nowhere) to the CPU and says why; an int8 call follows the profile.
    #[test]
    fn unmeasured_precision_goes_to_cpu_and_says_why() {
        let int4 = LoadOptions { precision: Precision::Int4, compile: false };
        let mut without_int4 = parse_profile(LINUX_X86_PROFILE.1).unwrap();
        without_int4.entries.retain(|e| e.precision != Precision::Int4);
        let e = Engines { profile: without_int4, ..engines(Backend::Auto, int4).unwrap() };
        let d = e.decide(&shape(32, 512)).unwrap();
        assert_eq!(d.route, Route::new(cpu(), false, Precision::Int4));
        assert!(d.reason.contains("measured no route usable here in int4"), "{}", d.reason);
        assert!(d.reason.contains("measured in int4: none"), "{}", d.reason);
        let int8 = Engines {
            profile: parse_profile(LINUX_X86_PROFILE.1).unwrap(),
            ..engines(Backend::Auto, LoadOptions { precision: Precision::Int8, compile: false }).unwrap()
        };
        let d = int8.decide(&shape(8, 512)).unwrap();
        assert_eq!(d.route.backend, cpu());
        assert!(d.reason.contains("nearest profiled shape 8x512"), "{}", d.reason);
    }

    #[test]
    fn forced_backend_is_explained() {
        let e = engines(Backend::Forced(cpu()), LoadOptions::default()).unwrap();
        let d = e.decide(&shape(8, 512)).unwrap();
        assert_eq!(d.route, Route::new(cpu(), false, Precision::Fp32));
        assert_eq!(d.reason, "cpu: forced (--backend / CHRONOS2_BACKEND)");
    }

    #[test]
    fn compile_on_cpu_is_a_clear_error() {
        let options = LoadOptions { precision: Precision::Fp32, compile: true };
        let e = engines(Backend::Forced(cpu()), options).err().unwrap().to_string();
        assert_eq!(e, "--compile applies to backends that compile their forward (mlx); backend here: cpu");
    }

    #[test]
    #[cfg(not(feature = "mlx"))]
    fn forcing_mlx_without_it_names_usable_backends() {
        let e = engines(Backend::Forced(mlx()), LoadOptions::default()).err().unwrap();
        assert_eq!(e.to_string(), "backend 'mlx' is not available here (usable backends: cpu)");
        let source = std::error::Error::source(&e).expect("the reason is the source").to_string();
        assert_eq!(source, "not compiled in (rebuild with `--features mlx`)");
        let options = LoadOptions { precision: Precision::Fp32, compile: true };
        let e = engines(Backend::Auto, options).err().unwrap().to_string();
        assert!(e.contains("no usable backend compiles its forward"), "{e}");
    }

    #[test]
    #[cfg(feature = "mlx")]
    fn unsupported_precision_is_an_error_with_its_source() {
        let options = LoadOptions { precision: Precision::W8a8, compile: false };
        let e = engines(Backend::Forced(mlx()), options).err().unwrap();
        assert!(matches!(e, Error::Core(chronos2_core::Error::UnsupportedPrecision { .. })), "{e:?}");
        assert!(e.to_string().starts_with("backend 'mlx' cannot run w8a8 (it runs: fp32"), "{e}");
    }
}

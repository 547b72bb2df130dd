//! Backend dispatch: which backend (and MLX compile on/off) is expected to be fastest for a
//! call, from a crossover profile of measured timings.
//!
//! A [`Profile`] lists, per measured shape (rows x context, prediction length, weight
//! quantization), the median latency of each route. [`choose`] takes the measured shape nearest
//! to the call (in log space), and picks the fastest route that is available in this build and
//! on this machine. Profiles come from `cargo xtask bench-matrix --write-profile` on the user's
//! machine, or from the built-in default of the platform ([`Profile::builtin`]).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a forward runs: a backend name (`"cpu"`, `"mlx"`) and whether the MLX graph is compiled.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Route {
    pub backend: String,
    #[serde(default)]
    pub compiled: bool,
}

impl Route {
    pub fn new(backend: &str, compiled: bool) -> Self {
        Route { backend: backend.to_string(), compiled }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.backend, if self.compiled { "+compile" } else { "" })
    }
}

/// The shape of a forecasting call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallShape {
    pub rows: usize,
    pub context: usize,
    pub prediction_length: usize,
    /// Weight bits (8 or 4) when the model is quantized.
    #[serde(default)]
    pub quantization_bits: Option<u8>,
}

/// Median latency of a route at a shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    pub route: Route,
    pub median_ms: f64,
}

/// One measured shape of a profile. Built-in profiles may give only the winner (`timings`
/// empty), when they transcribe a published table rather than our own measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileEntry {
    pub shape: CallShape,
    #[serde(default)]
    pub timings: Vec<Timing>,
    #[serde(default)]
    pub winner: Option<Route>,
}

impl ProfileEntry {
    /// Routes from fastest to slowest (the winner first when given without timings).
    fn ranked(&self) -> Vec<(Route, Option<f64>)> {
        let mut timed: Vec<(Route, Option<f64>)> =
            self.timings.iter().map(|t| (t.route.clone(), Some(t.median_ms))).collect();
        timed.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal));
        if let Some(w) = &self.winner {
            timed.retain(|(r, _)| r != w);
            timed.insert(0, (w.clone(), self.timings.iter().find(|t| &t.route == w).map(|t| t.median_ms)));
        }
        timed
    }
}

/// A crossover profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Where the numbers come from (machine and date, or the published source).
    pub source: String,
    pub entries: Vec<ProfileEntry>,
}

/// The dispatcher's choice and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub route: Route,
    pub reason: String,
}

impl Profile {
    pub fn from_json(text: &str) -> Result<Profile, String> {
        serde_json::from_str(text).map_err(|e| format!("invalid backend profile: {e}"))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("profile serialises")
    }

    /// The built-in profile of the platform this was compiled for.
    pub fn builtin() -> Profile {
        if cfg!(all(target_os = "macos", target_arch = "aarch64")) {
            Self::apple_silicon()
        } else {
            Self::linux_x86()
        }
    }

    /// Apple silicon: the crossover of the source article's M4 Max table — CPU for one short
    /// series, MLX with compile for small batches or short contexts, MLX without compile for
    /// batches of 8 and more with long contexts.
    pub fn apple_silicon() -> Profile {
        let cpu = Route::new("cpu", false);
        let mlx_compiled = Route::new("mlx", true);
        let mlx = Route::new("mlx", false);
        let points = [
            (1, 128, &cpu),
            (1, 512, &mlx_compiled),
            (4, 512, &mlx_compiled),
            (1, 2048, &mlx_compiled),
            (8, 128, &mlx_compiled),
            (32, 256, &mlx_compiled),
            (8, 512, &mlx),
            (8, 2048, &mlx),
            (32, 512, &mlx),
            (64, 512, &mlx),
        ];
        let entries = points
            .iter()
            .map(|&(rows, context, route)| ProfileEntry {
                shape: CallShape { rows, context, prediction_length: 24, quantization_bits: None },
                timings: Vec::new(),
                winner: Some(route.clone()),
            })
            .collect();
        Profile { source: "built-in: crossover of the article's M4 Max table (winners only)".into(), entries }
    }

    /// Linux x86_64: medians measured by `cargo xtask bench-matrix` on 2026-11-25 (2-core Xeon,
    /// full-size model, H=24; the README's performance table): candle CPU for one short series
    /// and for int8 weights, MLX's CPU backend for longer contexts and larger batches.
    pub fn linux_x86() -> Profile {
        // (rows, context, quantization bits, backend, compiled, median ms)
        let measured: &[(usize, usize, Option<u8>, &str, bool, f64)] = &[
            (1, 128, None, "cpu", false, 38.4),
            (1, 128, None, "mlx", false, 61.0),
            (1, 128, None, "mlx", true, 61.5),
            (1, 128, Some(8), "cpu", false, 30.8),
            (1, 128, Some(8), "mlx", false, 751.0),
            (1, 128, Some(8), "mlx", true, 756.5),
            (8, 128, None, "cpu", false, 211.2),
            (8, 128, None, "mlx", false, 128.1),
            (8, 128, None, "mlx", true, 126.4),
            (8, 128, Some(8), "cpu", false, 129.1),
            (8, 128, Some(8), "mlx", false, 5812.4),
            (8, 128, Some(8), "mlx", true, 5789.4),
            (8, 512, None, "cpu", false, 393.3),
            (8, 512, None, "mlx", false, 283.7),
            (8, 512, None, "mlx", true, 298.4),
            (8, 512, Some(8), "cpu", false, 281.1),
            (1, 512, None, "cpu", false, 94.4),
            (1, 512, None, "mlx", false, 83.7),
            (1, 512, None, "mlx", true, 80.4),
            (1, 512, Some(8), "cpu", false, 48.9),
            (32, 512, None, "cpu", false, 1098.9),
            (32, 512, None, "mlx", false, 1018.1),
            (32, 512, None, "mlx", true, 1087.9),
            (32, 512, Some(8), "cpu", false, 1359.3),
            (1, 2048, None, "cpu", false, 297.9),
            (1, 2048, None, "mlx", false, 184.7),
            (1, 2048, None, "mlx", true, 193.5),
            (1, 2048, Some(8), "cpu", false, 154.4),
            (8, 2048, None, "cpu", false, 1244.1),
            (8, 2048, None, "mlx", false, 1187.9),
            (8, 2048, None, "mlx", true, 1259.6),
            (8, 2048, Some(8), "cpu", false, 1356.4),
            (64, 512, None, "cpu", false, 2178.1),
            (64, 512, None, "mlx", false, 2051.4),
            (64, 512, None, "mlx", true, 2168.8),
            (64, 512, Some(8), "cpu", false, 2992.3),
        ];
        let mut entries: Vec<ProfileEntry> = Vec::new();
        for &(rows, context, bits, backend, compiled, median_ms) in measured {
            let shape = CallShape { rows, context, prediction_length: 24, quantization_bits: bits };
            let timing = Timing { route: Route::new(backend, compiled), median_ms };
            match entries.iter_mut().find(|e| e.shape == shape) {
                Some(entry) => entry.timings.push(timing),
                None => entries.push(ProfileEntry { shape, timings: vec![timing], winner: None }),
            }
        }
        Profile { source: "built-in: Linux x86_64 bench-matrix of 2026-11-25 (2-core Xeon)".into(), entries }
    }
}

/// Log-space distance between two call shapes (batch, context, horizon).
fn distance(a: &CallShape, b: &CallShape) -> f64 {
    let d = |x: usize, y: usize| ((x.max(1) as f64).ln() - (y.max(1) as f64).ln()).abs();
    d(a.rows, b.rows) + d(a.context, b.context) + 0.5 * d(a.prediction_length, b.prediction_length)
}

/// Picks the route for `call` among `available` (non-empty, in fallback preference order).
pub fn choose(profile: &Profile, available: &[Route], call: &CallShape) -> Decision {
    assert!(!available.is_empty(), "at least one backend is always available");
    let same_quant: Vec<&ProfileEntry> =
        profile.entries.iter().filter(|e| e.shape.quantization_bits == call.quantization_bits).collect();
    let candidates = if same_quant.is_empty() { profile.entries.iter().collect() } else { same_quant };
    let mut by_distance: Vec<&ProfileEntry> = candidates;
    by_distance.sort_by(|a, b| distance(&a.shape, call).total_cmp(&distance(&b.shape, call)));
    for entry in by_distance {
        let ranked = entry.ranked();
        if let Some((route, ms)) = ranked.iter().find(|(r, _)| available.contains(r)) {
            let s = entry.shape;
            let measured = match ms {
                Some(ms) => format!("{ms:.1} ms"),
                None => "winner".to_string(),
            };
            let others: Vec<String> = ranked
                .iter()
                .filter(|(r, _)| r != route)
                .map(|(r, ms)| match ms {
                    Some(ms) => format!("{r} {ms:.1} ms"),
                    None => r.to_string(),
                })
                .collect();
            let unavailable: Vec<String> =
                ranked.iter().take_while(|(r, _)| r != route).map(|(r, _)| r.to_string()).collect();
            let mut reason = format!(
                "{route} for {}x{} (H={}{}): nearest profiled shape {}x{} (H={}) in {}: {route} {measured}",
                call.rows,
                call.context,
                call.prediction_length,
                call.quantization_bits.map(|b| format!(", int{b}")).unwrap_or_default(),
                s.rows,
                s.context,
                s.prediction_length,
                profile.source,
            );
            if !others.is_empty() {
                reason.push_str(&format!(" vs {}", others.join(", ")));
            }
            if !unavailable.is_empty() {
                reason.push_str(&format!("; faster but not available here: {}", unavailable.join(", ")));
            }
            return Decision { route: route.clone(), reason };
        }
    }
    Decision {
        route: available[0].clone(),
        reason: format!(
            "{}: the profile ({}) names no available backend; using the first available",
            available[0], profile.source
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(rows: usize, context: usize) -> CallShape {
        CallShape { rows, context, prediction_length: 24, quantization_bits: None }
    }

    fn measured(rows: usize, context: usize, timings: &[(&str, bool, f64)]) -> ProfileEntry {
        ProfileEntry {
            shape: shape(rows, context),
            timings: timings.iter().map(|&(b, c, ms)| Timing { route: Route::new(b, c), median_ms: ms }).collect(),
            winner: None,
        }
    }

    fn synthetic() -> Profile {
        Profile {
            source: "test".into(),
            entries: vec![
                measured(1, 128, &[("cpu", false, 10.0), ("mlx", true, 12.0), ("mlx", false, 20.0)]),
                measured(8, 512, &[("cpu", false, 90.0), ("mlx", true, 50.0), ("mlx", false, 40.0)]),
            ],
        }
    }

    fn all_routes() -> Vec<Route> {
        vec![Route::new("cpu", false), Route::new("mlx", false), Route::new("mlx", true)]
    }

    #[test]
    fn picks_fastest_route_of_nearest_shape() {
        let p = synthetic();
        assert_eq!(choose(&p, &all_routes(), &shape(1, 100)).route, Route::new("cpu", false));
        assert_eq!(choose(&p, &all_routes(), &shape(16, 1024)).route, Route::new("mlx", false));
    }

    #[test]
    fn boundary_between_shapes_follows_log_distance() {
        let p = synthetic();
        // sqrt(8) ~ 2.83 rows, sqrt(128*512) = 256 context is the midpoint in log space.
        assert_eq!(choose(&p, &all_routes(), &shape(2, 256)).route, Route::new("cpu", false));
        assert_eq!(choose(&p, &all_routes(), &shape(4, 256)).route, Route::new("mlx", false));
    }

    #[test]
    fn missing_backend_falls_to_next_fastest() {
        let p = synthetic();
        let cpu_only = [Route::new("cpu", false)];
        let d = choose(&p, &cpu_only, &shape(8, 512));
        assert_eq!(d.route, Route::new("cpu", false));
        assert!(d.reason.contains("not available here: mlx, mlx+compile"), "{}", d.reason);
    }

    #[test]
    fn profile_without_available_route_uses_first_available() {
        let p = Profile { source: "gpu box".into(), entries: vec![measured(1, 128, &[("cuda", false, 1.0)])] };
        let d = choose(&p, &[Route::new("cpu", false)], &shape(1, 128));
        assert_eq!(d.route, Route::new("cpu", false));
        assert!(d.reason.contains("names no available backend"));
    }

    #[test]
    fn quantized_calls_use_quantized_entries() {
        let mut p = synthetic();
        p.entries.push(ProfileEntry {
            shape: CallShape { quantization_bits: Some(8), ..shape(1, 128) },
            timings: vec![
                Timing { route: Route::new("mlx", true), median_ms: 3.0 },
                Timing { route: Route::new("cpu", false), median_ms: 5.0 },
            ],
            winner: None,
        });
        let call = CallShape { quantization_bits: Some(8), ..shape(1, 128) };
        assert_eq!(choose(&p, &all_routes(), &call).route, Route::new("mlx", true));
        assert_eq!(choose(&p, &all_routes(), &shape(1, 128)).route, Route::new("cpu", false));
    }

    #[test]
    fn apple_builtin_follows_article_crossover() {
        let p = Profile::apple_silicon();
        let pick = |r, c| choose(&p, &all_routes(), &shape(r, c)).route;
        assert_eq!(pick(1, 128), Route::new("cpu", false));
        assert_eq!(pick(2, 512), Route::new("mlx", true));
        assert_eq!(pick(8, 128), Route::new("mlx", true));
        assert_eq!(pick(16, 1024), Route::new("mlx", false));
        assert_eq!(pick(64, 2048), Route::new("mlx", false));
    }

    #[test]
    fn linux_builtin_picks_cpu_without_mlx_and_measured_winners_with_it() {
        let p = Profile::linux_x86();
        let cpu_only = [Route::new("cpu", false)];
        assert_eq!(choose(&p, &cpu_only, &shape(64, 512)).route, Route::new("cpu", false));
        assert_eq!(choose(&p, &all_routes(), &shape(1, 128)).route, Route::new("cpu", false));
        assert_eq!(choose(&p, &all_routes(), &shape(32, 512)).route.backend, "mlx");
        let int8 = CallShape { quantization_bits: Some(8), ..shape(8, 512) };
        assert_eq!(choose(&p, &all_routes(), &int8).route, Route::new("cpu", false));
    }

    #[test]
    fn profile_round_trips_through_json() {
        let p = synthetic();
        assert_eq!(Profile::from_json(&p.to_json()).unwrap(), p);
        assert!(Profile::from_json("{").unwrap_err().contains("invalid backend profile"));
    }
}

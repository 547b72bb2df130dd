//! Profile arithmetic of the per-call route choice: which route is expected to be fastest for a
//! call, from a crossover profile of measured timings.
//!
//! A [`Profile`] lists, per measured shape (rows x context, prediction length) and precision, the
//! median latency of each route. Routes are opaque [`RouteKey`]s here: this module knows no
//! backend; the facade names its routes and parses the keys back. [`choose`] takes the measured
//! shape nearest to the call (in log space) among the entries measured in the call's precision,
//! and picks the fastest route there that the caller can run. Profiles come from
//! `cargo xtask bench-matrix --write-profile` on the user's machine, or from a built-in one.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::precision::Precision;

/// The name of a route in a profile (e.g. the facade's `"cpu"` or `"mlx+compile"`). Opaque to
/// this module: it is compared, never interpreted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(from = "RawRouteKey", into = "String")]
pub struct RouteKey(String);

impl RouteKey {
    pub fn new(key: impl Into<String>) -> Self {
        RouteKey(key.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RouteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<RouteKey> for String {
    fn from(key: RouteKey) -> String {
        key.0
    }
}

/// A route as written in a profile: a key, or, in profiles written before keys existed,
/// `{"backend": "...", "compiled": bool}` (read as `backend` or `backend+compile`).
#[derive(Deserialize)]
#[serde(untagged)]
enum RawRouteKey {
    Key(String),
    Legacy {
        backend: String,
        #[serde(default)]
        compiled: bool,
    },
}

impl From<RawRouteKey> for RouteKey {
    fn from(raw: RawRouteKey) -> RouteKey {
        match raw {
            RawRouteKey::Key(key) => RouteKey(key),
            RawRouteKey::Legacy { backend, compiled: false } => RouteKey(backend),
            RawRouteKey::Legacy { backend, compiled: true } => RouteKey(format!("{backend}+compile")),
        }
    }
}

/// The shape of a forecasting call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallShape {
    pub rows: usize,
    pub context: usize,
    pub prediction_length: usize,
}

/// Median latency of a route at an entry's shape and precision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    pub route: RouteKey,
    pub median_ms: f64,
}

/// One measured shape of a profile, in one precision. Built-in profiles may give only the winner
/// (`timings` empty) when they transcribe a published table rather than our own measurement;
/// `origin` then says where the point comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawEntry")]
pub struct ProfileEntry {
    pub shape: CallShape,
    /// The precision every timing of this entry was measured in.
    pub precision: Precision,
    #[serde(default)]
    pub timings: Vec<Timing>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub winner: Option<RouteKey>,
    /// Where this point comes from, when it is not a measurement of the profile's source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

/// An entry as written: profiles before precisions existed carry `shape.quantization_bits`
/// (absent or `null` = fp32, 8 = int8, 4 = int4) instead of `precision`.
#[derive(Deserialize)]
struct RawEntry {
    shape: RawShape,
    #[serde(default)]
    precision: Option<Precision>,
    #[serde(default)]
    timings: Vec<Timing>,
    #[serde(default)]
    winner: Option<RouteKey>,
    #[serde(default)]
    origin: Option<String>,
}

#[derive(Deserialize)]
struct RawShape {
    rows: usize,
    context: usize,
    prediction_length: usize,
    #[serde(default)]
    quantization_bits: Option<u32>,
}

impl TryFrom<RawEntry> for ProfileEntry {
    type Error = String;

    fn try_from(raw: RawEntry) -> Result<Self, String> {
        let s = raw.shape;
        let legacy = match s.quantization_bits {
            None => None,
            Some(bits) => Some(
                Precision::weight_only(bits)
                    .ok_or_else(|| format!("quantization_bits {bits} (expected 8 or 4, or a precision)"))?,
            ),
        };
        let precision = match (raw.precision, legacy) {
            (Some(p), Some(q)) if p != q => {
                return Err(format!("precision {p} contradicts quantization_bits {:?}", s.quantization_bits))
            }
            (Some(p), _) | (None, Some(p)) => p,
            (None, None) => Precision::Fp32,
        };
        if s.rows == 0 || s.context == 0 || s.prediction_length == 0 {
            return Err(format!("shape {}x{} (H={}) has a zero dimension", s.rows, s.context, s.prediction_length));
        }
        if let Some(t) = raw.timings.iter().find(|t| !(t.median_ms.is_finite() && t.median_ms > 0.0)) {
            return Err(format!("route {} has median_ms {} (expected a positive number)", t.route, t.median_ms));
        }
        if raw.timings.is_empty() && raw.winner.is_none() {
            return Err(format!("shape {}x{} has neither timings nor a winner", s.rows, s.context));
        }
        Ok(ProfileEntry {
            shape: CallShape { rows: s.rows, context: s.context, prediction_length: s.prediction_length },
            precision,
            timings: raw.timings,
            winner: raw.winner,
            origin: raw.origin,
        })
    }
}

impl ProfileEntry {
    /// Routes from fastest to slowest (the winner first when given).
    fn ranked(&self) -> Vec<(&RouteKey, Option<f64>)> {
        let mut timed: Vec<(&RouteKey, Option<f64>)> =
            self.timings.iter().map(|t| (&t.route, Some(t.median_ms))).collect();
        timed.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal));
        if let Some(w) = &self.winner {
            timed.retain(|(r, _)| *r != w);
            timed.insert(0, (w, self.timings.iter().find(|t| &t.route == w).map(|t| t.median_ms)));
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

/// Why a profile or a choice could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("invalid backend profile: {0}")]
    InvalidProfile(#[from] serde_json::Error),
    #[error("no route to choose from (the caller offered none)")]
    NoRoutes,
}

/// The route chosen for a call and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub route: RouteKey,
    pub reason: String,
}

impl Profile {
    /// Reads a profile (also one written before route keys and precisions existed).
    pub fn from_json(text: &str) -> Result<Profile, DispatchError> {
        Ok(serde_json::from_str(text)?)
    }

    pub fn to_json(&self) -> Result<String, DispatchError> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// The routes this profile measured in `precision`, fastest first at no particular shape
    /// (sorted by name), for explanations.
    pub fn routes_measured_in(&self, precision: Precision) -> Vec<&RouteKey> {
        let mut routes: Vec<&RouteKey> = self
            .entries
            .iter()
            .filter(|e| e.precision == precision)
            .flat_map(|e| e.timings.iter().map(|t| &t.route).chain(e.winner.as_ref()))
            .collect();
        routes.sort();
        routes.dedup();
        routes
    }
}

/// Log-space distance between two call shapes (batch, context, horizon).
fn distance(a: &CallShape, b: &CallShape) -> f64 {
    let d = |x: usize, y: usize| ((x.max(1) as f64).ln() - (y.max(1) as f64).ln()).abs();
    d(a.rows, b.rows) + d(a.context, b.context) + 0.5 * d(a.prediction_length, b.prediction_length)
}

/// Picks the route for a call of `shape` in `precision` among `available`: the fastest available
/// route of the nearest profiled shape among the entries measured in `precision` that name an
/// available route. `Ok(None)` when no entry measured in `precision` names an available route:
/// the caller decides where such a call goes (a route is never chosen from measurements in
/// another precision).
pub fn choose(
    profile: &Profile,
    available: &[RouteKey],
    shape: &CallShape,
    precision: Precision,
) -> Result<Option<Decision>, DispatchError> {
    if available.is_empty() {
        return Err(DispatchError::NoRoutes);
    }
    let nearest = profile
        .entries
        .iter()
        .filter(|e| e.precision == precision && e.ranked().iter().any(|(r, _)| available.contains(r)))
        .min_by(|a, b| distance(&a.shape, shape).total_cmp(&distance(&b.shape, shape)));
    let Some(entry) = nearest else { return Ok(None) };
    let ranked = entry.ranked();
    let (route, ms) = *ranked.iter().find(|(r, _)| available.contains(r)).expect("filtered on an available route");
    let s = entry.shape;
    let measured = match ms {
        Some(ms) => format!("{ms:.1} ms"),
        None => "winner".to_string(),
    };
    let others: Vec<String> = ranked
        .iter()
        .filter(|(r, _)| *r != route)
        .map(|(r, ms)| match ms {
            Some(ms) => format!("{r} {ms:.1} ms"),
            None => r.to_string(),
        })
        .collect();
    let unavailable: Vec<String> = ranked.iter().take_while(|(r, _)| *r != route).map(|(r, _)| r.to_string()).collect();
    let mut reason = format!(
        "{route} for {}x{} (H={}, {precision}): nearest profiled shape {}x{} (H={}) in {}: {route} {measured}",
        shape.rows, shape.context, shape.prediction_length, s.rows, s.context, s.prediction_length, profile.source,
    );
    if let Some(origin) = &entry.origin {
        reason.push_str(&format!(" ({origin})"));
    }
    if !others.is_empty() {
        reason.push_str(&format!(" vs {}", others.join(", ")));
    }
    if !unavailable.is_empty() {
        reason.push_str(&format!("; faster but not available here: {}", unavailable.join(", ")));
    }
    Ok(Some(Decision { route: route.clone(), reason }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(rows: usize, context: usize) -> CallShape {
        CallShape { rows, context, prediction_length: 24 }
    }

    fn key(k: &str) -> RouteKey {
        RouteKey::new(k)
    }

    fn measured(rows: usize, context: usize, precision: Precision, timings: &[(&str, f64)]) -> ProfileEntry {
        ProfileEntry {
            shape: shape(rows, context),
            precision,
            timings: timings.iter().map(|&(r, ms)| Timing { route: key(r), median_ms: ms }).collect(),
            winner: None,
            origin: None,
        }
    }

    fn synthetic() -> Profile {
        Profile {
            source: "test".into(),
            entries: vec![
                measured(1, 128, Precision::Fp32, &[("a", 10.0), ("b+fast", 12.0), ("b", 20.0)]),
                measured(8, 512, Precision::Fp32, &[("a", 90.0), ("b+fast", 50.0), ("b", 40.0)]),
            ],
        }
    }

    fn all_routes() -> Vec<RouteKey> {
        vec![key("a"), key("b"), key("b+fast")]
    }

    fn pick(p: &Profile, available: &[RouteKey], call: CallShape, precision: Precision) -> Option<RouteKey> {
        choose(p, available, &call, precision).unwrap().map(|d| d.route)
    }

    #[test]
    fn picks_fastest_route_of_nearest_shape() {
        let p = synthetic();
        assert_eq!(pick(&p, &all_routes(), shape(1, 100), Precision::Fp32), Some(key("a")));
        assert_eq!(pick(&p, &all_routes(), shape(16, 1024), Precision::Fp32), Some(key("b")));
    }

    #[test]
    fn boundary_between_shapes_follows_log_distance() {
        let p = synthetic();
        // sqrt(8) ~ 2.83 rows, sqrt(128*512) = 256 context is the midpoint in log space.
        assert_eq!(pick(&p, &all_routes(), shape(2, 256), Precision::Fp32), Some(key("a")));
        assert_eq!(pick(&p, &all_routes(), shape(4, 256), Precision::Fp32), Some(key("b")));
    }

    #[test]
    fn missing_route_falls_to_next_fastest() {
        let p = synthetic();
        let d = choose(&p, &[key("a")], &shape(8, 512), Precision::Fp32).unwrap().unwrap();
        assert_eq!(d.route, key("a"));
        assert!(d.reason.contains("not available here: b, b+fast"), "{}", d.reason);
    }

    #[test]
    fn profile_without_available_route_chooses_nothing() {
        let p = Profile { source: "gpu box".into(), entries: vec![measured(1, 128, Precision::Fp32, &[("gpu", 1.0)])] };
        assert_eq!(pick(&p, &[key("a")], shape(1, 128), Precision::Fp32), None);
    }

    #[test]
    fn no_available_routes_is_an_error_not_a_panic() {
        let e = choose(&synthetic(), &[], &shape(1, 128), Precision::Fp32).unwrap_err();
        assert!(matches!(e, DispatchError::NoRoutes), "{e}");
    }

    #[test]
    fn calls_use_only_entries_of_their_precision() {
        let mut p = synthetic();
        p.entries.push(measured(1, 128, Precision::Int8, &[("b+fast", 3.0), ("a", 5.0)]));
        p.entries.push(measured(8, 512, Precision::Int8, &[("a", 30.0)]));
        assert_eq!(pick(&p, &all_routes(), shape(1, 128), Precision::Int8), Some(key("b+fast")));
        assert_eq!(pick(&p, &all_routes(), shape(1, 128), Precision::Fp32), Some(key("a")));
        // The nearest int8 entry measured only `a`: `b` is never picked from fp32 timings.
        assert_eq!(pick(&p, &all_routes(), shape(16, 1024), Precision::Int8), Some(key("a")));
        // Nothing measured in int4 or bf16: no choice (the caller's fallback decides).
        assert_eq!(pick(&p, &all_routes(), shape(8, 512), Precision::Int4), None);
        assert_eq!(pick(&p, &all_routes(), shape(8, 512), Precision::Bf16), None);
        assert_eq!(p.routes_measured_in(Precision::Int8), [&key("a"), &key("b+fast")]);
    }

    #[test]
    fn winner_only_entries_name_their_origin() {
        let p = Profile {
            source: "published".into(),
            entries: vec![ProfileEntry {
                winner: Some(key("b")),
                origin: Some("interpolated".into()),
                ..measured(8, 512, Precision::Fp32, &[])
            }],
        };
        let d = choose(&p, &all_routes(), &shape(8, 512), Precision::Fp32).unwrap().unwrap();
        assert_eq!(d.route, key("b"));
        assert!(d.reason.contains("b winner (interpolated)"), "{}", d.reason);
    }

    #[test]
    fn profile_round_trips_through_json() {
        let mut p = synthetic();
        p.entries.push(measured(1, 128, Precision::W8a8, &[("a", 5.0)]));
        assert_eq!(Profile::from_json(&p.to_json().unwrap()).unwrap(), p);
        assert!(Profile::from_json("{").unwrap_err().to_string().contains("invalid backend profile"));
    }

    /// A profile as `bench-matrix --write-profile` wrote it before route keys and precisions.
    #[test]
    fn reads_profiles_written_before_route_keys_and_precisions() {
        let old = r#"{"source": "old", "entries": [
            {"shape": {"rows": 1, "context": 128, "prediction_length": 24, "quantization_bits": null},
             "timings": [{"route": {"backend": "a", "compiled": false}, "median_ms": 10.0},
                         {"route": {"backend": "b", "compiled": true}, "median_ms": 12.0}], "winner": null},
            {"shape": {"rows": 1, "context": 128, "prediction_length": 24, "quantization_bits": 8},
             "timings": [{"route": {"backend": "a", "compiled": false}, "median_ms": 7.0}]},
            {"shape": {"rows": 8, "context": 512, "prediction_length": 24},
             "timings": [], "winner": {"backend": "b"}}]}"#;
        let p = Profile::from_json(old).unwrap();
        assert_eq!(p.entries[0].precision, Precision::Fp32);
        assert_eq!(p.entries[0].timings[1].route, key("b+compile"));
        assert_eq!(p.entries[1].precision, Precision::Int8);
        assert_eq!(p.entries[2].winner, Some(key("b")));
    }

    #[test]
    fn invalid_profiles_are_errors() {
        let entry = |shape: &str, timings: &str| {
            format!(r#"{{"source": "x", "entries": [{{"shape": {shape}, "timings": {timings}}}]}}"#)
        };
        let ok_shape = r#"{"rows": 1, "context": 128, "prediction_length": 24}"#;
        for (text, needle) in [
            (entry(ok_shape, r#"[{"route": "a", "median_ms": -1.0}]"#), "median_ms -1"),
            (entry(ok_shape, "[]"), "neither timings nor a winner"),
            (entry(r#"{"rows": 0, "context": 128, "prediction_length": 24}"#, "[]"), "zero dimension"),
            (
                entry(r#"{"rows": 1, "context": 128, "prediction_length": 24, "quantization_bits": 3}"#, "[]"),
                "quantization_bits 3",
            ),
        ] {
            let e = Profile::from_json(&text).unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
    }
}

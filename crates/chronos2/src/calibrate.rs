//! `chronos2 calibrate` / [`crate::Chronos2::calibrate`]: measures on this machine the routes
//! `auto` chooses between — every usable backend of the registry, compiled and not where it
//! compiles its forward, in every precision it runs — over the shapes of the built-in profile, at
//! the thread count the process runs with, and writes the profile `auto` then reads
//! ([`crate::profile::user_profile_path`]) with the machine it was measured on.

use std::path::{Path, PathBuf};
use std::time::Instant;

use chronos2_core::dispatch::{CallShape, Profile, ProfileEntry, Timing};
use chronos2_core::{Forecaster, ModelBatch, Precision};

use crate::backend::Route;
use crate::error::{Error, Result};
use crate::machine::Machine;
use crate::profile::{builtin_profile, user_profile_path};
use crate::registry::{self, usable_backends, BackendModel};

/// What to measure.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CalibrateOptions {
    /// Every shape of the built-in profile and 10 timed runs after 3 warm-ups; else (quick, the
    /// default) the shapes of at most 8 rows and 512 steps, 3 runs after 1 warm-up.
    pub full: bool,
    /// Where to write the profile; `None`: [`user_profile_path`].
    pub output: Option<PathBuf>,
}

/// What a calibration measured and where it wrote it.
#[derive(Debug, Clone)]
pub struct Calibration {
    pub profile: Profile,
    pub machine: Machine,
    pub path: PathBuf,
    pub seconds: f64,
}

/// A cell's timed runs stop once they have taken this long (at least one run is kept).
const CELL_BUDGET_S: f64 = 4.0;

/// The shapes measured: the built-in profile's, the small ones only unless `full`.
fn shapes(full: bool) -> Result<Vec<CallShape>> {
    let mut shapes: Vec<CallShape> = Vec::new();
    for e in builtin_profile("")?.entries {
        if !shapes.contains(&e.shape) && (full || (e.shape.rows <= 8 && e.shape.context <= 512)) {
            shapes.push(e.shape);
        }
    }
    shapes.sort_by_key(|s| (s.rows * s.context, s.rows));
    Ok(shapes)
}

/// Measures the routes of the model in `model_dir` and writes the profile (see the module).
/// `progress` gets one line per measured cell.
pub fn calibrate(model_dir: &Path, options: &CalibrateOptions, progress: &mut dyn FnMut(&str)) -> Result<Calibration> {
    let start = Instant::now();
    let path = match &options.output {
        Some(p) => p.clone(),
        None => user_profile_path().ok_or_else(|| {
            Error::InvalidArgument("no place for the profile: neither XDG_CONFIG_HOME nor HOME is set".into())
        })?,
    };
    let (warmup, runs) = if options.full { (3, 10) } else { (1, 3) };
    let shapes = shapes(options.full)?;
    let machine = Machine::this();
    progress(&format!("calibrating on {machine}: shapes {}", shapes_text(&shapes)));
    let mut entries: Vec<ProfileEntry> = Vec::new();
    for precision in Precision::ALL {
        let kinds: Vec<_> = usable_backends().into_iter().filter(|k| k.precisions().contains(&precision)).collect();
        let models: Vec<(crate::BackendKind, Box<dyn BackendModel>)> =
            kinds.iter().map(|&k| registry::load(k, model_dir, precision).map(|m| (k, m))).collect::<Result<_>>()?;
        let compiled: Vec<(crate::BackendKind, Box<dyn Forecaster + '_>)> =
            models.iter().filter_map(|(k, m)| m.compiled().map(|c| (*k, c))).collect();
        let mut routes: Vec<(Route, &dyn Forecaster)> =
            models.iter().map(|(k, m)| (Route::new(*k, false, precision), m.forecaster())).collect();
        routes.extend(compiled.iter().map(|(k, c)| (Route::new(*k, true, precision), c.as_ref())));
        for &shape in &shapes {
            let medians = time_in_turns(&routes, shape, warmup, runs)?;
            let timings: Vec<Timing> = routes
                .iter()
                .zip(&medians)
                .map(|((route, _), &median_ms)| Timing { route: route.key(), median_ms })
                .collect();
            let cells: Vec<String> = timings.iter().map(|t| format!("{} {:.1} ms", t.route, t.median_ms)).collect();
            progress(&format!("{}x{} {precision}: {}", shape.rows, shape.context, cells.join(", ")));
            entries.push(ProfileEntry { shape, precision, timings, winner: None, origin: None });
        }
    }
    let source = format!("chronos2 calibrate{} {} on {machine}", if options.full { " --full" } else { "" }, today());
    let profile = Profile { source, entries };
    write_profile(&path, &profile, &machine)?;
    Ok(Calibration { profile, machine, path, seconds: start.elapsed().as_secs_f64() })
}

/// Median milliseconds of each route's forward at `shape`, the routes run in turns (round `r`
/// starts with route `r mod n`) so that a drift of the machine falls on every route alike.
fn time_in_turns(
    routes: &[(Route, &dyn Forecaster)],
    shape: CallShape,
    warmup: usize,
    runs: usize,
) -> Result<Vec<f64>> {
    let Some((_, first)) = routes.first() else { return Ok(Vec::new()) };
    let patches = shape.prediction_length.div_ceil(first.config().patch_size());
    let batch = ModelBatch::independent(series(shape.rows, shape.context), shape.rows, shape.context, patches);
    let n = routes.len();
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); n];
    for round in 0..warmup + runs {
        for i in (0..n).map(|j| (round + j) % n) {
            let spent: f64 = samples[i].iter().sum();
            if round >= warmup && !samples[i].is_empty() && spent > CELL_BUDGET_S * 1e3 {
                continue;
            }
            let start = Instant::now();
            routes[i].1.forecast(&batch)?;
            if round >= warmup {
                samples[i].push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    Ok(samples.into_iter().map(median).collect())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// `rows` seasonal series with a trend, `len` steps each (the values do not change the timing).
fn series(rows: usize, len: usize) -> Vec<f32> {
    (0..rows * len)
        .map(|i| {
            let (r, t) = ((i / len) as f32, (i % len) as f32);
            100.0 + r + 0.05 * t + 10.0 * (t * std::f32::consts::TAU / 12.0).sin()
        })
        .collect()
}

fn shapes_text(shapes: &[CallShape]) -> String {
    shapes.iter().map(|s| format!("{}x{}", s.rows, s.context)).collect::<Vec<_>>().join(", ")
}

/// Writes `profile` with `machine` to `path` through a temporary file renamed over it.
fn write_profile(path: &Path, profile: &Profile, machine: &Machine) -> Result<()> {
    let fail = |e: String| Error::Write { path: path.to_path_buf(), message: e };
    let mut json: serde_json::Value =
        serde_json::from_str(&profile.to_json().map_err(|e| fail(e.to_string()))?).map_err(|e| fail(e.to_string()))?;
    json["machine"] = serde_json::to_value(machine).map_err(|e| fail(e.to_string()))?;
    let text = serde_json::to_string_pretty(&json).map_err(|e| fail(e.to_string()))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    }
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        std::process::id()
    ));
    std::fs::write(&tmp, text).map_err(|e| fail(e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail(e.to_string())
    })
}

/// Today's date (UTC), YYYY-MM-DD.
fn today() -> String {
    let days = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() / 86_400);
    let date = chrono::DateTime::from_timestamp((days * 86_400) as i64, 0).unwrap_or_default();
    date.format("%Y-%m-%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_shapes_are_the_small_ones_of_the_builtin_profile() {
        let quick = shapes(false).unwrap();
        let full = shapes(true).unwrap();
        assert!(!quick.is_empty() && quick.len() < full.len(), "{quick:?} {full:?}");
        assert!(quick.iter().all(|s| s.rows <= 8 && s.context <= 512 && full.contains(s)));
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}

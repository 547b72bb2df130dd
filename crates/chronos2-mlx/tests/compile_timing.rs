//! `cargo test ... --release --test compile_timing -- --ignored --nocapture`: compiled vs
//! uncompiled forward latency on chronos2-mini and on a random full-size model
//! (`CHRONOS2_BENCH_REPS` repetitions, default 7; runs alternate between the two models so that
//! machine noise hits both alike).
#![cfg(mlx_backend)]

use std::time::Instant;

use chronos2_core::{Forecaster, ModelBatch};
use chronos2_mlx::{load_model_with, MlxModel, MlxOptions};
use chronos2_test_fixtures as fixtures;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn compare(label: &str, dir: &std::path::Path, shapes: &[(usize, usize)], reps: usize) {
    let plain = load_model_with(dir, MlxOptions { compile: false }).unwrap();
    let compiled = load_model_with(dir, MlxOptions { compile: true }).unwrap();
    for &(rows, ctx) in shapes {
        let batch = ModelBatch::independent(chronos2_bench::random_context(rows, ctx, 7), rows, ctx, 4);
        let time = |m: &MlxModel| {
            let t = Instant::now();
            let f = m.forecast(&batch).unwrap();
            (t.elapsed().as_secs_f64() * 1e3, f.values)
        };
        let (first_plain, a) = time(&plain);
        let (first_compiled, b) = time(&compiled);
        let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        let scale = a.iter().fold(0f32, |m, x| m.max(x.abs()));
        let (mut tp, mut tc, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..reps {
            // alternate the order too
            let (p, c) = if i % 2 == 0 {
                let p = time(&plain).0;
                (p, time(&compiled).0)
            } else {
                let c = time(&compiled).0;
                (time(&plain).0, c)
            };
            tp.push(p);
            tc.push(c);
            ratios.push(c / p);
        }
        println!(
            "{label} {rows}x{ctx}: median uncompiled {:.1} ms, compiled {:.1} ms (min {:.1} / {:.1}); compiled/uncompiled {:.3} (median of per-pair ratios, {reps} pairs); first call {:.0} / {:.0} ms (compiled: + trace and kernel build); max |diff| {diff:.1e} (rel {:.1e})",
            median(tp.clone()),
            median(tc.clone()),
            tp.iter().cloned().fold(f64::MAX, f64::min),
            tc.iter().cloned().fold(f64::MAX, f64::min),
            median(ratios),
            first_plain,
            first_compiled,
            diff / scale.max(1e-30),
        );
    }
}

#[test]
#[ignore]
fn compiled_vs_uncompiled_latency() {
    let reps: usize = std::env::var("CHRONOS2_BENCH_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(7);
    let shapes = [(1, 128), (8, 512)];
    compare("chronos2-mini", &fixtures::repo_root().join("models/chronos2-mini"), &shapes, reps);
    let dir = std::env::temp_dir().join(format!("chronos2-mlx-compile-bench-{}", std::process::id()));
    chronos2_bench::write_random_model(&dir, &chronos2_bench::full_size_config_json(), 42).unwrap();
    compare("full-size random", &dir, &shapes, reps);
    std::fs::remove_dir_all(&dir).ok();
}

//! `cargo test ... --test parity_report -- --ignored --nocapture`: per-stage relative error of
//! the MLX backend against the reference fixtures (diagnostics, not a pass/fail check).
#![cfg(mlx_backend)]

use chronos2_core::Forecaster;
use chronos2_test_fixtures::{self as fixtures, flat};

fn rel(actual: &[f32], expected: &[f32]) -> (f32, f32) {
    let scale = expected.iter().filter(|e| e.is_finite()).fold(0f32, |m, e| m.max(e.abs()));
    let worst =
        actual.iter().zip(expected).filter(|(_, e)| e.is_finite()).map(|(a, e)| (a - e).abs()).fold(0f32, f32::max);
    (worst, worst / scale.max(1e-30))
}

#[test]
#[ignore]
fn report() {
    for (name, case) in fixtures::cases("model") {
        let model = chronos2_mlx::load_model(&fixtures::model_dir(&case)).unwrap();
        let batch = fixtures::model_batch(&case);
        let trace = model.trace(&batch).unwrap();
        let e = &case["expected"];
        let noise = &case["eager_vs_sdpa_max_abs_diff"];
        let mut line = format!("{name:40}");
        let (d, r) = rel(&trace.input_embeds, &flat(&e["input_embeds"]));
        line += &format!(" emb {r:.1e}/{d:.1e}(n {:.1e})", noise["input_embeds"].as_f64().unwrap_or(0.0));
        for (i, l) in trace.layer_outputs.iter().enumerate() {
            let (d, r) = rel(l, &flat(&e["layer_outputs"][i]));
            line += &format!(" L{i} {r:.1e}/{d:.1e}(n {:.1e})", noise["layer_outputs"][i].as_f64().unwrap_or(0.0));
        }
        let (d, r) = rel(&trace.last_hidden_state, &flat(&e["last_hidden_state"]));
        line += &format!(" last {r:.1e}/{d:.1e}");
        let f = model.forecast(&batch).unwrap();
        let (d, r) = rel(&f.values, &flat(&e["quantile_preds"]));
        line += &format!(" q {r:.1e}/{d:.1e}(n {:.1e})", noise["quantile_preds"].as_f64().unwrap_or(0.0));
        println!("{line}");
    }
}

/// `-- --ignored --nocapture timing`: wall time of a sgemm and of chronos2-mini forwards on MLX.
#[test]
#[ignore]
fn timing() {
    use chronos2_core::ops::Ops;
    use chronos2_core::ModelBatch;
    use std::time::Instant;
    let ops = chronos2_mlx::MlxOps::new();
    let x = ops.tensor(&vec![0.5f32; 72 * 768], &[72, 768]).unwrap();
    let l = ops.linear_from_host(&vec![0.25f32; 3072 * 768], 3072, 768, None).unwrap();
    ops.to_vec(&ops.linear(&x, &l).unwrap()).unwrap();
    let t = Instant::now();
    for _ in 0..10 {
        ops.to_vec(&ops.linear(&x, &l).unwrap()).unwrap();
    }
    println!("linear [72x768]x[768x3072]: {:.2} ms", t.elapsed().as_secs_f64() * 100.0);
    let dir = fixtures::repo_root().join("models/chronos2-mini");
    let model = chronos2_mlx::load_model(&dir).unwrap();
    for (rows, ctx) in [(1, 512), (32, 512), (8, 2048)] {
        let context: Vec<f32> = (0..rows * ctx).map(|i| ((i % 97) as f32 * 0.1).sin()).collect();
        let batch = ModelBatch::independent(context, rows, ctx, 4);
        model.forecast(&batch).unwrap();
        let t = Instant::now();
        let n = 3;
        for _ in 0..n {
            model.forecast(&batch).unwrap();
        }
        println!(
            "chronos2-mini forecast rows {rows} ctx {ctx}: {:.1} ms",
            t.elapsed().as_secs_f64() * 1000.0 / n as f64
        );
    }
}

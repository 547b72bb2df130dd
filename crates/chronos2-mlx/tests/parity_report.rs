//! `cargo test ... --test parity_report -- --ignored --nocapture`: per-stage relative error of
//! the MLX backend against the reference fixtures (diagnostics, not a pass/fail check).
#![cfg(all(feature = "mlx", any(all(target_os = "macos", target_arch = "aarch64"), chronos2_mlx_linux)))]

use chronos2_core::fixtures::{self, flat};
use chronos2_core::Forecaster;

fn rel(actual: &[f32], expected: &[f32]) -> (f32, f32) {
    let scale = expected.iter().filter(|e| e.is_finite()).fold(0f32, |m, e| m.max(e.abs()));
    let worst = actual.iter().zip(expected).filter(|(_, e)| e.is_finite()).map(|(a, e)| (a - e).abs()).fold(0f32, f32::max);
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

//! Resident memory of the full-size model on the CPU backend:
//! `cargo run --release -p chronos2-bench --example memory [rows] [len] [precision]`.
//! Prints the fp32 weight bytes and the process's resident/peak memory after load (in
//! `precision`, default fp32, loaded as the library loads it) and after a forward.

use chronos2_bench::{full_size_config_json, random_context, write_random_model};
use chronos2_core::{Forecaster, ModelBatch, Precision};

fn status(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(field)).map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_string())
        })
        .map(|kb| format!("{:.0} MB", kb.parse::<f64>().unwrap_or(0.0) / 1024.0))
        .unwrap_or_else(|| "n/a".into())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let int = |i: usize, default: usize| args.get(i).map_or(default, |a| a.parse().expect("integer argument"));
    let (rows, len) = (int(0, 8), int(1, 512));
    let precision: Precision = args.get(2).map_or(Precision::Fp32, |p| p.parse().expect("precision"));
    let dir = std::env::temp_dir().join("chronos2-bench-full-size");
    if !dir.join("model.safetensors").exists() {
        write_random_model(&dir, &full_size_config_json(), 42).expect("write synthetic model");
    }
    let weight_bytes = std::fs::metadata(dir.join("model.safetensors")).map(|m| m.len()).unwrap_or(0);
    println!("fp32 weights: {:.0} MB", weight_bytes as f64 / 1e6);
    let mut model = chronos2_candle_cpu::load_model_for(&dir, precision).expect("load");
    model.set_precision(precision).expect("precision");
    println!("{precision} weights in memory: {:.0} MB", model.footprint().bytes as f64 / 1e6);
    println!("after load:    rss {}  peak {}", status("VmRSS"), status("VmHWM"));
    let batch = ModelBatch::independent(random_context(rows, len, 7), rows, len, 2);
    model.forecast(&batch).expect("forward");
    println!("after {rows}x{len}: rss {}  peak {}", status("VmRSS"), status("VmHWM"));
}

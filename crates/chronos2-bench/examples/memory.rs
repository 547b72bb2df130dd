//! Resident memory of the full-size model on the CPU backend:
//! `cargo run --release -p chronos2-bench --example memory [rows] [len]`.
//! Prints the fp32 weight bytes and the process's resident/peak memory after load and after
//! a forward.

use chronos2_bench::{full_size_config_json, random_context, write_random_model};
use chronos2_core::ModelBatch;

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
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("integer argument"));
    let (rows, len) = (args.next().unwrap_or(8), args.next().unwrap_or(512));
    let dir = std::env::temp_dir().join("chronos2-bench-full-size");
    if !dir.join("model.safetensors").exists() {
        write_random_model(&dir, &full_size_config_json(), 42).expect("write synthetic model");
    }
    let weight_bytes = std::fs::metadata(dir.join("model.safetensors")).map(|m| m.len()).unwrap_or(0);
    println!("fp32 weights: {:.0} MB", weight_bytes as f64 / 1e6);
    let model = chronos2_candle_cpu::load(&dir).expect("load");
    println!("after load:    rss {}  peak {}", status("VmRSS"), status("VmHWM"));
    let batch = ModelBatch::independent(random_context(rows, len, 7), rows, len, 2);
    model.forecast(&batch).expect("forward");
    println!("after {rows}x{len}: rss {}  peak {}", status("VmRSS"), status("VmHWM"));
}

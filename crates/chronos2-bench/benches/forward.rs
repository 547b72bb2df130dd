//! Full-size Chronos-2 forward (prediction length 24 = 2 patches) in fp32 on every usable
//! backend of the registry (compiled too where it compiles its forward).
//!
//! `cargo bench -p chronos2-bench --bench forward` (MLX on Linux: add `--features mlx --config
//! "$CHRONOS2_MLX_CARGO_CONFIG"` after `eval "$(scripts/prepare-mlx-linux.sh)"`). Compare with PyTorch CPU measured in the
//! same session: `python3 scripts/bench_torch.py` (see README, Performance).

use chronos2::registry::{self, usable_backends, BackendModel};
use chronos2::BackendKind;
use chronos2_bench::{full_size_config_json, random_context, write_random_model};
use chronos2_core::{Forecaster, ModelBatch, Precision};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

fn forward(c: &mut Criterion) {
    let dir = std::env::temp_dir().join("chronos2-bench-full-size");
    if !dir.join("model.safetensors").exists() {
        write_random_model(&dir, &full_size_config_json(), 42).expect("write synthetic model");
    }
    // Every usable backend of the registry in fp32, compiled too where it compiles its forward.
    let models: Vec<(BackendKind, Box<dyn BackendModel>)> = usable_backends()
        .into_iter()
        .map(|k| (k, registry::load(k, &dir, Precision::Fp32).expect("load synthetic model")))
        .collect();
    let mut backends: Vec<(String, &dyn Forecaster)> = Vec::new();
    let compiled: Vec<(BackendKind, Box<dyn Forecaster + '_>)> =
        models.iter().filter_map(|(k, m)| m.compiled().map(|c| (*k, c))).collect();
    for (kind, model) in &models {
        backends.push((format!("forward_{kind}_fp32"), model.forecaster()));
    }
    for (kind, model) in &compiled {
        backends.push((format!("forward_{kind}_fp32_compile"), model.as_ref()));
    }
    for (name, model) in &backends {
        let mut group = c.benchmark_group(name.as_str());
        group.sample_size(10);
        for (rows, len) in [(1usize, 128usize), (8, 512)] {
            let batch = ModelBatch::independent(random_context(rows, len, 7), rows, len, 2);
            group.bench_with_input(BenchmarkId::from_parameter(format!("{rows}x{len}")), &batch, |b, batch| {
                b.iter(|| model.forecast(batch).expect("forward"))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, forward);
criterion_main!(benches);

//! Full-size Chronos-2 forward (prediction length 24 = 2 patches) on the candle CPU backend and,
//! with the `mlx` feature, on MLX (fp32, and compiled).
//!
//! `cargo bench -p chronos2-bench --bench forward` (MLX on Linux: add `--features mlx --config
//! "$CHRONOS2_MLX_CARGO_CONFIG"` after `eval "$(scripts/prepare-mlx-linux.sh)"`). Compare with PyTorch CPU measured in the
//! same session: `python3 scripts/bench_torch.py` (see README, Performance).

use chronos2_bench::{full_size_config_json, random_context, write_random_model};
use chronos2_core::ModelBatch;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

fn forward(c: &mut Criterion) {
    let dir = std::env::temp_dir().join("chronos2-bench-full-size");
    if !dir.join("model.safetensors").exists() {
        write_random_model(&dir, &full_size_config_json(), 42).expect("write synthetic model");
    }
    #[cfg_attr(not(feature = "mlx"), allow(unused_mut))]
    let mut backends: Vec<(&str, Box<dyn chronos2_core::Forecaster>)> =
        vec![("forward_cpu_fp32", chronos2_candle_cpu::load(&dir).expect("load synthetic model"))];
    #[cfg(feature = "mlx")]
    {
        use chronos2_mlx::{load_with, MlxOptions};
        backends.push(("forward_mlx_fp32", load_with(&dir, MlxOptions { compile: false }).expect("load on MLX")));
        backends
            .push(("forward_mlx_fp32_compile", load_with(&dir, MlxOptions { compile: true }).expect("load on MLX")));
    }
    for (name, model) in &backends {
        let mut group = c.benchmark_group(*name);
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

//! Quantized linear layers on the CPU: candle f32 matmul vs the int8 / int4 (MLX affine, group
//! 64) fused-dequantization kernel of `chronos2-candle-cpu`, on the Chronos-2 MLP shapes.
//! candle's own `q8_0` `QMatMul` is included as a reference point.
//!
//! `cargo bench -p chronos2-bench --bench quantized_linear`. Read ratios within one run: on a
//! shared machine absolute numbers move between runs.

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use chronos2_candle_cpu::QuantizedLinear;
use chronos2_core::quant::quantize;
use chronos2_test_fixtures::random_values as values;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

fn quantized_linear(c: &mut Criterion) {
    let dev = Device::Cpu;
    // (m, in, out): x (m, in) times W^T, W (out, in).
    for (m, k, n) in [(11usize, 768usize, 3072usize), (72, 768, 3072), (272, 3072, 768)] {
        let w = values(n * k, 1, 0.05);
        let x = values(m * k, 2, 1.0);
        let xt = Tensor::from_slice(&x, (m, k), &dev).unwrap();
        let wt = Tensor::from_slice(&w, (n, k), &dev).unwrap();
        let int8 = QuantizedLinear::new(quantize(&w, n, k, 8, 64).unwrap(), None).unwrap();
        let int4 = QuantizedLinear::new(quantize(&w, n, k, 4, 64).unwrap(), None).unwrap();
        let q8_0 = QMatMul::from_qtensor(QTensor::quantize(&wt, GgmlDType::Q8_0).unwrap()).unwrap();

        let mut group = c.benchmark_group(format!("linear_{m}x{k}x{n}"));
        group.sample_size(20);
        group.bench_function(BenchmarkId::from_parameter("f32_candle"), |b| {
            b.iter(|| xt.matmul(&wt.t().unwrap()).unwrap())
        });
        group.bench_function(BenchmarkId::from_parameter("int8_g64"), |b| b.iter(|| int8.forward(&xt).unwrap()));
        group.bench_function(BenchmarkId::from_parameter("int4_g64"), |b| b.iter(|| int4.forward(&xt).unwrap()));
        group.bench_function(BenchmarkId::from_parameter("q8_0_candle"), |b| b.iter(|| q8_0.forward(&xt).unwrap()));
        group.finish();
    }
}

criterion_group!(benches, quantized_linear);
criterion_main!(benches);
